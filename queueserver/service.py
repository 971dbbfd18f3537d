"""``QueueService``: every queue operation as one durable transaction, then its side effects.

The service joins the parts: the hospital file (departments, rooms, rules), the
``HospitalBackend`` (appointments, patients), the pure calling rules (``queueserver.rules``),
the store, and an optional publisher (MQTT). It knows nothing of HTTP: errors are
``NotFoundError`` (404) and ``ConflictError`` (409) with a plain sentence for the person
at the screen. The clock is injected, so a whole clinic day can be replayed in a test.

Each state change bumps the ``seq`` of every room whose snapshot it changes, in the same
transaction, and publishes those snapshots after the commit (on SQLite, a group commit sends
each room's newest waiting-list snapshot once; a call's snapshot always goes out before its
event). On SQLite the calling order of every room is kept in memory (``RoomLanes``), and the
hot statements run prepared on sqlite3 (``queueserver.fastsql``).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import partial
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from protocol.announce import announcement_texts
from protocol.api import CallOut, TicketOut
from protocol.errors import ClinicflowError, ConflictError, NotFoundError
from protocol.payloads import Alert, CallEvent, CallKind, CurrentCall, RoomState, RoomStatus
from protocol.privacy import mask_name
from queueserver import rules as R
from queueserver.hospital.port import HospitalBackend
from queueserver.hospital_file import Hospital, Room
from queueserver.fastsql import StatementRunner
from queueserver.dashboard.quantiles import quantile
from queueserver.lanes import RoomLanes
from queueserver.store import Store, Tx, UTCDateTime, calls, counters, idempotency, rooms, service_times, tickets

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Record = Mapping[str, Any]  # a row by column name (a dict from queueserver.fastsql, or SQLAlchemy's RowMapping)
Changed = set[str] | dict[str, Any]  # tickets a change touched: ids to read back, or id -> row now (None: gone)
ACTIVE = ("waiting", "called", "serving")
NEXT_SHOWN = 5
ESTIMATE_TTL_S = 2.0  # service times and open rooms feed estimates only: a little staleness is fine


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Publisher(Protocol):
    """Where snapshots, calls and alerts go (``queueserver.publisher.MqttPublisher``)."""

    def publish_state(self, state: RoomState) -> None: ...

    def publish_call(self, event: CallEvent) -> None: ...

    def publish_alert(self, alert: Alert) -> None: ...


class BadRequestError(ClinicflowError, ValueError):
    """Input that is well-formed but names something impossible (answered 400)."""


class ForbiddenError(ClinicflowError, PermissionError):
    """The caller's role or rooms do not allow this (answered 403)."""


@dataclass(frozen=True)
class QueueEntry:
    """One waiting ticket in a room's calling order, for the clinician page."""

    ticket_id: str
    number: str
    position: int
    reason: str
    category: str
    waited_min: int
    masked_name: str
    priority: str | None
    long_wait: bool


_WAIT_COLUMNS = [tickets.c[name] for name in (
    "ticket_id", "number", "arrived_at", "number_seq", "slot_start", "slot_end", "emergency", "priority",
    "is_returning", "front_reason", "not_before", "masked_name", "room", "department")]


# Statements of the hot path, built once: building a statement costs more than running it
# (measured ~45 us against ~15 us on SQLite); values go in as bound parameters.
_Q_TICKET = select(tickets).where(tickets.c.ticket_id == bindparam("tid"))
_Q_TICKET_FOR_UPDATE = _Q_TICKET.with_for_update()
_Q_CURRENT = select(tickets.c.number, tickets.c.masked_name, tickets.c.called_at, tickets.c.recall_count,
                    tickets.c.status).where(tickets.c.ticket_id == bindparam("tid"))  # what a snapshot shows of it
_Q_TICKET_OF_APPOINTMENT = select(tickets).where(tickets.c.day == bindparam("day"),
                                                 tickets.c.appointment_no == bindparam("no"))
_Q_IDEMPOTENCY = select(idempotency).where(idempotency.c.key == bindparam("key"))
_Q_ROOMS = select(rooms).where(rooms.c.room_id.in_(bindparam("ids", expanding=True))).order_by(rooms.c.room_id)
_Q_ROOMS_FOR_UPDATE = _Q_ROOMS.with_for_update()
_Q_OVERLAY = select(*_WAIT_COLUMNS, tickets.c.status, tickets.c.day).where(
    tickets.c.ticket_id.in_(bindparam("ids", expanding=True)))
_U_ROOM_SEQ = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
               .values(seq=rooms.c.seq + 1, updated_at=bindparam("now")).returning(*rooms.c))
_I_TICKET = insert(tickets).returning(*tickets.c)
_U_CALLED = update(tickets).where(tickets.c.ticket_id == bindparam("tid"), tickets.c.status == "waiting").values(
    status="called", called_at=bindparam("now"),
    first_called_at=func.coalesce(tickets.c.first_called_at, bindparam("first", type_=UTCDateTime())),
    call_room=bindparam("b_room"), call_reason=bindparam("reason"), recall_count=0, not_before=None)
_U_DONE = update(tickets).where(tickets.c.ticket_id == bindparam("tid")).values(status="done",
                                                                               finished_at=bindparam("now"))
_I_SERVICE_TIME = insert(service_times).values(department=bindparam("department"), minutes=bindparam("minutes"),
                                               at=bindparam("at"))  # the id is the database's
_U_ROOM_CALLED = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
                  .values(seq=rooms.c.seq + 1, updated_at=bindparam("now"), current_ticket_id=bindparam("cur"),
                          current_call_id=bindparam("call"), others_since_priority=bindparam("counter"))
                  .returning(*rooms.c))
_U_ROOM_CURRENT = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
                   .values(seq=rooms.c.seq + 1, updated_at=bindparam("now"), current_ticket_id=bindparam("cur"),
                           current_call_id=bindparam("call"))
                   .returning(*rooms.c))
_I_IDEMPOTENCY = insert(idempotency)
_EMPTY_TICKET = {c.name: None for c in tickets.columns}  # every column, for the prepared INSERT
_Q_RECENT_SERVICE = (select(service_times.c.minutes).where(service_times.c.department == bindparam("dept"))
                     .order_by(service_times.c.id.desc()).limit(20))
_I_CALL = insert(calls)


def _counter_upsert(dialect_insert):  # type: ignore[no-untyped-def]
    stmt = dialect_insert(counters).values(department=bindparam("dept"), day=bindparam("day"), last=1)
    return stmt.on_conflict_do_update(index_elements=["department", "day"],
                                      set_={"last": counters.c.last + 1}).returning(counters.c.last)


