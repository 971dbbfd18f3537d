"""Who is called next, and why: the clinical calling rules as pure functions (no I/O, no clock).

Given the waiting tickets of one room, the moment ``now`` and the room's priority counter,
:func:`order_queue` returns the whole calling order with a plain-words reason for each
ticket; :func:`choose_next` is its first entry. The order, from the front:

1. emergencies, first come first served;
2. tickets that have waited at least ``ageing_bound_min`` (longest wait first), so nobody
   waits past the bound because others keep outranking them;
3. the rest, in two lanes merged at ``priority_ratio``: one priority patient (elderly,
   pregnant, disabled) for every N others. Within each lane: patients returning with test
   results first, then appointments inside their slot (by slot), then walk-ins and late
   arrivals (by arrival). A late arrival (after slot start + grace) has lost the slot's
   place and queues like a walk-in from the time it arrived;
4. appointments that arrived early: they wait for their slot, and are called before it only
   when nobody else is waiting;
5. tickets held back after a no-show, until their skip time has passed.

The room's counter ``others_since_priority`` is the number of non-priority calls since the
last priority call; :func:`counter_after` updates it after a call. Everything is a function
of its arguments, so the server, the tests and the estimates all agree.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as _timezone

from queueserver.hospital_file import Rules

EMERGENCY = "emergency"
AGED = "aged"
PRIORITY = "priority"
RETURNING = "returning"
APPOINTMENT = "appointment"
WALK_IN = "walk_in"
LATE = "late"
EARLY = "early"
HELD = "held"


@dataclass(frozen=True)
class Waiting:
    """A ticket in the queue, as the rules see it (all datetimes timezone-aware)."""

    ticket_id: str
    number: str
    arrived_at: datetime  # check-in, or the moment it re-entered the queue
    issue_seq: int = 0  # tie-breaker: the order tickets were issued in
    slot_start: datetime | None = None
    slot_end: datetime | None = None
    emergency: bool = False
    priority: str | None = None  # plain words, e.g. "age 78", "pregnant"; None: not a priority patient
    returning: bool = False  # back with test results, or transferred "to the front"
    front_reason: str | None = None  # the words for a returning ticket; default "returning with test results"
    not_before: datetime | None = None  # held after a no-show until this moment


@dataclass(frozen=True)
class Placed:
    """One ticket's place in the calling order: the category that put it there and why."""

    ticket: Waiting
    category: str
    reason: str


