"""The staff side of help: every help call, red flag and long wait, until a person has answered it.

A ``HelpDesk`` keeps help items in the store (``queueserver.store_help.help_requests``):

- ``raise_request``: a kiosk's 呼叫工作人员, a red-flag symptom, a payment or printer fault
  (idempotent on the kiosk's key: a retry finds the first request);
- ``acknowledge`` (我来处理) and ``resolve``, recording who and when;
- ``tick()`` (every second, from the app): turns the queue's long-wait alerts
  (``qs_tickets.alerted_at``) into help items and resolves them once the patient is called;
  escalates items nobody acknowledged within ``escalate_after`` seconds (``on_escalate`` is
  told once per item, even with several server processes: the mark is a conditional update);
  and notices changes made by other processes, so live pages hear of them within a second.

The domain speaks results and errors (``NotFoundError``, ``ConflictError``); the HTTP layer
(``queueserver.helpdesk_api``) maps them to status codes.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from protocol.errors import ConflictError, NotFoundError
from queueserver.store import Store, tickets
from queueserver.store_help import help_requests

log = logging.getLogger(__name__)

KINDS = ("help", "red_flag", "long_wait")
DEFAULT_ESCALATE_AFTER = 120.0  # seconds; the hospital sets its own (CLINICFLOW_HELP_ESCALATE_AFTER)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class HelpItem:
    """One help request, red flag or long wait, and what staff did about it."""

    help_id: str
    kind: str
    reason: str
    created_at: datetime
    device: str | None = None
    room: str | None = None
    department: str | None = None
    ticket: str | None = None
    ticket_id: str | None = None
    symptoms: tuple[str, ...] = ()
    message: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    escalated_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """JSON-ready, with ``status``, ``age_s`` and ``escalated`` for the pages."""
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"help_id": self.help_id, "kind": self.kind, "reason": self.reason, "device": self.device,
                "room": self.room, "department": self.department, "ticket": self.ticket,
                "symptoms": list(self.symptoms), "message": self.message, "status": self.status,
                "created_at": iso(self.created_at), "age_s": max(0, int((now - self.created_at).total_seconds())),
                "acknowledged_at": iso(self.acknowledged_at), "acknowledged_by": self.acknowledged_by,
                "resolved_at": iso(self.resolved_at), "resolved_by": self.resolved_by,
                "escalated_at": iso(self.escalated_at), "escalated": self.escalated_at is not None}

    def concerns_room(self, room: str, departments: Iterable[str]) -> bool:
        """Shown on this room's console: red flags everywhere; others for the room, its departments, or the site."""
        if self.kind == "red_flag":
            return True
        if self.room is not None:
            return self.room == room
        return self.department is None or self.department in set(departments)


def _item(row: Any) -> HelpItem:
    return HelpItem(help_id=row["help_id"], kind=row["kind"], reason=row["reason"], created_at=row["created_at"],
                    device=row["device"], room=row["room"], department=row["department"], ticket=row["ticket"],
                    ticket_id=row["ticket_id"], symptoms=tuple(s for s in (row["symptoms"] or "").split(",") if s),
                    message=row["message"] or "", acknowledged_at=row["acknowledged_at"],
                    acknowledged_by=row["acknowledged_by"], resolved_at=row["resolved_at"],
                    resolved_by=row["resolved_by"], escalated_at=row["escalated_at"])