def _retryable(exc: Exception) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # 23505 unique violation, 40001 serialization failure, 40P01 deadlock detected
    return isinstance(exc, IntegrityError) and code in (None, "23505") or code in ("40001", "40P01")


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class QueueService:
    """The queue operations of one site (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        hospital: Hospital,
        backend: HospitalBackend,
        *,
        clock: Clock = utcnow,
        publisher: Publisher | None = None,
        public_url: str = "http://127.0.0.1:8000",
        site: str | None = None,
    ) -> None:
        self.store = store
        self.hospital = hospital
        self.rules = hospital.rules
        self.tz = hospital.tz
        self.site = site or hospital.site.id
        self.backend = backend
        self.clock = clock
        self.publisher = publisher
        self.public_url = public_url.rstrip("/")
        self._listeners: list[Callable[[set[str], set[str]], None]] = []
        self._local = threading.local()  # per-operation: rooms and lanes _bump produced (see _position)
        self._estimate_cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._keep_lanes = store.is_sqlite
        if store.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
        self._counter_stmt = _counter_upsert(dialect_insert)
        self._sql = StatementRunner(store.engine.dialect)  # the hot statements (queueserver.fastsql)
        self._rooms_by_count: dict[int, Any] = {}
        # SQLite: this process is the only writer, so it keeps every room's calling order in memory
        # (RoomLanes), changed inside each transaction under the writer lock and dropped (rebuilt
        # from the database) when a transaction rolls back. PostgreSQL: built per operation.
        self._lanes: dict[str, RoomLanes] | None = None
        self._lanes_day: str | None = None
        self._lanes_rooms_of: dict[str, tuple[str, ...]] = {}
        self._staged_states: dict[str, RoomState] = {}  # SQLite: snapshots waiting for their group commit's end
        self._his_marks: list[str] = []  # check-ins committed or about to be, not yet told to the HIS

    # ------------------------------------------------------------------ set-up
    def ensure_rooms(self) -> None:
        """Create a row for every room of the hospital file (existing rooms keep their state and seq)."""
        with self.store.tx() as tx:
            have = {r for (r,) in tx.conn.execute(select(rooms.c.room_id))}
            for room in self.hospital.rooms:
                if room.id not in have:
                    tx.conn.execute(insert(rooms).values(room_id=room.id, status="open", seq=0,
                                                         others_since_priority=0, updated_at=self.clock()))

    def replace_hospital(self, hospital: Hospital) -> None:
        """Apply a changed hospital configuration (admin API): rules, departments, rooms, clinicians.

        The site id cannot change while running, and a department or room that still has
        waiting tickets today cannot be removed (409). New rooms start open; every room's
        snapshot is republished with the new names.
        """
        if hospital.site.id != self.hospital.site.id:
            raise ConflictError("The site id cannot be changed while the server runs.")
        with self.store.read() as conn:
            busy = conn.execute(select(tickets.c.department, tickets.c.room).where(
                tickets.c.status.in_(ACTIVE), tickets.c.day == self.today())).all()
        for dept, room in busy:
            if hospital.department(dept) is None:
                raise ConflictError(f"Department {dept} still has patients today; it cannot be removed.")
            if room is not None and hospital.room(room) is None:
                raise ConflictError(f"Room {room} still has patients today; it cannot be removed.")
        with self.store.writer_lock():  # rooms, departments and rules decide the lanes: rebuild them
            self.hospital, self.rules, self.tz = hospital, hospital.rules, hospital.tz
            self._drop_lanes()
        self._estimate_cache.clear()
        self.ensure_rooms()
        self.republish_all()
        for fn in self._listeners:
            fn({r.id for r in hospital.rooms}, set())

    def add_listener(self, fn: Callable[[set[str], set[str]], None]) -> None:
        """``fn(rooms, ticket_ids)`` after every committed change (live pages)."""
        self._listeners.append(fn)

    # ---------------------------------------------------------------- helpers
    def today(self, now: datetime | None = None) -> str:
        return (now or self.clock()).astimezone(self.tz).date().isoformat()

    def _room(self, room_id: str) -> Room:
        room = self.hospital.room(room_id)
        if room is None:
            raise NotFoundError(f"There is no room {room_id!r}.")
        return room

    def _room_label(self, room_id: str) -> str:
        room = self.hospital.room(room_id)
        return room.name.get("en", room_id) if room else room_id

    def _dept_name(self, dept_id: str) -> dict[str, str]:
        dept = self.hospital.department(dept_id)
        return dict(dept.name) if dept else {"en": dept_id}

    def _lock_rooms(self, conn: Connection, room_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """Read (and on PostgreSQL lock, in a fixed order) the rows of these rooms."""
        ids = sorted(set(room_ids))
        if not self.store.is_sqlite:
            return {r["room_id"]: r for r in conn.execute(_Q_ROOMS_FOR_UPDATE, {"ids": ids}).mappings()}
        q = self._rooms_by_count.get(len(ids))
        if q is None:  # one prepared statement per number of rooms (prepared statements cannot expand IN)
            q = select(rooms).where(rooms.c.room_id.in_([bindparam(f"r{i}") for i in range(len(ids))]))
            self._rooms_by_count[len(ids)] = q
        return {r["room_id"]: r for r in self._sql(conn, q, {f"r{i}": rid for i, rid in enumerate(ids)}).all()}

    def _rooms_sharing(self, room: Room) -> list[str]:
        depts = set(room.departments)
        return [r.id for r in self.hospital.rooms if depts & set(r.departments)]

    def _rooms_of_dept(self, dept_id: str) -> list[str]:
        return [r.id for r in self.hospital.rooms_for(dept_id)]

    def _load(self, conn: Connection, for_rooms: list[Room], day: str) -> dict[str, list[Any]]:
        """The waiting tickets of several rooms from the database (only the columns the rules need)."""
        depts = sorted({d for r in for_rooms for d in r.departments})
        q = select(*_WAIT_COLUMNS).where(
            tickets.c.status == "waiting", tickets.c.day == day,
            or_(tickets.c.room.in_([r.id for r in for_rooms]),
                and_(tickets.c.room.is_(None), tickets.c.department.in_(depts))),
        )
        out: dict[str, list[Any]] = {r.id: [] for r in for_rooms}
        for row in conn.execute(q).all():  # plain rows: attribute access is cheaper than mappings
            for r in for_rooms:
                if row.room == r.id or (row.room is None and row.department in r.departments):
                    out[r.id].append(row)
        return out

    def _rooms_of_ticket(self, row: Any) -> tuple[str, ...]:
        """The rooms whose queue a waiting ticket is in: its own room, or every room of its department."""
        if row.room is not None:
            return (row.room,) if self.hospital.room(row.room) is not None else ()
        return tuple(r.id for r in self.hospital.rooms_for(row.department))

    def _lanes_for(self, conn: Connection, for_rooms: list[Room], day: str, now: datetime) -> dict[str, RoomLanes]:
        """The calling order of these rooms: kept in memory on SQLite, read from the database on PostgreSQL."""
        if not self._keep_lanes:
            loaded = self._load(conn, for_rooms, day)
            return {r.id: RoomLanes(self.rules, self.tz, [self._waiting(x) for x in loaded[r.id]], now=now)
                    for r in for_rooms}
        if self._lanes is None or self._lanes_day != day:
            rows = conn.execute(select(*_WAIT_COLUMNS).where(tickets.c.status == "waiting",
                                                             tickets.c.day == day)).all()
            lanes = {r.id: RoomLanes(self.rules, self.tz) for r in self.hospital.rooms}
            self._lanes_rooms_of = {}
            for row in rows:
                self._lanes_rooms_of[row.ticket_id] = self._rooms_of_ticket(row)
                for rid in self._lanes_rooms_of[row.ticket_id]:
                    lanes[rid].add(self._waiting(row), now)
            self._lanes, self._lanes_day = lanes, day
        lanes = self._lanes
        return {r.id: lanes[r.id] for r in for_rooms}

    def _drop_lanes(self) -> None:
        """Forget the in-memory order (a rolled-back transaction, a new hospital file, end of day)."""
        self._lanes, self._lanes_day, self._lanes_rooms_of = None, None, {}

    def _apply_to_lanes(self, tx: Tx, day: str, now: datetime, changed: "Changed") -> None:
        """Move this transaction's changed tickets in the in-memory lanes (SQLite; undone on rollback).

        ``changed``: ticket ids to read back, or id -> the row as it now is (None: no longer waiting).
        """
        if self._lanes is None or self._lanes_day != day or not changed:
            return
        tx.on_rollback(self._drop_lanes)
        found: dict[str, Any] = {}
        if isinstance(changed, dict):
            found = {tid: SimpleNamespace(**row) if isinstance(row, Mapping) else row
                     for tid, row in changed.items() if row is not None}
        else:
            found = {r.ticket_id: r for r in tx.conn.execute(_Q_OVERLAY, {"ids": sorted(changed)}).all()}
        for tid in changed:
            for rid in self._lanes_rooms_of.pop(tid, ()):
                self._lanes[rid].discard(tid)
            row = found.get(tid)
            if row is not None and row.status == "waiting" and row.day == day:
                self._lanes_rooms_of[tid] = self._rooms_of_ticket(row)
                waiting = self._waiting(row)
                for rid in self._lanes_rooms_of[tid]:
                    self._lanes[rid].add(waiting, now)

    @staticmethod
    def _waiting(row: Any) -> R.Waiting:
        """The rules' view of a ticket row (a Row from ``_load`` or a full ``Record``)."""
        if isinstance(row, Mapping):
            row = SimpleNamespace(**row)
        return R.Waiting(
            ticket_id=row.ticket_id, number=row.number, arrived_at=row.arrived_at, issue_seq=row.number_seq,
            slot_start=row.slot_start, slot_end=row.slot_end, emergency=bool(row.emergency),
            priority=row.priority, returning=bool(row.is_returning), front_reason=row.front_reason,
            not_before=row.not_before,
        )

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read snapshot that may use the in-memory lanes (they change only under the writer lock)."""
        with self.store.writer_lock() if self._keep_lanes else nullcontext():
            with self.store.read() as conn:
                yield conn

    def _ticket_row(self, conn: Connection, ticket_id: str, *, lock: bool = False) -> Record:
        q = _Q_TICKET_FOR_UPDATE if lock and not self.store.is_sqlite else _Q_TICKET
        row = self._sql(conn, q, {"tid": ticket_id}).first()
        if row is None:
            raise NotFoundError(f"There is no ticket {ticket_id!r}.")
        return row

    def _service_minutes(self, conn: Connection, dept_id: str) -> float:
        """Mean of the department's last 20 service times (cached for a few seconds: it is an estimate)."""
        hit = self._estimate_cache.get(("svc", dept_id))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        recent = [r["minutes"] for r in self._sql(conn, _Q_RECENT_SERVICE, {"dept": dept_id}).all()]
        value = statistics.fmean(recent) if recent else self.rules.default_service_min
        self._estimate_cache[("svc", dept_id)] = (time.monotonic() + ESTIMATE_TTL_S, value)
        return value

    def _open_rooms(self, conn: Connection, room_ids: list[str]) -> int:
        key = ("open", ",".join(room_ids))
        hit = self._estimate_cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value = max(1, sum(1 for (st,) in conn.execute(select(rooms.c.status).where(rooms.c.room_id.in_(room_ids)))
                           if st == "open"))
        self._estimate_cache[key] = (time.monotonic() + ESTIMATE_TTL_S, value)
        return value

    def _position(self, conn: Connection, row: Record, now: datetime) -> tuple[int | None, int | None]:
        """(position, estimated minutes) of a waiting ticket in the room it will be called to."""
        if row["status"] != "waiting":
            return None, None
        dept_rooms = self.hospital.rooms_for(row["department"])
        room = self.hospital.room(row["room"]) if row["room"] else (dept_rooms[0] if dept_rooms else None)
        if room is None:
            return None, None
        done = getattr(self._local, "bumped", None)  # rooms and lanes _bump produced in this same operation
        if done and room.id in done:
            counter, lanes = done[room.id]
        else:
            state = conn.execute(select(rooms.c.others_since_priority).where(rooms.c.room_id == room.id)).first()
            counter = state.others_since_priority if state else 0
            lanes = self._lanes_for(conn, [room], row["day"], now)[room.id]
        position = lanes.position(row["ticket_id"], counter=counter, now=now)
        if position is None:
            return None, None
        open_rooms = 1 if row["room"] else self._open_rooms(conn, [r.id for r in dept_rooms])
        return position, R.estimated_wait_min(position, open_rooms=open_rooms,
                                              service_min=self._service_minutes(conn, row["department"]))

    def _ticket_out(self, conn: Connection, row: Record, now: datetime, *, already: bool = False) -> TicketOut:
        position, wait = self._position(conn, row, now)
        room_id = row["call_room"] if row["status"] in ("called", "serving") else row["room"]
        if room_id is None:  # a department with a single room: the patient can already be told where to go
            only = self.hospital.rooms_for(row["department"])
            room_id = only[0].id if len(only) == 1 else None
        room = self.hospital.room(room_id) if room_id else None
        return TicketOut(
            ticket_id=row["ticket_id"], number=row["number"], department=row["department"],
            department_name=self._dept_name(row["department"]), room=room_id,
            room_name=dict(room.name) if room else {}, status=row["status"], position=position,
            estimated_wait_min=wait, issued_at=row["issued_at"], masked_name=row["masked_name"],
            status_url=f"{self.public_url}/status/{row['ticket_id']}", already_checked_in=already,
        )

    # ----------------------------------------------------------- snapshots
    def _snapshot(self, conn: Connection, room: Room, row: Record, now: datetime,
                  lanes: RoomLanes | None = None) -> RoomState:
        current = None
        if row["current_ticket_id"]:
            t = self._sql(conn, _Q_CURRENT, {"tid": row["current_ticket_id"]}).first()
            if t is not None and t["status"] in ("called", "serving"):
                current = CurrentCall(call_id=row["current_call_id"] or "none", ticket=t["number"],
                                      masked_name=t["masked_name"], called_at=t["called_at"],
                                      recall_count=t["recall_count"])
        if lanes is None:
            lanes = self._lanes_for(conn, [room], self.today(now), now)[room.id]
        head = lanes.top(NEXT_SHOWN, counter=row["others_since_priority"], now=now, explain=False)
        done = getattr(self._local, "bumped", None)
        if done is not None:
            done[room.id] = (row["others_since_priority"], lanes)
        dept = room.departments[0]
        return RoomState(
            seq=row["seq"], ts=now, site=self.site, room=room.id, room_name=dict(room.name), department=dept,
            department_name=self._dept_name(dept), status=RoomStatus(row["status"]), current=current,
            next_tickets=tuple(p.ticket.number for p in head), waiting_count=len(lanes),
        )

    def _bump(self, tx: Tx, room_ids: set[str], now: datetime, *, tickets_changed: Changed | None = None,
              room_updates: dict[str, dict[str, Any]] | None = None,
              publish_now: frozenset[str] = frozenset()) -> dict[str, RoomState]:
        """Advance the seq of these rooms (with any column updates), build their snapshots, publish after commit.

        ``publish_now``: rooms whose snapshot must go out in its place, before a call event with the
        same seq; the others may be folded into the group commit's newest snapshot of the room.
        """
        room_updates = room_updates or {}
        states: dict[str, RoomState] = {}
        day = self.today(now)
        self._apply_to_lanes(tx, day, now, tickets_changed or set())
        lanes = self._lanes_for(tx.conn, [self._room(r) for r in sorted(room_ids)], day, now)
        for room_id in sorted(room_ids):
            updates = room_updates.get(room_id)
            if updates is not None and set(updates) == {"current_ticket_id", "current_call_id", "others_since_priority"}:
                row = self._sql(tx.conn, _U_ROOM_CALLED, {
                    "rid": room_id, "now": now, "cur": updates["current_ticket_id"], "call": updates["current_call_id"],
                    "counter": updates["others_since_priority"]}).one()
            elif updates is not None and set(updates) == {"current_ticket_id", "current_call_id"}:
                row = self._sql(tx.conn, _U_ROOM_CURRENT, {"rid": room_id, "now": now, "cur": updates["current_ticket_id"],
                                                          "call": updates["current_call_id"]}).one()
            elif updates is not None:
                values = dict(updates, seq=rooms.c.seq + 1, updated_at=now)
                row = tx.conn.execute(update(rooms).where(rooms.c.room_id == room_id).values(**values)
                                      .returning(*rooms.c)).mappings().one()
            else:
                row = self._sql(tx.conn, _U_ROOM_SEQ, {"rid": room_id, "now": now}).one()
            states[room_id] = self._snapshot(tx.conn, self._room(room_id), row, now, lanes[room_id])
        changed = set(tickets_changed or ())

        for room_id, state in states.items():
            self._publish_state(tx, state, now=room_id in publish_now)

        def after() -> None:
            for fn in self._listeners:
                try:
                    fn(set(room_ids), changed)
                except Exception:
                    log.exception("change listener failed")

        tx.after_commit(after)
        return states

    def _publish_state(self, tx: Tx, state: RoomState, *, now: bool) -> None:
        """Publish a room's snapshot after the commit. On SQLite (one writer, hooks in commit order) a
        snapshot that only changed the waiting list is staged, and each group commit sends the newest
        staged one per room once: under load most snapshots are superseded within milliseconds."""
        publisher = self.publisher
        if publisher is None:
            return
        if now or not self.store.is_sqlite:
            def send() -> None:
                self._staged_states.pop(state.room, None)  # older than this one
                publisher.publish_state(state)
            tx.after_commit(send)
            return
        tx.after_commit(partial(self._staged_states.__setitem__, state.room, state))
        tx.after_commit_last("room-states", self._send_staged_states)

    def _send_staged_states(self) -> None:
        staged, self._staged_states = self._staged_states, {}
        for state in staged.values():
            self.publisher.publish_state(state)  # type: ignore[union-attr]

    def republish_all(self) -> None:
        """Publish every room's current snapshot with its stored seq (server start, broker reconnect)."""
        if self.publisher is None:
            return
        now = self.clock()
        # Under the writer lock: a change committed meanwhile cannot be overtaken by this older snapshot.
        with self.store.writer_lock():
            with self._reading() as conn:
                rows = {r["room_id"]: r for r in conn.execute(select(rooms)).mappings()}
                states = [self._snapshot(conn, room, rows[room.id], now) for room in self.hospital.rooms
                          if room.id in rows]
            for state in states:
                self.publisher.publish_state(state)

    def room_state(self, room_id: str) -> RoomState:
        room = self._room(room_id)
        with self._reading() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            return self._snapshot(conn, room, row, self.clock())

    # -------------------------------------------------------- idempotency
    def execute(self, op: Callable[[Tx, datetime], tuple[int, Any]], *, idem_key: str | None = None,
                fingerprint: str = "") -> tuple[int, Any]:
        """Run ``op(tx, now) -> (status, body)`` in one transaction; with a key, a retry gets the first answer.

        The key is stored in the same transaction as the change it protects, so after a crash either
        both are there or neither is. Reusing a key for a different request is a 409.
        """
        attempts = 1 if self.store.is_sqlite else 4
        for attempt in range(attempts):
            self._local.bumped = {}
            try:
                return self._execute(op, idem_key, fingerprint)
            except (IntegrityError, OperationalError) as exc:
                # PostgreSQL with several replicas: a concurrent insert of the same key, or a deadlock
                # or serialization failure, rolls our transaction back; running it again sees the winner's
                # committed row (a retried check-in then answers "already checked in").
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                log.info("retrying after a concurrent change: %s", exc.orig)
                time.sleep(0.005 * (attempt + 1))
            finally:
                self._local.bumped = None
        raise AssertionError("unreachable")

    def _execute(self, op: Callable[[Tx, datetime], tuple[int, Any]], idem_key: str | None,
                 fingerprint: str) -> tuple[int, Any]:
        with self.store.tx() as tx:
            now = self.clock()
            if idem_key:
                row = self._sql(tx.conn, _Q_IDEMPOTENCY, {"key": idem_key}).first()
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise ConflictError("This Idempotency-Key was already used for a different request.")
                    return row["status_code"], json.loads(row["body"])
            status, body = op(tx, now)
            if idem_key:
                self._sql(tx.conn, _I_IDEMPOTENCY, dict(key=idem_key, fingerprint=fingerprint, status_code=status,
                                                     body=json.dumps(body), created_at=now))
        return status, body

    # ------------------------------------------------------------ tickets
    def _next_number(self, conn: Connection, dept_id: str, day: str, *, capped: bool) -> tuple[int, str]:
        dept = self.hospital.department(dept_id)
        assert dept is not None
        n = self._sql(conn, self._counter_stmt, {"dept": dept_id, "day": day}).scalar_one()
        if capped and n > dept.daily_capacity:  # booked appointments and emergencies are always seen
            raise ConflictError(f"{dept.name.get('en', dept_id)} has issued all {dept.daily_capacity} tickets for today.")
        return n, f"{dept.prefix}{n:03d}"

    def _check_open(self, dept_id: str, now: datetime) -> None:
        dept = self.hospital.department(dept_id)
        assert dept is not None
        local = now.astimezone(self.tz).time()
        if local < dept.opens or (dept.closes is not None and local >= dept.closes):
            closes = dept.closes.strftime("%H:%M") if dept.closes else "24:00"
            raise ConflictError(f"{dept.name.get('en', dept_id)} is closed now; it is open from "
                                f"{dept.opens.strftime('%H:%M')} to {closes}.")

    def _priority_words(self, patient, day: date) -> str | None:  # type: ignore[no-untyped-def]
        groups = self.rules.priority_groups
        if patient is None:
            return None
        age = patient.age_on(day)
        if "elderly" in groups and age >= self.rules.elderly_age:
            return f"age {age}"
        if "pregnant" in groups and patient.pregnant:
            return "pregnant"
        if "disabled" in groups and patient.disabled:
            return "disabled"
        return None

    def _insert_ticket(self, tx: Tx, now: datetime, **values: Any) -> Record:
        day = self.today(now)
        capped = values.get("source") != "appointment" and not values.get("emergency")
        n, number = self._next_number(tx.conn, values["department"], day, capped=capped)
        ticket_id = secrets.token_urlsafe(12)
        row = dict(ticket_id=ticket_id, day=day, number_seq=n, number=number, issued_at=now, arrived_at=now,
                   status="waiting", recall_count=0, recalls_total=0, no_show_count=0, emergency=False,
                   is_returning=False, masked_name="", language="zh", room=None, priority=None)
        row.update(values)
        full = dict(_EMPTY_TICKET)
        full.update(row)
        return self._sql(tx.conn, _I_TICKET, full).one()

    def check_in(self, appointment_no: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Check in an appointment: 201 with a new ticket, or 200 with the ticket it already has today."""
        appt_no = appointment_no.strip().upper()
        appt = self.backend.find_appointment(appt_no)
        if appt is None:
            raise NotFoundError(f"There is no appointment {appt_no}. Please check the number on your slip "
                                "or ask at the desk.")
        if appt.status == "cancelled":
            raise ConflictError(f"Appointment {appt_no} was cancelled. Please ask at the desk.")
        dept = self.hospital.department(appt.department)
        if dept is None:
            raise ConflictError(f"Appointment {appt_no} is for {appt.department}, which this site does not run.")
        patient = self.backend.get_patient(appt.patient_id)

        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            day = self.today(now)
            existing = self._sql(tx.conn, _Q_TICKET_OF_APPOINTMENT, {"day": day, "no": appt_no}).first()
            if existing is not None:
                return 200, self._ticket_out(tx.conn, existing, now, already=True).model_dump(mode="json")
            local_slot = appt.slot_start.astimezone(self.tz)
            if local_slot.date().isoformat() != day:
                raise ConflictError(f"Appointment {appt_no} is on {local_slot:%Y-%m-%d}, not today.")
            opens = appt.slot_start - timedelta(minutes=self.rules.checkin_opens_before_min)
            if now < opens:
                raise ConflictError(f"Check-in for your {local_slot:%H:%M} appointment opens at "
                                    f"{opens.astimezone(self.tz):%H:%M}.")
            # A booked room this site does not have, or that does not serve the department, is a
            # booking error: the patient still gets a ticket, queued for the department.
            booked = self.hospital.room(appt.room) if appt.room else None
            room_id = booked.id if booked is not None and appt.department in booked.departments else None
            if appt.room and room_id is None:
                log.warning("appointment %s booked into room %s, which does not serve %s: queued for the department",
                            appt_no, appt.room, appt.department)
            affected = {room_id} if room_id else set(self._rooms_of_dept(appt.department))
            # Rooms before the number counter, the same order as call-next: no convoy, no deadlock.
            self._lock_rooms(tx.conn, sorted(affected))
            row = self._insert_ticket(
                tx, now, department=appt.department, room=room_id, source="appointment", appointment_no=appt_no,
                patient_id=appt.patient_id, masked_name=mask_name(patient.name if patient else ""),
                language=patient.language if patient else "zh", priority=self._priority_words(patient, now.date()),
                emergency=dept.emergency, slot_start=appt.slot_start, slot_end=appt.slot_end,
            )
            self._bump(tx, affected, now, tickets_changed={row["ticket_id"]: row})
            self._mark_checked_in(tx, appt_no)
            return 201, self._ticket_out(tx.conn, row, now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def _mark_checked_in(self, tx: Tx, appt_no: str) -> None:
        """Tell the HIS after the commit; on SQLite a group commit's check-ins go in one HIS transaction."""
        if not self.store.is_sqlite:  # concurrent transactions: each tells its own
            tx.after_commit(lambda: self._send_his_marks([appt_no]))
            return
        self._his_marks.append(appt_no)  # SQLite: only ever touched under the writer lock

        def forget() -> None:
            if appt_no in self._his_marks:
                self._his_marks.remove(appt_no)

        tx.on_rollback(forget)
        tx.after_commit(self._flush_his_marks)

    def _flush_his_marks(self) -> None:
        marks, self._his_marks = self._his_marks, []
        if marks:  # empty: an earlier hook of the same group commit sent them
            self._send_his_marks(marks)

    def _send_his_marks(self, marks: list[str]) -> None:
        try:
            self.backend.mark_checked_in_many(marks)
        except Exception:  # the tickets are ours and committed; the HIS flag is informational
            log.exception("could not mark %s checked in at the hospital backend", ", ".join(marks))

    def walk_in(self, department: str, *, priority: str | None = None, emergency: bool = False,
                language: str = "zh", source: str = "walk_in", name: str | None = None,
                idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Issue a ticket without an appointment (kiosk registration or staff at a desk)."""
        dept = self.hospital.department(department)
        if dept is None:
            raise NotFoundError(f"There is no department {department!r}.")
        if priority is not None and priority not in self.rules.priority_groups:
            raise BadRequestError(f"Priority group {priority!r} is not one of {', '.join(self.rules.priority_groups)}.")

        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            if not (emergency or dept.emergency):
                self._check_open(department, now)
            words = {"elderly": f"age {self.rules.elderly_age}+", "pregnant": "pregnant",
                     "disabled": "disabled"}.get(priority or "")
            self._lock_rooms(tx.conn, self._rooms_of_dept(department))  # rooms first, then the counter
            row = self._insert_ticket(tx, now, department=department, source=source, priority=words,
                                      emergency=emergency or dept.emergency, language=language,
                                      masked_name=mask_name(name or ""))
            self._bump(tx, set(self._rooms_of_dept(department)), now, tickets_changed={row["ticket_id"]: row})
            return 201, self._ticket_out(tx.conn, row, now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def ticket(self, ticket_id: str) -> TicketOut:
        with self._reading() as conn:
            return self._ticket_out(conn, self._ticket_row(conn, ticket_id), self.clock())

    def ticket_detail(self, ticket_id: str) -> dict:
        """The patient page's view: the ticket plus whether the survey can be answered."""
        with self._reading() as conn:
            row = self._ticket_row(conn, ticket_id)
            out = self._ticket_out(conn, row, self.clock()).model_dump(mode="json")
        out["survey_open"] = row["status"] == "done" and row["survey_score"] is None
        out["survey_done"] = row["survey_score"] is not None
        return out

    # ----------------------------------------------------------- calling
    def _finish_current(self, tx: Tx, room_row: Record, now: datetime) -> str | None:
        """Close the room's current ticket (called or serving) as done; returns its id."""
        tid = room_row["current_ticket_id"]
        if not tid:
            return None
        t = self._ticket_row(tx.conn, tid)
        if t["status"] not in ("called", "serving"):
            return None
        self._sql(tx.conn, _U_DONE, {"tid": tid, "now": now})
        began = t["service_started_at"] or t["called_at"]
        if began is not None:
            self._sql(tx.conn, _I_SERVICE_TIME, dict(department=t["department"], at=now,
                                                  minutes=max(0.0, (now - began).total_seconds() / 60)))
            self._estimate_cache.pop(("svc", t["department"]), None)
        return tid

    def _call(self, tx: Tx, now: datetime, room: Room, room_row: Record, placed: R.Placed, counter: int,
              *, kind: CallKind = CallKind.CALL) -> CallOut:
        tid = placed.ticket.ticket_id
        res = self._sql(tx.conn, _U_CALLED, {"tid": tid, "now": now, "first": now, "b_room": room.id,
                                          "reason": placed.reason})
        if res.rowcount != 1:  # another replica called it between our read and our write
            raise ConflictError(f"Ticket {placed.ticket.number} was called by someone else just now; try again.")
        call_id = _new_id("c")
        sharing = set(self._rooms_sharing(room))
        states = self._bump(tx, sharing, now, tickets_changed={tid: None}, publish_now=frozenset({room.id}),
                            room_updates={room.id: dict(
            current_ticket_id=tid, current_call_id=call_id, others_since_priority=counter)})
        seq = states[room.id].seq
        self._sql(tx.conn, _I_CALL, dict(call_id=call_id, ticket_id=tid, room=room.id, kind=kind.value,
                                      reason=placed.reason, at=now, seq=seq, day=self.today(now)))
        row = self._ticket_row(tx.conn, tid)
        event = CallEvent(id=call_id, seq=seq, ts=now, site=self.site, room=room.id, room_name=dict(room.name),
                          department=row["department"], ticket=row["number"], kind=kind,
                          masked_name=row["masked_name"], recall_count=0,
                          announce=announcement_texts(row["number"], room.id, room.name))
        if self.publisher is not None:
            publisher = self.publisher
            tx.after_commit(lambda: publisher.publish_call(event))
        return CallOut(call_id=call_id, kind=kind.value, room=room.id, ticket=self._ticket_out(tx.conn, row, now),
                       reason=placed.reason)

    def _open_room(self, tx: Tx, room_id: str) -> tuple[Room, Record]:
        room = self._room(room_id)
        locked = self._lock_rooms(tx.conn, self._rooms_sharing(room))
        row = locked[room_id]
        if row["status"] != "open":
            raise ConflictError(f"{room.name.get('en', room_id).capitalize()} is {row['status']}: "
                                "resume it before calling patients.")
        return room, row

    def call_next(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Finish the room's current patient and call the next one by the rules, with the reason."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row = self._open_room(tx, room_id)
            lanes = self._lanes_for(tx.conn, [room], self.today(now), now)[room.id]
            placed = lanes.first(counter=row["others_since_priority"], now=now)
            if placed is None:
                raise ConflictError(f"Nobody is waiting for {room.name.get('en', room_id)}.")
            self._finish_current(tx, row, now)
            counter = R.counter_after(placed, row["others_since_priority"])
            return 200, self._call(tx, now, room, row, placed, counter).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def call_ticket(self, room_id: str, ticket_id: str, *, idem_key: str | None = None,
                    fingerprint: str = "") -> tuple[int, dict]:
        """Call one chosen waiting ticket out of order (the reason says so, and who the rules would have called)."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row = self._open_room(tx, room_id)
            t = self._ticket_row(tx.conn, ticket_id, lock=True)
            if t["status"] != "waiting":
                raise ConflictError(f"Ticket {t['number']} is {t['status']}, not waiting.")
            if not (t["room"] == room_id or (t["room"] is None and t["department"] in room.departments)):
                raise ConflictError(f"Ticket {t['number']} is not queued for {room.name.get('en', room_id)}; "
                                    "transfer it first.")
            lanes = self._lanes_for(tx.conn, [room], self.today(now), now)[room.id]
            rule_next = lanes.first(counter=row["others_since_priority"], now=now)
            if rule_next is not None and rule_next.ticket.ticket_id == ticket_id:
                placed = rule_next
            else:
                note = f" (next by the rules: {rule_next.ticket.number})" if rule_next else ""
                placed = R.Placed(self._waiting(t), "chosen", f"chosen by the clinician{note}")
            self._finish_current(tx, row, now)
            counter = R.counter_after(placed, row["others_since_priority"])
            return 200, self._call(tx, now, room, row, placed, counter).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def _current(self, tx: Tx, room_id: str, *, statuses: tuple[str, ...]) -> tuple[Room, Record, Record]:
        room = self._room(room_id)
        # Lock every room this change may re-publish, in one fixed order (no deadlock between replicas).
        row = self._lock_rooms(tx.conn, self._rooms_sharing(room))[room_id]
        label = room.name.get("en", room_id)
        if not row["current_ticket_id"]:
            raise ConflictError(f"No patient has been called to {label}.")
        t = self._ticket_row(tx.conn, row["current_ticket_id"], lock=True)
        if t["status"] not in statuses:
            raise ConflictError(f"Ticket {t['number']} in {label} is {t['status']}; "
                                f"this needs a ticket that is {' or '.join(statuses)}.")
        return room, row, t

    def recall(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Call the room's current ticket again (limited in number and spacing)."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row, t = self._current(tx, room_id, statuses=("called",))
            if t["recall_count"] >= self.rules.max_recalls:
                raise ConflictError(f"Ticket {t['number']} was already called again {t['recall_count']} times; "
                                    "mark it as a no-show instead.")
            since = (now - t["called_at"]).total_seconds()
            if since < self.rules.recall_min_interval_s:
                wait = int(self.rules.recall_min_interval_s - since + 0.999)
                raise ConflictError(f"Wait {wait} s more before calling {t['number']} again.")
            count = t["recall_count"] + 1
            reason = f"recall {count} of {self.rules.max_recalls}"
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(
                recall_count=count, recalls_total=t["recalls_total"] + 1, called_at=now))
            call_id = _new_id("c")
            states = self._bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None},
                                publish_now=frozenset({room_id}),
                                room_updates={room_id: dict(current_call_id=call_id)})
            seq = states[room_id].seq
            tx.conn.execute(insert(calls).values(call_id=call_id, ticket_id=t["ticket_id"], room=room_id,
                                                 kind="recall", reason=reason, at=now, seq=seq, day=self.today(now)))
            event = CallEvent(id=call_id, seq=seq, ts=now, site=self.site, room=room_id, room_name=dict(room.name),
                              department=t["department"], ticket=t["number"], kind=CallKind.RECALL,
                              masked_name=t["masked_name"], recall_count=count,
                              announce=announcement_texts(t["number"], room_id, room.name, recall=True))
            if self.publisher is not None:
                publisher = self.publisher
                tx.after_commit(lambda: publisher.publish_call(event))
            fresh = self._ticket_row(tx.conn, t["ticket_id"])
            return 200, CallOut(call_id=call_id, kind="recall", room=room_id,
                                ticket=self._ticket_out(tx.conn, fresh, now), reason=reason).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def no_show(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """The called patient did not come: back in the queue after a skip, or cancelled after N no-shows."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row, t = self._current(tx, room_id, statuses=("called",))
            count = t["no_show_count"] + 1
            if count >= self.rules.no_show_cancel_after:
                values: dict[str, Any] = dict(status="no_show", no_show_count=count, finished_at=now,
                                              cancel_reason=f"did not come after {count} calls")
            else:
                values = dict(status="waiting", no_show_count=count, call_room=None,
                              not_before=now + timedelta(minutes=self.rules.no_show_skip_min))
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(**values))
            self._bump(tx, set(self._rooms_sharing(room)), now, tickets_changed={t["ticket_id"]},
                       room_updates={room_id: dict(current_ticket_id=None, current_call_id=None)})
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, t["ticket_id"]), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def start_service(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """The called patient has arrived in the room."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row, t = self._current(tx, room_id, statuses=("called",))
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(
                status="serving", service_started_at=now))
            self._bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None})  # serving: not waiting
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, t["ticket_id"]), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def finish(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """The room's current patient is done."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            room, row, t = self._current(tx, room_id, statuses=("called", "serving"))
            self._finish_current(tx, row, now)
            self._bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None},  # done: not waiting
                       room_updates={room_id: dict(current_ticket_id=None, current_call_id=None)})
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, t["ticket_id"]), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def _clear_from_room(self, tx: Tx, t: Record) -> set[str]:
        """If a room has this ticket as its current one, clear it; returns the rooms touched."""
        touched = set()
        for r in tx.conn.execute(select(rooms.c.room_id).where(rooms.c.current_ticket_id == t["ticket_id"])):
            tx.conn.execute(update(rooms).where(rooms.c.room_id == r.room_id).values(current_ticket_id=None,
                                                                                     current_call_id=None))
            touched.add(r.room_id)
        return touched

    def transfer(self, ticket_id: str, *, department: str | None = None, room: str | None = None,
                 placement: str = "keep", by_rooms: frozenset[str] | None = None,
                 idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Move a ticket to another department or room keeping its number.

        ``placement``: ``front`` (near the front, like a patient returning with results),
        ``keep`` (its original place by arrival and slot) or ``back`` (as if it arrived now).
        ``by_rooms``: a clinician may only transfer tickets of their own rooms.
        """
        if placement not in ("front", "keep", "back"):
            raise BadRequestError("placement must be front, keep or back.")
        if department is None and room is None:
            raise BadRequestError("Give a department or a room to transfer to.")
        if department is not None and self.hospital.department(department) is None:
            raise NotFoundError(f"There is no department {department!r}.")
        if room is not None:
            target = self._room(room)
            if department is None:
                department = target.departments[0]
            elif department not in target.departments:
                raise BadRequestError(f"Room {room} does not serve {department}.")

        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            t = self._ticket_row(tx.conn, ticket_id, lock=True)
            if t["status"] in ("cancelled", "no_show"):
                raise ConflictError(f"Ticket {t['number']} is {t['status']} and cannot be transferred.")
            if by_rooms is not None and (t["call_room"] or t["room"]) not in by_rooms and not (
                    t["room"] is None and t["call_room"] is None and any(
                        t["department"] in self._room(r).departments for r in by_rooms)):
                raise ForbiddenError(f"Ticket {t['number']} is not in one of your rooms.")
            old_rooms = set(self._rooms_of_dept(t["department"])) | ({t["room"]} if t["room"] else set())
            touched = self._clear_from_room(tx, t)
            from_where = self._room_label(t["call_room"]) if t["call_room"] else self._dept_name(t["department"]).get("en")
            values: dict[str, Any] = dict(status="waiting", department=department, room=room, call_room=None,
                                          not_before=None, recall_count=0, is_returning=False, front_reason=None)
            if placement == "front":
                values.update(is_returning=True, arrived_at=now, front_reason=f"transferred from {from_where}, "
                                                                               "placed near the front")
            elif placement == "back":
                values.update(arrived_at=now, slot_start=None, slot_end=None)
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(**values))
            new_rooms = {room} if room else set(self._rooms_of_dept(department))  # type: ignore[arg-type]
            self._bump(tx, old_rooms | new_rooms | touched, now, tickets_changed={ticket_id})
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, ticket_id), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def return_with_results(self, ticket_id: str, *, idem_key: str | None = None,
                            fingerprint: str = "") -> tuple[int, dict]:
        """A patient seen earlier today is back with test results: re-enter near the front of the same room."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            t = self._ticket_row(tx.conn, ticket_id, lock=True)
            if t["status"] != "done":
                raise ConflictError(f"Ticket {t['number']} is {t['status']}; only a patient already seen can return "
                                    "with results.")
            room = t["call_room"] or t["room"]
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                status="waiting", is_returning=True, arrived_at=now, room=room, call_room=None, finished_at=None,
                front_reason="returning with test results", recall_count=0, not_before=None))
            affected = {room} if room else set(self._rooms_of_dept(t["department"]))
            self._bump(tx, affected, now, tickets_changed={ticket_id})
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, ticket_id), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def cancel(self, ticket_id: str, *, reason: str = "cancelled", idem_key: str | None = None,
               fingerprint: str = "") -> tuple[int, dict]:
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            t = self._ticket_row(tx.conn, ticket_id, lock=True)
            if t["status"] not in ACTIVE:
                raise ConflictError(f"Ticket {t['number']} is already {t['status']}.")
            touched = self._clear_from_room(tx, t)
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                status="cancelled", cancel_reason=reason, finished_at=now))
            affected = touched | ({t["room"]} if t["room"] else set(self._rooms_of_dept(t["department"])))
            self._bump(tx, affected, now, tickets_changed={ticket_id})
            return 200, self._ticket_out(tx.conn, self._ticket_row(tx.conn, ticket_id), now).model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def set_room_status(self, room_id: str, status: str, *, idem_key: str | None = None,
                        fingerprint: str = "") -> tuple[int, dict]:
        """Pause, resume (open) or close a room."""
        if status not in ("open", "paused", "closed"):
            raise BadRequestError("status must be open, paused or closed.")
        self._room(room_id)

        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            row = self._lock_rooms(tx.conn, [room_id])[room_id]
            if row["status"] == status:
                raise ConflictError(f"{self._room_label(room_id).capitalize()} is already {status}.")
            states = self._bump(tx, {room_id}, now, room_updates={room_id: dict(status=status)})
            self._estimate_cache.clear()
            return 200, states[room_id].model_dump(mode="json")

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def end_of_day(self, *, idem_key: str | None = None, fingerprint: str = "") -> tuple[int, dict]:
        """Close the day: every ticket still waiting or called is cancelled, serving ones are finished."""
        def op(tx: Tx, now: datetime) -> tuple[int, dict]:
            waiting = tx.conn.execute(update(tickets).where(tickets.c.status.in_(("waiting", "called"))).values(
                status="cancelled", cancel_reason="end of day", finished_at=now)).rowcount
            serving = tx.conn.execute(update(tickets).where(tickets.c.status == "serving").values(
                status="done", finished_at=now)).rowcount
            tx.conn.execute(update(rooms).values(current_ticket_id=None, current_call_id=None))
            # Idempotency keys only protect retries of the last minutes; keep two days of them.
            tx.conn.execute(delete(idempotency).where(idempotency.c.created_at < now - timedelta(days=2)))
            self._drop_lanes()  # many tickets changed at once: rebuilt from this transaction's view
            tx.on_rollback(self._drop_lanes)
            self._bump(tx, {r.id for r in self.hospital.rooms}, now)
            return 200, {"cancelled": waiting, "finished": serving}

        return self.execute(op, idem_key=idem_key, fingerprint=fingerprint)

    def survey(self, ticket_id: str, score: int, comment: str = "") -> dict:
        """The patient's satisfaction (1-5) after service; once per ticket."""
        with self.store.tx() as tx:
            t = self._ticket_row(tx.conn, ticket_id, lock=True)
            if t["status"] != "done":
                raise ConflictError("The survey opens once your visit is finished.")
            if t["survey_score"] is not None:
                raise ConflictError("Thank you: this visit was already rated.")
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                survey_score=score, survey_comment=comment.strip()[:500] or None))
        return {"ok": True}

    # ------------------------------------------------------------- views
    def queue(self, room_id: str) -> list[QueueEntry]:
        """The room's waiting list in calling order, with why each one is where it is."""
        room = self._room(room_id)
        now = self.clock()
        with self.store.read() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            cand = {r.ticket_id: r for r in self._load(conn, [room], self.today(now))[room.id]}
            order = R.order_queue([self._waiting(r) for r in cand.values()], now=now, rules=self.rules,
                                  others_since_priority=row["others_since_priority"], tz=self.tz, explain=True)
        out = []
        for i, p in enumerate(order):
            waited = int(R.waited_minutes(p.ticket, now, self.rules))
            out.append(QueueEntry(ticket_id=p.ticket.ticket_id, number=p.ticket.number, position=i + 1,
                                  reason=p.reason, category=p.category, waited_min=waited,
                                  masked_name=cand[p.ticket.ticket_id].masked_name, priority=p.ticket.priority,
                                  long_wait=waited >= self.rules.long_wait_alert_min))
        return out

    def console(self, room_id: str) -> dict:
        """Everything the clinician page shows: room state, current ticket with its reason, queue, alerts."""
        state = self.room_state(room_id)
        current = None
        with self.store.read() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            if row["current_ticket_id"]:
                t = self._ticket_row(conn, row["current_ticket_id"])
                if t["status"] in ("called", "serving"):
                    current = {"ticket_id": t["ticket_id"], "number": t["number"], "status": t["status"],
                               "reason": t["call_reason"], "recall_count": t["recall_count"],
                               "masked_name": t["masked_name"]}
        queue = [e.__dict__ for e in self.queue(room_id)]
        alerts = [f"{e['number']} has waited {e['waited_min']} min (limit {self.rules.long_wait_alert_min})."
                  for e in queue if e["long_wait"]]
        return {"room": room_id, "room_name": dict(self._room(room_id).name), "status": state.status.value,
                "seq": state.seq, "current": current, "queue": queue, "alerts": alerts}

    # ------------------------------------------------------------ alerts
    def check_alerts(self) -> list[Alert]:
        """Raise one long-wait alert per ticket that passed the threshold (published; shown on the page)."""
        now = self.clock()
        # Read without holding up the writer: only a ticket that arrived before the limit can have
        # waited that long (an early appointment's wait starts later, never sooner).
        limit = now - timedelta(minutes=self.rules.long_wait_alert_min)
        with self.store.read() as conn:
            rows = {r["ticket_id"]: r for r in conn.execute(select(tickets).where(
                tickets.c.status == "waiting", tickets.c.day == self.today(now), tickets.c.alerted_at.is_(None),
                tickets.c.arrived_at <= limit)).mappings()}
        due = R.long_waits([self._waiting(r) for r in rows.values()], now=now, rules=self.rules)
        raised: list[Alert] = []
        if not due:
            return raised
        with self.store.tx() as tx:
            for t, minutes in due:
                # Still waiting and not yet alerted (a call, or another replica, may have come first).
                marked = tx.conn.execute(update(tickets).where(
                    tickets.c.ticket_id == t.ticket_id, tickets.c.status == "waiting",
                    tickets.c.alerted_at.is_(None)).values(alerted_at=now)).rowcount
                if not marked:
                    continue
                r = rows[t.ticket_id]
                raised.append(Alert(id=f"lw-{t.ticket_id}"[:64].replace("_", "-"), ts=now, kind="long_wait",
                                    room=r["room"], department=r["department"], ticket=r["number"],
                                    message=f"{r['number']} has waited {minutes} min "
                                            f"(limit {self.rules.long_wait_alert_min} min)."))
        if self.publisher is not None:
            for alert in raised:
                self.publisher.publish_alert(alert)
        return raised

    # --------------------------------------------------------- statistics
    def stats(self, day: str | None = None) -> dict:
        """Per department and room for one day: tickets, waits (avg, p90), service time, no-shows, recalls, survey."""
        day = day or self.today()
        with self.store.read() as conn:
            rows = list(conn.execute(select(tickets).where(tickets.c.day == day)).mappings())

        def p90(values: list[float]) -> float | None:  # inclusive quantile, as the dashboard (docs/dashboard.md)
            value = quantile(values, 0.9)
            return None if value is None else round(value, 1)

        def summarise(group: list[Record]) -> dict:
            waits, services = [], []
            for r in group:
                if r["first_called_at"] is not None:
                    start = R.wait_started(self._waiting(r), self.rules)
                    waits.append(max(0.0, (r["first_called_at"] - start).total_seconds() / 60))
                if r["status"] == "done" and r["finished_at"] is not None:
                    began = r["service_started_at"] or r["called_at"]
                    if began is not None:
                        services.append(max(0.0, (r["finished_at"] - began).total_seconds() / 60))
            called = [r for r in group if r["first_called_at"] is not None]
            no_shows = [r for r in group if r["no_show_count"] > 0]
            scores = [r["survey_score"] for r in group if r["survey_score"] is not None]
            return {
                "tickets": len(group),
                "served": sum(1 for r in group if r["status"] == "done"),
                "waiting": sum(1 for r in group if r["status"] == "waiting"),
                "avg_wait_min": round(statistics.fmean(waits), 1) if waits else None,
                "p90_wait_min": p90(waits),
                "avg_service_min": round(statistics.fmean(services), 1) if services else None,
                "no_show_rate": round(len(no_shows) / len(called), 3) if called else None,
                "recalls": sum(r["recalls_total"] for r in group),
                "survey_count": len(scores),
                "survey_avg": round(statistics.fmean(scores), 2) if scores else None,
            }

        departments = {d.id: summarise([r for r in rows if r["department"] == d.id]) for d in self.hospital.departments}
        room_stats = {rm.id: summarise([r for r in rows if r["call_room"] == rm.id]) for rm in self.hospital.rooms}
        return {"site": self.site, "day": day, "departments": departments, "rooms": room_stats,
                "total": summarise(rows)}

    def stats_csv(self, day: str | None = None) -> str:
        data = self.stats(day)
        buf = io.StringIO()
        fields = ["tickets", "served", "waiting", "avg_wait_min", "p90_wait_min", "avg_service_min", "no_show_rate",
                  "recalls", "survey_count", "survey_avg"]
        writer = csv.writer(buf)
        writer.writerow(["day", "scope", "id", *fields])
        for scope in ("departments", "rooms"):
            for ident, values in data[scope].items():
                writer.writerow([data["day"], scope[:-1], ident, *("" if values[f] is None else values[f] for f in fields)])
        writer.writerow([data["day"], "site", data["site"], *("" if data["total"][f] is None else data["total"][f]
                                                               for f in fields)])
        return buf.getvalue()
