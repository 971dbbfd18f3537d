"""``Writes``: every state change as one transaction, retried on a concurrent change, idempotent with a key.

``Writes.run(op, idem_key=..., fingerprint=...)`` runs ``op(tx, now) -> result`` in one
transaction. With a key, the result is stored (``queueserver.codec``) in the same
transaction as the change it protects, so after a crash either both are there or neither
is, and a retry with the same key gets the first result without running ``op`` again.
Reusing a key for a different request (another fingerprint) is ``IdempotencyKeyReused``.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from protocol.api import CallOut, TicketOut
from protocol.payloads import RoomState
from queueserver import codec
from queueserver.context import QueueContext
from queueserver.errors import IdempotencyKeyReused
from queueserver.results import DayClosed, Issued
from queueserver.store import Tx, idempotency

log = logging.getLogger(__name__)
T = TypeVar("T")

_Q_IDEMPOTENCY = select(idempotency).where(idempotency.c.key == bindparam("key"))
_I_IDEMPOTENCY = insert(idempotency)
STORED = 0  # status_code of rows written since results are stored as codec data (see _legacy)


def _retryable(exc: Exception) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # 23505 unique violation, 40001 serialization failure, 40P01 deadlock detected
    return isinstance(exc, IntegrityError) and code in (None, "23505") or code in ("40001", "40P01")


def _legacy(status_code: int, body: Any) -> Any:
    """A result stored by an older server as its HTTP answer (kept two days: retries across an upgrade)."""
    if status_code == 201:
        return Issued(TicketOut.model_validate(body), created=True)
    if "call_id" in body:
        return CallOut.model_validate(body)
    if "ticket_id" in body:
        return TicketOut.model_validate(body)
    if "seq" in body:
        return RoomState.model_validate(body)
    return DayClosed(**body)


class Writes:
    """Runs state changes (see the module docstring)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx

    def run(self, op: Callable[[Tx, datetime], T], *, idem_key: str | None = None, fingerprint: str = "") -> T:
        """``op(tx, now)`` in one transaction; with a key, a retry gets the first result.

        PostgreSQL with several replicas: a concurrent insert of the same key, or a deadlock or
        serialization failure, rolls the transaction back; running it again sees the winner's
        committed row (a retried check-in then answers "already checked in").
        """
        ctx = self.ctx
        attempts = 1 if ctx.store.is_sqlite else 4
        for attempt in range(attempts):
            ctx.local.bumped = {}
            try:
                return self._once(op, idem_key, fingerprint)
            except (IntegrityError, OperationalError) as exc:
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                log.info("retrying after a concurrent change: %s", exc.orig)
                time.sleep(0.005 * (attempt + 1))
            finally:
                ctx.local.bumped = None
        raise AssertionError("unreachable")

    def _once(self, op: Callable[[Tx, datetime], T], idem_key: str | None, fingerprint: str) -> T:
        ctx = self.ctx
        with ctx.store.tx() as tx:
            now = ctx.clock()
            if idem_key:
                row = ctx.sql(tx.conn, _Q_IDEMPOTENCY, {"key": idem_key}).first()
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
                    if row["status_code"] != STORED:
                        return _legacy(row["status_code"], json.loads(row["body"]))  # type: ignore[no-any-return]
                    return codec.loads(row["body"])  # type: ignore[no-any-return]
            result = op(tx, now)
            if idem_key:
                ctx.sql(tx.conn, _I_IDEMPOTENCY, dict(key=idem_key, fingerprint=fingerprint, status_code=STORED,
                                                      body=codec.dumps(result), created_at=now))
        return result
