"""The queue server's durable store: SQLAlchemy Core tables on SQLite (WAL) or PostgreSQL.

The schema is created and upgraded by Alembic (``queueserver/migrations``); the tables
below mirror it for queries. Writes go through :meth:`Store.tx`:

- on SQLite one writer at a time (a process lock plus ``BEGIN IMMEDIATE``), in WAL mode with
  ``synchronous=FULL``, so a ticket is on disk before the API answers and survives a power cut;
- on PostgreSQL every transaction is a normal one; callers lock the rows they change
  (``SELECT ... FOR UPDATE``) so several server replicas can share one database.

Work that must happen only after a successful commit (MQTT publishing, live-page
notifications) is registered with ``tx.after_commit(fn)``; on SQLite it still runs under
the writer lock, so snapshots of a room reach the broker in ``seq`` order.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Index,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes stored as naive UTC (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = MetaData()

rooms = Table(
    "qs_rooms", metadata,
    Column("room_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False, default="open"),
    Column("seq", Integer, nullable=False, default=0),
    Column("others_since_priority", Integer, nullable=False, default=0),
    Column("current_ticket_id", String(40)),
    Column("current_call_id", String(40)),
    Column("updated_at", UTCDateTime),
)

counters = Table(
    "qs_counters", metadata,
    Column("department", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("last", Integer, nullable=False),
)

tickets = Table(
    "qs_tickets", metadata,
    Column("ticket_id", String(40), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("department", String(64), nullable=False),
    Column("number_seq", Integer, nullable=False),
    Column("number", String(12), nullable=False),
    Column("room", String(64)),
    Column("source", String(16), nullable=False),  # appointment, walk_in, desk
    Column("appointment_no", String(32)),
    Column("patient_id", String(64)),
    Column("masked_name", String(100), nullable=False, default=""),
    Column("language", String(8), nullable=False, default="zh"),
    Column("priority", String(100)),
    Column("emergency", Boolean, nullable=False, default=False),
    Column("is_returning", Boolean, nullable=False, default=False),
    Column("front_reason", String(200)),
    Column("slot_start", UTCDateTime),
    Column("slot_end", UTCDateTime),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("arrived_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("called_at", UTCDateTime),
    Column("first_called_at", UTCDateTime),
    Column("call_room", String(64)),
    Column("call_reason", Text),
    Column("recall_count", Integer, nullable=False, default=0),
    Column("recalls_total", Integer, nullable=False, default=0),
    Column("no_show_count", Integer, nullable=False, default=0),
    Column("service_started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("cancel_reason", Text),
    Column("alerted_at", UTCDateTime),
    Column("survey_score", Integer),
    Column("survey_comment", Text),
    UniqueConstraint("day", "number", name="uq_ticket_number"),
    UniqueConstraint("day", "appointment_no", name="uq_ticket_appointment"),
)
Index("ix_tickets_status_department", tickets.c.status, tickets.c.department)

calls = Table(
    "qs_calls", metadata,
    Column("call_id", String(40), primary_key=True),
    Column("ticket_id", String(40), nullable=False, index=True),
    Column("room", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # call, recall
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("day", String(10), nullable=False),
)

idempotency = Table(
    "qs_idempotency", metadata,
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(200), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

service_times = Table(  # kept separately so estimates need no scan of the whole day
    "qs_service_times", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("department", String(64), nullable=False, index=True),
    Column("minutes", Float, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)


def database_url(db: str) -> str:
    """``--db`` accepts a file path (SQLite) or a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).resolve()}"


class Tx:
    """An open write transaction: ``.conn`` to run statements, ``.after_commit(fn)`` for side effects,
    ``.on_rollback(fn)`` to forget in-memory state changed along with it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._after: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)


class Store:
    """Engine, migrations and transactions of the queue store."""

    def __init__(self, db: str) -> None:
        self.url = database_url(db)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.RLock() if self.is_sqlite else None
        if self.is_sqlite:
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30},
                                                pool_size=8, max_overflow=32)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=30, pool_pre_ping=True)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (creates it in an empty database)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            if not self.is_sqlite:  # replicas starting together: one migrates, the others wait for it
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(774411)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction; commits on success, rolls back on error, then runs after-commit hooks."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect() as conn:
                tx = Tx(conn)
                try:
                    with conn.begin():
                        yield tx
                except BaseException:
                    for fn in tx._undo:
                        fn()
                    raise
            for fn in tx._after:
                try:
                    fn()
                except Exception:  # a failed publish must not turn a committed change into an error
                    log.exception("after-commit hook failed")
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold off writers (SQLite) so that what is read and published in between is the newest state."""
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (WAL readers never block the writer)."""
        with self.engine.connect().execution_options(clinicflow_read=True) as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_connect(dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own transaction handling is off).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # durable once committed, also across a power cut
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("clinicflow_read"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
