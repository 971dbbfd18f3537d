"""The store epoch: the generation id of the queue database, stamped on every room snapshot and call.

A room's ``seq`` only orders messages within one generation of the database. When the content
may have been replaced (a restore from a backup, a database file copied back, a new empty
database) the seqs can go backwards, so the epoch changes and screens start the order afresh
(``docs/protocol.md``). The rule:

- a new database gets a fresh epoch (migration 0003);
- every server start renews it (``renew_epoch``), because only at a start can the content have
  been swapped underneath (``clinicflow restore``, a copied SQLite file, ``pg_restore`` all need
  the server stopped), and a start cannot tell a swapped store from the one it left. A new epoch
  costs nothing: each screen takes the next snapshot of each room as the truth;
- a restore tool may call ``renew_epoch`` too: a server that was somehow left running then
  publishes the new generation within ``EpochReader.ttl`` seconds.

Replicas of the server on one PostgreSQL database read the epoch through ``EpochReader``, so a
replica that starts later (and renews it) is followed by the others within ``ttl`` seconds.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update

from queueserver.store import Store, UTCDateTime

log = logging.getLogger(__name__)

store_epoch = Table(
    "qs_store_epoch", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("epoch", String(64), nullable=False),
    Column("renewed_at", UTCDateTime, nullable=False),
)


def new_epoch() -> str:
    """A fresh generation id (12 hex digits: a valid topic-safe identifier)."""
    return secrets.token_hex(6)


def read_epoch(store: Store) -> str:
    """The database's current epoch."""
    with store.read() as conn:
        return str(conn.execute(select(store_epoch.c.epoch).where(store_epoch.c.id == 1)).scalar_one())


def renew_epoch(store: Store) -> str:
    """Give the database a new epoch (server start, restore) and return it."""
    epoch = new_epoch()
    with store.tx() as tx:
        tx.conn.execute(update(store_epoch).where(store_epoch.c.id == 1).values(
            epoch=epoch, renewed_at=datetime.now(timezone.utc)))
    return epoch


class EpochReader:
    """``reader()`` -> the current epoch, read from the database at most every ``ttl`` seconds."""

    def __init__(self, store: Store, *, ttl: float = 30.0, initial: str | None = None) -> None:
        self.store, self.ttl = store, ttl
        self._epoch = initial if initial is not None else read_epoch(store)
        self._read_at = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        if time.monotonic() - self._read_at > self.ttl and self._lock.acquire(blocking=False):
            try:
                self._epoch = read_epoch(self.store)
            except Exception:  # a database hiccup must not stop publishing: keep the last epoch
                log.warning("could not read the store epoch; keeping %s", self._epoch, exc_info=True)
            finally:
                self._read_at = time.monotonic()
                self._lock.release()
        return self._epoch