def _hm(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")


def is_late(t: Waiting, rules: Rules) -> bool:
    """An appointment that arrived after its slot start plus the grace period has lost its place."""
    return t.slot_start is not None and t.arrived_at > t.slot_start + timedelta(minutes=rules.late_grace_min)


def wait_started(t: Waiting, rules: Rules) -> datetime:
    """When the ticket's wait counts from: an early appointment's wait starts at its slot."""
    if t.slot_start is not None and not t.returning and not is_late(t, rules):
        return max(t.arrived_at, t.slot_start)
    return t.arrived_at


def waited_minutes(t: Waiting, now: datetime, rules: Rules) -> float:
    return max(0.0, (now - wait_started(t, rules)).total_seconds() / 60)


_KIND_OF_KEY = {0: RETURNING, 1: APPOINTMENT, 2: WALK_IN}


def _first(pair: tuple) -> tuple:
    return pair[0]


def _lane_reason(t: Waiting, rules: Rules, tz: tzinfo) -> tuple[str, str]:
    if t.returning:
        return RETURNING, t.front_reason or "returning with test results"
    if t.slot_start is not None and is_late(t, rules):
        return LATE, (f"late for appointment {_hm(t.slot_start, tz)} (more than {rules.late_grace_min} min): "
                      f"queued as a walk-in from {_hm(t.arrived_at, tz)}")
    if t.slot_start is not None:
        return APPOINTMENT, f"appointment {_hm(t.slot_start, tz)}, inside slot"
    return WALK_IN, f"walk-in, arrived {_hm(t.arrived_at, tz)}"


ORDINARY = "ordinary"  # the lane of everyone who is neither emergency, aged, priority, early nor held
# Lanes in calling order; PRIORITY and ORDINARY are merged at the priority ratio.
LANES = (EMERGENCY, AGED, PRIORITY, ORDINARY, EARLY, HELD)


def classify(t: Waiting, now: datetime, rules: Rules) -> tuple[str, tuple, datetime | None]:
    """Where ``t`` stands at ``now``: its lane, its sort key in the lane, and when that may next change.

    Keys end with (issue order, number, ticket id), so no two tickets ever tie: the order never
    depends on the order the tickets were read in. The third value is the moment the ticket
    moves to another lane (held until, slot start, ageing bound), or None if it never does.
    """
    tail = (t.issue_seq, t.number, t.ticket_id)
    if t.emergency:
        return EMERGENCY, (t.arrived_at, *tail), None
    if t.not_before is not None and t.not_before > now:
        return HELD, (t.not_before, *tail), t.not_before
    slot = t.slot_start
    in_slot = slot is not None and not t.returning and t.arrived_at <= slot + timedelta(minutes=rules.late_grace_min)
    started = max(t.arrived_at, slot) if in_slot and slot is not None else t.arrived_at
    ages_at = started + timedelta(minutes=rules.ageing_bound_min)
    if ages_at <= now:
        return AGED, (started, *tail), None
    if in_slot and slot is not None and slot > now:
        return EARLY, (slot, t.arrived_at, *tail), slot
    if t.returning:
        key: tuple = (0, t.arrived_at, *tail)
    elif in_slot:
        key = (1, slot, t.arrived_at, *tail)
    else:
        key = (2, t.arrived_at, *tail)
    return (PRIORITY if t.priority else ORDINARY), key, ages_at


def ordinary_category(key: tuple, t: Waiting) -> str:
    """The category of a ticket in the ordinary or priority lane, from its key."""
    if key[0] == 2 and t.slot_start is not None:
        return LATE
    return _KIND_OF_KEY[key[0]]


def reason(t: Waiting, category: str, *, now: datetime, rules: Rules, tz: tzinfo, others_waiting: bool = True) -> str:
    """The plain words for why ``t`` stands where it does (``others_waiting``: priority turn wording)."""
    if category == EMERGENCY:
        return "emergency: called first"
    if category == AGED:
        return f"waited {int(waited_minutes(t, now, rules))} min, over the {rules.ageing_bound_min} min limit"
    if category == PRIORITY:
        turn = f"1 of every {rules.priority_ratio + 1} calls" if others_waiting else "nobody else waiting"
        return f"priority: {t.priority}, {turn} ({_lane_reason(t, rules, tz)[1]})"
    if category == EARLY:
        return (f"appointment {_hm(t.slot_start, tz)}, arrived early: waits "  # type: ignore[arg-type]
                "for the slot unless nobody else is waiting")
    if category == HELD:
        return f"missed a call: back in the queue at {_hm(t.not_before, tz)}"  # type: ignore[arg-type]
    return _lane_reason(t, rules, tz)[1]


def order_queue(
    waiting: Sequence[Waiting],
    *,
    now: datetime,
    rules: Rules,
    others_since_priority: int = 0,
    tz: tzinfo = _timezone.utc,
    explain: bool = True,
) -> list[Placed]:
    """The full calling order of ``waiting`` at ``now`` (see the module docstring), each with its reason.

    With ``explain=False`` only the first entry gets its reason (the rest ""). This is the
    reference definition: ``queueserver.lanes.RoomLanes`` keeps the same order incrementally.
    """
    lanes: dict[str, list[tuple[tuple, Waiting]]] = {lane: [] for lane in LANES}
    for t in waiting:
        lane, key, _ = classify(t, now, rules)
        lanes[lane].append((key, t))
    for entries in lanes.values():
        entries.sort(key=_first)

    out: list[Placed] = []

    def place(t: Waiting, category: str, others_waiting: bool = True) -> None:
        words = reason(t, category, now=now, rules=rules, tz=tz, others_waiting=others_waiting) \
            if explain or not out else ""
        out.append(Placed(t, category, words))

    for lane in (EMERGENCY, AGED):
        for _, t in lanes[lane]:
            place(t, lane)
    priority, ordinary = lanes[PRIORITY], lanes[ORDINARY]
    pi = oi = 0
    counter = others_since_priority
    while pi < len(priority) or oi < len(ordinary):
        if pi < len(priority) and (counter >= rules.priority_ratio or oi >= len(ordinary)):
            place(priority[pi][1], PRIORITY, others_waiting=oi < len(ordinary))
            pi += 1
            counter = 0
        else:
            key, t = ordinary[oi]
            place(t, ordinary_category(key, t))
            oi += 1
            counter += 1
    for lane in (EARLY, HELD):
        for _, t in lanes[lane]:
            place(t, lane)
    return out


def as_first(placed: Placed, tz: tzinfo) -> Placed:
    """``placed`` as the one to call now: an early or held ticket is only first when nobody else waits."""
    if placed.category == EARLY:
        slot = _hm(placed.ticket.slot_start, tz)  # type: ignore[arg-type]
        return Placed(placed.ticket, EARLY, f"appointment {slot}, arrived early: called because nobody else is waiting")
    if placed.category == HELD:
        return Placed(placed.ticket, HELD, "missed an earlier call: called again because nobody else is waiting")
    return placed


def choose_next(
    waiting: Sequence[Waiting],
    *,
    now: datetime,
    rules: Rules,
    others_since_priority: int = 0,
    tz: tzinfo = _timezone.utc,
) -> Placed | None:
    """The ticket to call now, with its reason; None when nobody is waiting.

    An early appointment or a held no-show is only ever first when nobody else is waiting;
    the reason then says so.
    """
    order = order_queue(waiting, now=now, rules=rules, others_since_priority=others_since_priority, tz=tz,
                        explain=False)  # only the first one's reason is needed
    return as_first(order[0], tz) if order else None


def counter_after(placed: Placed, others_since_priority: int) -> int:
    """The room's ``others_since_priority`` after calling ``placed``.

    A priority call resets it; an emergency does not count; every other call counts as one "other".
    """
    if placed.category == PRIORITY or (placed.ticket.priority and placed.category in (AGED, EARLY, HELD)):
        return 0
    if placed.category == EMERGENCY:
        return others_since_priority
    return others_since_priority + 1


def estimated_wait_min(position: int, *, open_rooms: int, service_min: float) -> int:
    """Minutes until a ticket at ``position`` (1 = next) is likely called: the ones ahead of it, shared by the rooms."""
    if position <= 0:
        return 0
    return int(math.ceil((position - 1) * service_min / max(1, open_rooms)))


def long_waits(waiting: Sequence[Waiting], *, now: datetime, rules: Rules) -> list[tuple[Waiting, int]]:
    """Tickets waiting at least ``long_wait_alert_min``, with their minutes, longest first."""
    found = [(t, int(waited_minutes(t, now, rules))) for t in waiting
             if waited_minutes(t, now, rules) >= rules.long_wait_alert_min]
    return sorted(found, key=lambda x: -x[1])