class HelpDesk:
    """Help items of one site in the store (see the module docstring).

    ``on_escalate(item)`` runs after the commit that marked the item escalated (tone, hall board,
    buzzer are the caller's); listeners added with ``add_listener`` run after every change.
    """

    def __init__(self, store: Store, *, timezone_name: str = "Asia/Shanghai",
                 escalate_after: float = DEFAULT_ESCALATE_AFTER, clock: Callable[[], datetime] = utcnow,
                 on_escalate: Callable[[HelpItem], None] | None = None) -> None:
        self.store = store
        self.tz = ZoneInfo(timezone_name)
        self.escalate_after = escalate_after
        self.clock = clock
        self.on_escalate = on_escalate
        self._listeners: list[Callable[[], None]] = []
        self._seen_version: tuple | None = None
        self._lock = threading.Lock()

    def add_listener(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in self._listeners:
            try:
                fn()
            except Exception:  # a live page's trouble must not undo a committed acknowledgement
                log.exception("help listener failed")

    def day(self, now: datetime) -> str:
        return now.astimezone(self.tz).date().isoformat()

    # ------------------------------------------------------------------ reads
    def get(self, help_id: str) -> HelpItem:
        with self.store.read() as conn:
            row = conn.execute(select(help_requests).where(help_requests.c.help_id == help_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"There is no help request {help_id!r}.")
        return _item(row)

    def open_items(self) -> list[HelpItem]:
        """Unresolved items, oldest first (the longest-waiting person is at the top)."""
        with self.store.read() as conn:
            rows = conn.execute(select(help_requests).where(help_requests.c.resolved_at.is_(None))
                                .order_by(help_requests.c.created_at)).mappings().all()
        return [_item(r) for r in rows]

    def recent(self, limit: int = 200) -> list[HelpItem]:
        """The newest items, open or not, newest first."""
        with self.store.read() as conn:
            rows = conn.execute(select(help_requests).order_by(help_requests.c.created_at.desc())
                                .limit(limit)).mappings().all()
        return [_item(r) for r in rows]

    def items_of_day(self, day: str) -> list[HelpItem]:
        with self.store.read() as conn:
            rows = conn.execute(select(help_requests).where(help_requests.c.day == day)).mappings().all()
        return [_item(r) for r in rows]

    # ----------------------------------------------------------------- writes
    def raise_request(self, *, kind: str, reason: str, device: str | None = None, room: str | None = None,
                      department: str | None = None, ticket: str | None = None, ticket_id: str | None = None,
                      symptoms: Iterable[str] = (), message: str = "", idem_key: str | None = None,
                      help_id: str | None = None) -> tuple[HelpItem, bool]:
        """Store a new item; returns it and whether it is new (False: the same key or id was seen before)."""
        if kind not in KINDS:
            raise ValueError(f"unknown help kind {kind!r}; one of {', '.join(KINDS)}")
        now = self.clock()
        help_id = help_id or uuid.uuid4().hex[:16]
        values = {"help_id": help_id, "idem_key": idem_key, "day": self.day(now),
                  "kind": kind, "reason": reason, "device": device, "room": room, "department": department,
                  "ticket": ticket, "ticket_id": ticket_id, "symptoms": ",".join(symptoms)[:400],
                  "message": message, "created_at": now}
        found = self._existing(help_id, idem_key)
        if found is not None:
            return found, False
        try:
            with self.store.tx() as tx:
                tx.conn.execute(help_requests.insert().values(**values))
                tx.after_commit(self._changed)
        except IntegrityError:  # another process stored the same request a moment ago
            found = self._existing(help_id, idem_key)
            if found is None:
                raise
            return found, False
        return self.get(help_id), True

    def _existing(self, help_id: str, idem_key: str | None) -> HelpItem | None:
        cond = help_requests.c.help_id == help_id
        if idem_key:
            cond = or_(cond, help_requests.c.idem_key == idem_key)
        with self.store.read() as conn:
            row = conn.execute(select(help_requests).where(cond)).mappings().first()
        return _item(row) if row is not None else None

    def acknowledge(self, help_id: str, by: str) -> HelpItem:
        """我来处理: the first person to acknowledge is recorded; a second one gets the item as it is."""
        return self._mark(help_id, "acknowledged", by)

    def resolve(self, help_id: str, by: str) -> HelpItem:
        """Done: resolving also acknowledges an item nobody had acknowledged."""
        return self._mark(help_id, "resolved", by)

    def _mark(self, help_id: str, what: str, by: str) -> HelpItem:
        by = by.strip()[:100] or "staff"
        now = self.clock()
        with self.store.tx() as tx:
            # FOR UPDATE: two nurses on two PostgreSQL replicas pressing at once, the second sees the first
            row = tx.conn.execute(select(help_requests).where(help_requests.c.help_id == help_id)
                                  .with_for_update()).mappings().first()
            if row is None:
                raise NotFoundError(f"There is no help request {help_id!r}.")
            if row["resolved_at"] is not None:
                if what == "resolved":
                    return _item(row)
                raise ConflictError(f"This request was already resolved by {row['resolved_by']}.")
            values: dict[str, Any] = {}
            if row["acknowledged_at"] is None:
                values.update(acknowledged_at=now, acknowledged_by=by)
            if what == "resolved":
                values.update(resolved_at=now, resolved_by=by)
            if values:
                tx.conn.execute(update(help_requests).where(help_requests.c.help_id == help_id).values(**values))
                tx.after_commit(self._changed)
        return self.get(help_id)

    # ------------------------------------------------------------- periodic
    def tick(self) -> list[HelpItem]:
        """Long waits in, escalations out, other processes' changes noticed; returns the items escalated now."""
        with self._lock:  # one tick at a time per process
            self.sync_long_waits()
            escalated = self.escalate_due()
            version = self._version()
            if version != self._seen_version:
                self._seen_version = version
                self._changed()
            return escalated

    def sync_long_waits(self) -> int:
        """A help item for every long-wait alert of today still waiting; resolve those whose patient was called."""
        now = self.clock()
        day = self.day(now)
        with self.store.read() as conn:
            waiting = conn.execute(select(tickets.c.ticket_id, tickets.c.number, tickets.c.room, tickets.c.department,
                                          tickets.c.alerted_at).where(
                tickets.c.day == day, tickets.c.status == "waiting", tickets.c.alerted_at.is_not(None))).mappings().all()
            open_waits = {r["ticket_id"]: r["help_id"] for r in conn.execute(
                select(help_requests.c.help_id, help_requests.c.ticket_id).where(
                    help_requests.c.kind == "long_wait", help_requests.c.resolved_at.is_(None))).mappings()}
        added = 0
        for t in waiting:
            help_id = f"lw-{t['ticket_id']}"[:64]
            if t["ticket_id"] in open_waits:
                continue
            _, new = self.raise_request(kind="long_wait", reason="long_wait", room=t["room"], department=t["department"],
                                        ticket=t["number"], ticket_id=t["ticket_id"], help_id=help_id,
                                        message=f"{t['number']} has waited too long")
            added += new
        still = {t["ticket_id"] for t in waiting}
        gone = [hid for tid, hid in open_waits.items() if tid not in still]
        if gone:
            with self.store.tx() as tx:
                tx.conn.execute(update(help_requests).where(help_requests.c.help_id.in_(gone),
                                                            help_requests.c.resolved_at.is_(None))
                                .values(resolved_at=now, resolved_by="queue: called or left"))
                tx.after_commit(self._changed)
        return added

    def escalate_due(self) -> list[HelpItem]:
        """Mark every open, unacknowledged item older than ``escalate_after`` escalated (once); tell ``on_escalate``."""
        now = self.clock()
        limit = now - timedelta(seconds=self.escalate_after)
        due_cond = and_(help_requests.c.acknowledged_at.is_(None), help_requests.c.resolved_at.is_(None),
                        help_requests.c.escalated_at.is_(None), help_requests.c.created_at <= limit)
        with self.store.read() as conn:
            ids = [r[0] for r in conn.execute(select(help_requests.c.help_id).where(due_cond))]
        escalated: list[HelpItem] = []
        for help_id in ids:
            with self.store.tx() as tx:
                marked = tx.conn.execute(update(help_requests).where(help_requests.c.help_id == help_id, due_cond)
                                         .values(escalated_at=now)).rowcount
                if marked:
                    tx.after_commit(self._changed)
            if marked:  # another process may have marked it first: only the one that did tells anyone
                item = self.get(help_id)
                escalated.append(item)
                if self.on_escalate is not None:
                    try:
                        self.on_escalate(item)
                    except Exception:
                        log.exception("escalating help request %s failed", help_id)
        return escalated

    def _version(self) -> tuple:
        with self.store.read() as conn:
            rows = conn.execute(select(help_requests.c.help_id, help_requests.c.acknowledged_at,
                                       help_requests.c.escalated_at).where(help_requests.c.resolved_at.is_(None))
                                .order_by(help_requests.c.help_id)).all()
        return tuple(tuple(r) for r in rows)


def escalate_after_from_env() -> float:
    """Seconds before an unanswered item escalates: ``CLINICFLOW_HELP_ESCALATE_AFTER`` (default 120)."""
    import os

    raw = os.environ.get("CLINICFLOW_HELP_ESCALATE_AFTER", "")
    try:
        value = float(raw) if raw else DEFAULT_ESCALATE_AFTER
    except ValueError:
        log.error("CLINICFLOW_HELP_ESCALATE_AFTER=%r is not a number of seconds; using %s", raw, DEFAULT_ESCALATE_AFTER)
        return DEFAULT_ESCALATE_AFTER
    return max(1.0, value)
