"""The queue server's durable store: SQLAlchemy Core tables on SQLite (WAL) or PostgreSQL.

The schema is created and upgraded by Alembic (``queueserver/migrations``); the tables
below mirror it for queries. Writes go through :meth:`Store.tx`, one writer at a time:

- on SQLite a process lock plus ``BEGIN IMMEDIATE``, in WAL mode with ``synchronous=FULL``,
  so a ticket is on disk before the API answers and survives a power cut;
- on PostgreSQL the same process lock, and in the transaction the site's writer lock
  (``pg_advisory_xact_lock``), so that several server replicas on one database take turns.
  Each turn is a group commit (below), so the lock is taken once for many operations; and
  because nobody else writes while it is held, each replica can keep every room's calling
  order in memory and check it against the rooms' ``seq`` when its turn starts
  (``on_write_start``).

Work that must happen only after a successful commit (MQTT publishing, live-page
notifications) is registered with ``tx.after_commit(fn)``; it still runs under the process
lock, so snapshots of a room reach the broker in ``seq`` order.

Group commit: :meth:`Store.submit` hands a job to one writer thread, which runs every job
waiting at that moment in a single transaction, each inside its own SAVEPOINT (a job that
fails rolls back alone and gets its error), then commits once: one fsync (and on PostgreSQL
one lock turn) for the whole batch, and nothing is answered before it is on disk. Inside a
job, ``Store.tx()`` joins the batch. Calls of ``Store.tx()`` from other threads still work,
one at a time.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
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
from typing import Any, TypeVar

T = TypeVar("T")
from sqlalchemy.types import TypeDecorator

MAX_BATCH = 64  # jobs per group commit: bounds how long one transaction holds the writer lock
WRITER_LOCK_KEY = 774412  # PostgreSQL advisory lock of the queue's writers (774411: migrations)

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
        self._last: dict[Any, Callable[[], None]] = {}

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    def after_commit_last(self, key: Any, fn: Callable[[], None]) -> None:
        """Like ``after_commit``, but of the hooks with this ``key`` in one group commit only the latest
        runs, after all other hooks (a room's retained snapshot: only the newest one matters)."""
        self._last[key] = fn


def _run_hooks(hooks: Iterable[Callable[[], None]]) -> None:
    for fn in hooks:
        try:
            fn()
        except Exception:  # a failed publish must not turn a committed change into an error
            log.exception("after-commit hook failed")


class Store:
    """Engine, migrations and transactions of the queue store."""

    def __init__(self, db: str) -> None:
        self.url = database_url(db)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.RLock()
        self._write_start: list[Callable[[Connection], None]] = []
        if self.is_sqlite:
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30},
                                                pool_size=8, max_overflow=32)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=30, pool_pre_ping=True)
        self._job = threading.local()  # the writer thread's current job transaction
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_start = threading.Lock()

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

    def on_write_start(self, fn: Callable[[Connection], None]) -> None:
        """``fn(conn)`` at the start of every write transaction, once this process may write (PostgreSQL:
        after the writer lock; other replicas may have written since the last one)."""
        self._write_start.append(fn)

    def _begin_writes(self, conn: Connection) -> None:
        if not self.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")
            for fn in self._write_start:
                fn(conn)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction; commits on success, rolls back on error, then runs after-commit hooks."""
        joined = getattr(self._job, "tx", None)
        if joined is not None:  # inside a group-commit job: its savepoint is the transaction
            yield joined
            return
        lock = self._write_lock
        lock.acquire()
        try:
            with self.engine.connect() as conn:
                tx = Tx(conn)
                try:
                    with conn.begin():
                        self._begin_writes(conn)
                        yield tx
                except BaseException:
                    for fn in tx._undo:
                        fn()
                    raise
            _run_hooks(tx._after)
            _run_hooks(tx._last.values())
        finally:
            lock.release()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold off this process's writers so that what is read and published in between is the newest state."""
        with self._write_lock:
            yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (WAL readers never block the writer)."""
        with self.engine.connect().execution_options(clinicflow_read=True) as conn:
            with conn.begin():
                yield conn

    # ----------------------------------------------------------- group commit
    @property
    def groups_commits(self) -> bool:
        """True: :meth:`submit` batches writes, on SQLite and PostgreSQL alike."""
        return True

    def submit(self, job: Callable[[], T]) -> "Future[T]":
        """Run ``job()`` on the writer thread, in the next group commit; the future resolves after the commit."""
        future: Future[T] = Future()
        with self._writer_start:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
                self._writer.start()
        self._jobs.put((job, future))
        return future

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(more)
            self.run_batch(batch)

    def run_batch(self, batch: list[tuple[Callable[[], Any], Future]]) -> None:
        """Run these jobs as one group commit in this thread, then resolve their futures (see the module docstring).

        The writer thread calls this; so does a process whose one thread does nothing else
        (the queue core of ``--http-workers``, where a second thread would only fight it for the GIL).
        """
        try:
            self._run_batch(batch)
        except BaseException as exc:  # never leave a caller waiting
            log.exception("group commit failed")
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)

    def _run_batch(self, batch: list[tuple[Callable[[], Any], Future]]) -> None:
        done: list[tuple[Tx, Future, Any, BaseException | None]] = []
        with self._write_lock, self.engine.connect() as conn:
            raw = conn.connection.driver_connection  # SAVEPOINTs straight on the driver: no SQLAlchemy overhead
            release = self.is_sqlite
            try:
                with conn.begin():
                    self._begin_writes(conn)
                    for job, future in batch:
                        tx = Tx(conn)
                        self._job.tx = tx
                        raw.execute("SAVEPOINT job")
                        try:
                            result = job()
                        except BaseException as exc:
                            raw.execute("ROLLBACK TO job")
                            for fn in tx._undo:
                                fn()
                            done.append((tx, future, None, exc))
                        else:
                            done.append((tx, future, result, None))
                        finally:
                            if release:  # PostgreSQL: a round trip saved; the commit ends every savepoint
                                raw.execute("RELEASE job")
                            self._job.tx = None
            except BaseException as exc:  # the commit (or a SAVEPOINT) failed: nothing of the batch is stored
                for tx, future, _, error in done:
                    if error is None:
                        for fn in tx._undo:
                            fn()
                    future.set_exception(error or exc)
                for _, future in batch:  # jobs the failure came before: they never ran
                    if not future.done():
                        future.set_exception(exc)
                return
            last: dict[Any, Callable[[], None]] = {}
            for tx, _, _, error in done:  # in commit order, still under the lock: publishing keeps seq order
                if error is None:
                    _run_hooks(tx._after)
                    last.update(tx._last)
            _run_hooks(last.values())
        for _, future, result, error in done:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def dispose(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=10)
            self._writer = None
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
