"""``QueueContext``: what every part of the queue shares (store, hospital file, clock, publisher).

The parts (``ordering``, ``snapshots``, ``tickets``, ``issuing``, ``calling``, ``console``,
``alerts``, ``stats``, ``surveys``, ``idempotency``) each receive the one context of the
service and read the hospital configuration through it, so a configuration change applied
here is seen by all of them at once. It also holds the small lookups they all need: a room
by id, a ticket row, room rows, the rooms a department's tickets can be called to.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from protocol.payloads import Alert, CallEvent, RoomState
from queueserver import rules as R
from queueserver.errors import RoomNotFound, TicketNotFound
from queueserver.fastsql import StatementRunner
from queueserver.hospital.port import HospitalBackend
from queueserver.hospital_file import Hospital, Room
from queueserver.store import Store, rooms, service_times, tickets

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Record = Mapping[Any, Any]  # a row by column name (a dict from queueserver.fastsql, or SQLAlchemy's RowMapping)
Listener = Callable[[set[str], set[str]], None]
ACTIVE = ("waiting", "called", "serving")
ESTIMATE_TTL_S = 2.0  # service times and open rooms feed estimates only: a little staleness is fine

# Statements of the hot path, built once: building a statement costs more than running it
# (measured ~45 us against ~15 us on SQLite); values go in as bound parameters.
Q_TICKET = select(tickets).where(tickets.c.ticket_id == bindparam("tid"))
_Q_RECENT_SERVICE = (select(service_times.c.minutes).where(service_times.c.department == bindparam("dept"))
                     .order_by(service_times.c.id.desc()).limit(20))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Publisher(Protocol):
    """Where snapshots, calls and alerts go (``queueserver.publisher.MqttPublisher``)."""

    def publish_state(self, state: RoomState) -> None: ...

    def publish_call(self, event: CallEvent) -> None: ...

    def publish_alert(self, alert: Alert) -> None: ...


def waiting(row: Any) -> R.Waiting:
    """The rules' view of a ticket row (a plain Row of the waiting columns or a full ``Record``)."""
    if isinstance(row, Mapping):
        row = SimpleNamespace(**row)
    return R.Waiting(
        ticket_id=row.ticket_id, number=row.number, arrived_at=row.arrived_at, issue_seq=row.number_seq,
        slot_start=row.slot_start, slot_end=row.slot_end, emergency=bool(row.emergency),
        priority=row.priority, returning=bool(row.is_returning), front_reason=row.front_reason,
        not_before=row.not_before,
    )


