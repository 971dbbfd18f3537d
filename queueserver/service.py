"""``QueueService``: the queue operations of one site, in one place, carried out by the parts named below.

The service joins the hospital file (departments, rooms, rules), the ``HospitalBackend``
(appointments, patients), the pure calling rules (``queueserver.rules``), the store, and an
optional publisher (MQTT). It knows nothing of HTTP: operations return domain results
(``queueserver.results``, ``protocol.api``) and raise domain errors (``queueserver.errors``).
The clock is injected, so a whole clinic day can be replayed in a test.

Where each thing lives:

- ``context``: what the parts share (store, hospital, clock, lookups, estimates);
- ``ordering``: every room's calling order, kept in memory (on PostgreSQL with a change log);
- ``snapshots``: room snapshots, their seq and publishing after the commit;
- ``idempotency``: every write as one transaction, retried, answered once per key;
- ``issuing``: check-in and walk-in tickets; ``tickets``: a ticket's view, moves, end of day;
- ``calling``: call next, call a ticket, recall, no-show, start, finish, pause/resume;
- ``console``: the clinician's waiting list; ``alerts``: long waits; ``stats``; ``surveys``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from protocol.api import CallOut, TicketOut
from protocol.payloads import Alert, RoomState
from queueserver.alerts import LongWaitAlerts
from queueserver.calling import Calling
from queueserver.console import ConsoleView
from queueserver.context import ACTIVE, Clock, Listener, Publisher, QueueContext, utcnow
from queueserver.errors import BadRequestError, ConfigurationConflict, ForbiddenError
from queueserver.hospital.port import HospitalBackend
from queueserver.hospital_file import Hospital
from queueserver.idempotency import Writes
from queueserver.issuing import Issuing
from queueserver.ordering import Ordering
from queueserver.results import DayClosed, Issued, QueueEntry
from queueserver.snapshots import Snapshots
from queueserver.stats import Statistics
from queueserver.store import Store, rooms, tickets
from queueserver.surveys import Surveys
from queueserver.tickets import Tickets

__all__ = ["QueueService", "Publisher", "BadRequestError", "ForbiddenError", "QueueEntry", "utcnow"]


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
        ctx = self.ctx = QueueContext(store, hospital, backend, clock=clock, publisher=publisher,
                                      public_url=public_url, site=site)
        self.store = store
        self.backend = backend
        self.ordering = Ordering(ctx)
        self.snapshots = Snapshots(ctx, self.ordering)
        self.writes = Writes(ctx)
        self.tickets = Tickets(ctx, self.ordering, self.snapshots, self.writes)
        self.issuing = Issuing(ctx, self.snapshots, self.tickets, self.writes)
        self.calling = Calling(ctx, self.ordering, self.snapshots, self.tickets, self.writes)
        self.console_view = ConsoleView(ctx, self.ordering, self.snapshots)
        self.alerts = LongWaitAlerts(ctx)
        self.statistics = Statistics(ctx)
        self.surveys = Surveys(ctx)
        if hasattr(publisher, "on_unheard"):  # a call screens could not hear refreshes the live console
            publisher.on_unheard = lambda room: ctx.notify({room}, set())  # type: ignore[union-attr]

    # ------------------------------------------------------------ the site
    @property
    def hospital(self) -> Hospital:
        return self.ctx.hospital

    @property
    def rules(self) -> Any:
        return self.ctx.rules

    @property
    def tz(self) -> Any:
        return self.ctx.tz

    @property
    def site(self) -> str:
        return self.ctx.site

    @site.setter
    def site(self, value: str) -> None:
        self.ctx.site = value

    @property
    def publisher(self) -> Publisher | None:
        return self.ctx.publisher

    @property
    def public_url(self) -> str:
        return self.ctx.public_url

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    def today(self, now: datetime | None = None) -> str:
        """The site's calendar day as YYYY-MM-DD."""
        return self.ctx.today(now)

    def add_listener(self, fn: Listener) -> None:
        """``fn(rooms, ticket_ids)`` after every committed change (live pages)."""
        self.ctx.listeners.append(fn)

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
        waiting tickets today cannot be removed (``ConfigurationConflict``). New rooms start
        open; every room's snapshot is republished with the new names.
        """
        if hospital.site.id != self.hospital.site.id:
            raise ConfigurationConflict("The site id cannot be changed while the server runs.")
        with self.store.read() as conn:
            busy = conn.execute(select(tickets.c.department, tickets.c.room).where(
                tickets.c.status.in_(ACTIVE), tickets.c.day == self.today())).all()
        for dept, room in busy:
            if hospital.department(dept) is None:
                raise ConfigurationConflict(f"Department {dept} still has patients today; it cannot be removed.")
            if room is not None and hospital.room(room) is None:
                raise ConfigurationConflict(f"Room {room} still has patients today; it cannot be removed.")
        with self.store.writer_lock():  # rooms, departments and rules decide the lanes: rebuild them
            self.ctx.set_hospital(hospital)
            self.ordering.drop()
        self.ctx.forget_estimates()
        self.ensure_rooms()
        self.republish_all()
        set_rooms = getattr(self.publisher, "set_rooms", None)
        if set_rooms is not None:  # removed rooms' retained snapshots are cleared (queueserver/publisher.py)
            set_rooms([r.id for r in hospital.rooms], timezone=hospital.site.timezone)
        self.ctx.notify({r.id for r in hospital.rooms}, set())

    # ------------------------------------------------------------ tickets
    def check_in(self, appointment_no: str, *, idem_key: str | None = None, fingerprint: str = "") -> Issued:
        """Check in an appointment: a new ticket, or the one it already has today (``created`` False)."""
        return self.issuing.check_in(appointment_no, idem_key=idem_key, fingerprint=fingerprint)

    def walk_in(self, department: str, *, priority: str | None = None, emergency: bool = False,
                language: str = "zh", source: str = "walk_in", name: str | None = None,
                patient_id: str | None = None, idem_key: str | None = None, fingerprint: str = "") -> Issued:
        """Issue a ticket without an appointment (kiosk registration or staff at a desk; see ``Issuing.walk_in``)."""
        return self.issuing.walk_in(department, priority=priority, emergency=emergency, language=language,
                                    source=source, name=name, patient_id=patient_id, idem_key=idem_key,
                                    fingerprint=fingerprint)

    def ticket(self, ticket_id: str) -> TicketOut:
        return self.tickets.ticket(ticket_id)

    def ticket_detail(self, ticket_id: str) -> dict[str, Any]:
        """The patient page's view: the ticket plus whether the survey can be answered."""
        return self.tickets.ticket_detail(ticket_id)

    def transfer(self, ticket_id: str, *, department: str | None = None, room: str | None = None,
                 placement: str = "keep", by_rooms: frozenset[str] | None = None,
                 idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """Move a ticket to another department or room keeping its number (see ``Tickets.transfer``)."""
        return self.tickets.transfer(ticket_id, department=department, room=room, placement=placement,
                                     by_rooms=by_rooms, idem_key=idem_key, fingerprint=fingerprint)

    def return_with_results(self, ticket_id: str, *, by_rooms: frozenset[str] | None = None,
                            idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """A patient seen earlier today is back with test results: near the front of the same room."""
        return self.tickets.return_with_results(ticket_id, by_rooms=by_rooms, idem_key=idem_key,
                                                fingerprint=fingerprint)

    def cancel(self, ticket_id: str, *, reason: str = "cancelled", by_rooms: frozenset[str] | None = None,
               idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """Cancel a ticket (``by_rooms``: a clinician's rooms; another room's ticket is ``NotYourRoom``)."""
        return self.tickets.cancel(ticket_id, reason=reason, by_rooms=by_rooms, idem_key=idem_key,
                                   fingerprint=fingerprint)

    def end_of_day(self, *, idem_key: str | None = None, fingerprint: str = "") -> DayClosed:
        """Close the day: every ticket still waiting or called is cancelled, serving ones are finished."""
        return self.tickets.end_of_day(idem_key=idem_key, fingerprint=fingerprint)

    def survey(self, ticket_id: str, score: int, comment: str = "") -> None:
        """The patient's satisfaction (1-5) after service; once per ticket."""
        self.surveys.record(ticket_id, score, comment)

    # ------------------------------------------------------------ rooms
    def call_next(self, room_id: str, *, by: str | None = None, confirm: bool = False, idem_key: str | None = None,
                  fingerprint: str = "") -> CallOut:
        """Finish the room's current patient and call the next one by the rules, with the reason; ``by``
        calling next again right after their own call needs ``confirm`` (``queueserver.call_guard``)."""
        return self.calling.call_next(room_id, by=by, confirm=confirm, idem_key=idem_key, fingerprint=fingerprint)

    def call_ticket(self, room_id: str, ticket_id: str, *, by: str | None = None, idem_key: str | None = None,
                    fingerprint: str = "") -> CallOut:
        """Call one chosen waiting ticket out of order."""
        return self.calling.call_ticket(room_id, ticket_id, by=by, idem_key=idem_key, fingerprint=fingerprint)

    def recall(self, room_id: str, *, by: str | None = None, idem_key: str | None = None,
               fingerprint: str = "") -> CallOut:
        """Call the room's current ticket again (limited in number and spacing)."""
        return self.calling.recall(room_id, by=by, idem_key=idem_key, fingerprint=fingerprint)

    def no_show(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The called patient did not come: back in the queue after a skip, or cancelled after N no-shows."""
        return self.calling.no_show(room_id, idem_key=idem_key, fingerprint=fingerprint)

    def start_service(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The called patient has arrived in the room."""
        return self.calling.start_service(room_id, idem_key=idem_key, fingerprint=fingerprint)

    def finish(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The room's current patient is done."""
        return self.calling.finish(room_id, idem_key=idem_key, fingerprint=fingerprint)

    def set_room_status(self, room_id: str, status: str, *, idem_key: str | None = None,
                        fingerprint: str = "") -> RoomState:
        """Pause, resume (open) or close a room."""
        return self.calling.set_room_status(room_id, status, idem_key=idem_key, fingerprint=fingerprint)

    def room_state(self, room_id: str) -> RoomState:
        return self.snapshots.room_state(room_id)

    def republish_all(self) -> None:
        """Publish every room's current snapshot with its stored seq (server start, broker reconnect)."""
        self.snapshots.republish_all()

    def queue(self, room_id: str) -> list[QueueEntry]:
        """The room's waiting list in calling order, with why each one is where it is."""
        return self.console_view.queue(room_id)

    def console(self, room_id: str) -> dict[str, Any]:
        """Everything the clinician page shows: room state, current ticket with its reason, queue, alerts."""
        return self.console_view.console(room_id)

    # ------------------------------------------------------------ alerts and figures
    def check_alerts(self) -> list[Alert]:
        """Raise one long-wait alert per ticket that passed the threshold (published; shown on the page)."""
        return self.alerts.check()

    def stats(self, day: str | None = None) -> dict[str, Any]:
        """Per department and room for one day (see ``queueserver.stats``)."""
        return self.statistics.stats(day)

    def stats_csv(self, day: str | None = None) -> str:
        return self.statistics.stats_csv(day)

    def execute(self, op: Callable[..., Any], *, idem_key: str | None = None, fingerprint: str = "") -> Any:
        """Run ``op(tx, now)`` as one idempotent write (``queueserver.idempotency.Writes.run``)."""
        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)