class QueueContext:
    """The shared state and lookups of one site's queue (see the module docstring)."""

    def __init__(self, store: Store, hospital: Hospital, backend: HospitalBackend, *, clock: Clock,
                 publisher: Publisher | None, public_url: str, site: str | None) -> None:
        self.store = store
        self.backend = backend
        self.clock = clock
        self.publisher = publisher
        self.public_url = public_url.rstrip("/")
        self.site = site or hospital.site.id
        self.set_hospital(hospital)
        self.sql = StatementRunner(store.engine.dialect)  # the hot statements (queueserver.fastsql)
        self.listeners: list[Listener] = []
        self.local = threading.local()  # per operation: rooms and lanes a bump produced (see Tickets.position)
        self._estimates: dict[tuple[str, str], tuple[float, Any]] = {}
        self._rooms_by_count: dict[int, Any] = {}

    def set_hospital(self, hospital: Hospital) -> None:
        self.hospital, self.rules, self.tz = hospital, hospital.rules, hospital.tz

    # ------------------------------------------------------------ lookups
    def today(self, now: datetime | None = None) -> str:
        """The site's calendar day (its own timezone) as YYYY-MM-DD."""
        return (now or self.clock()).astimezone(self.tz).date().isoformat()

    def room(self, room_id: str) -> Room:
        room = self.hospital.room(room_id)
        if room is None:
            raise RoomNotFound(f"There is no room {room_id!r}.")
        return room

    def room_label(self, room_id: str) -> str:
        room = self.hospital.room(room_id)
        return room.name.get("en", room_id) if room else room_id

    def dept_name(self, dept_id: str) -> dict[str, str]:
        dept = self.hospital.department(dept_id)
        return dict(dept.name) if dept else {"en": dept_id}

    def where(self, dept_id: str, room: Room | None) -> dict[str, str]:
        """Where the patient goes: the room's location, else the department's waiting area ({}: not given)."""
        if room is not None and room.location is not None:
            return room.where()
        dept = self.hospital.department(dept_id)
        return dept.location.texts() if dept is not None and dept.location is not None else {}

    def where_map(self, dept_id: str, room: Room | None) -> str | None:
        """The floor map of ``where`` as a path on this server (the one of the same location), or None."""
        if room is not None and room.location is not None:
            name = room.location.map
        else:
            dept = self.hospital.department(dept_id)
            name = dept.location.map if dept is not None and dept.location is not None else None
        return f"/api/v1/maps/{name}" if name else None

    def rooms_sharing(self, room: Room) -> list[str]:
        """The rooms that share a department with ``room`` (itself included): one call changes all their lists."""
        depts = set(room.departments)
        return [r.id for r in self.hospital.rooms if depts & set(r.departments)]

    def rooms_of_dept(self, dept_id: str) -> list[str]:
        return [r.id for r in self.hospital.rooms_for(dept_id)]

    def ticket_row(self, conn: Connection, ticket_id: str) -> Record:
        row = self.sql(conn, Q_TICKET, {"tid": ticket_id}).first()
        if row is None:
            raise TicketNotFound(f"There is no ticket {ticket_id!r}.")
        return row

    def room_rows(self, conn: Connection, room_ids: list[str]) -> dict[str, Record]:
        """The rows of these rooms. No row locks: writes are one at a time (the store's writer lock, which
        on PostgreSQL is also the replicas' turn), so what a write reads stays true until it commits."""
        ids = sorted(set(room_ids))
        q = self._rooms_by_count.get(len(ids))
        if q is None:  # one prepared statement per number of rooms (prepared statements cannot expand IN)
            q = select(rooms).where(rooms.c.room_id.in_([bindparam(f"r{i}") for i in range(len(ids))]))
            self._rooms_by_count[len(ids)] = q
        return {r["room_id"]: r for r in self.sql(conn, q, {f"r{i}": rid for i, rid in enumerate(ids)}).all()}

    def notify(self, room_ids: set[str], ticket_ids: set[str]) -> None:
        """Tell the change listeners (live pages, the core's workers); a failing listener is logged."""
        for fn in self.listeners:
            try:
                fn(room_ids, ticket_ids)
            except Exception:
                log.exception("change listener failed")

    # ------------------------------------------------------------ estimates
    def service_minutes(self, conn: Connection, dept_id: str) -> float:
        """Mean of the department's last 20 service times (cached for a few seconds: it is an estimate)."""
        hit = self._estimates.get(("svc", dept_id))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        recent = [r["minutes"] for r in self.sql(conn, _Q_RECENT_SERVICE, {"dept": dept_id}).all()]
        value = statistics.fmean(recent) if recent else self.rules.default_service_min
        self._estimates[("svc", dept_id)] = (time.monotonic() + ESTIMATE_TTL_S, value)
        return value

    def open_rooms(self, conn: Connection, room_ids: list[str]) -> int:
        key = ("open", ",".join(room_ids))
        hit = self._estimates.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value = max(1, sum(1 for (st,) in conn.execute(select(rooms.c.status).where(rooms.c.room_id.in_(room_ids)))
                           if st == "open"))
        self._estimates[key] = (time.monotonic() + ESTIMATE_TTL_S, value)
        return value

    def forget_service_minutes(self, dept_id: str) -> None:
        self._estimates.pop(("svc", dept_id), None)

    def forget_estimates(self) -> None:
        self._estimates.clear()
