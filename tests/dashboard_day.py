"""A simulated clinic day for the dashboard tests, with the test's own ledger of what happened.

``simulate(clinic)`` drives a real ``ClinicDay`` (random but seeded: walk-ins, early and late
appointments, calls, recalls, no-shows, service, surveys) and writes down, from the test's side,
when each patient arrived and was first called, where and how long they were served. ``expected``
then computes the figures a manager should see from that ledger alone, with ``statistics``.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from protocol.errors import ConflictError
from tests.clinic_day import SH, ClinicDay

ROOMS = {"r1": "internal", "r2": "internal", "r3": "surgery"}


@dataclass
class Visit:
    ticket_id: str
    department: str
    issued: datetime
    source: str
    wait_from: datetime
    room: str | None = None
    first_called: datetime | None = None
    last_called: datetime | None = None
    service_start: datetime | None = None
    finished: datetime | None = None
    status: str = "waiting"
    recalls: int = 0
    no_shows: int = 0
    score: int | None = None


def simulate(clinic: ClinicDay, *, seed: int = 21, until: str = "11:30") -> dict[str, Visit]:
    rng = random.Random(seed)
    rules = clinic.service.rules
    visits: dict[str, Visit] = {}
    current: dict[str, str | None] = dict.fromkeys(ROOMS)
    bookings = []
    for i, slot in enumerate(["08:30", "09:00", "09:30", "10:00", "10:30", "09:15"]):
        offset = (-10, 5, 25)[i % 3]  # early (waits from the slot), inside the grace, late (waits from arrival)
        bookings.append((slot, offset, clinic.book(slot)))
    clinic.at("08:00")
    end = datetime.combine(clinic.day, datetime.strptime(until, "%H:%M").time(), SH)
    minute = 0
    while clinic.now < end:
        now = clinic.now
        for slot, offset, no in bookings:
            h, m = map(int, slot.split(":"))
            slot_at = now.replace(hour=h, minute=m, second=0, microsecond=0)
            if timedelta(0) <= now - (slot_at + timedelta(minutes=offset)) < timedelta(minutes=1):
                t = clinic.check_in(no)
                visits[t["ticket_id"]] = Visit(t["ticket_id"], "internal", now, "appointment",
                                               max(now, slot_at) if offset <= rules.late_grace_min else now)
        if rng.random() < 0.45:
            dept = "internal" if rng.random() < 0.7 else "surgery"
            desk = rng.random() < 0.2
            t = clinic.walk_in(dept, source="desk" if desk else "walk_in")
            visits[t["ticket_id"]] = Visit(t["ticket_id"], dept, now, "desk" if desk else "walk_in", now)
        for room in ROOMS:
            if (minute + int(room[1:])) % 3:
                continue
            _act(clinic, rng, room, current, visits)
        minute += 1
        clinic.later(minutes=1, seconds=rng.randint(0, 5))
    return visits


def _act(clinic: ClinicDay, rng: random.Random, room: str, current: dict[str, str | None],
         visits: dict[str, Visit]) -> None:
    svc, now, rules = clinic.service, clinic.now, clinic.service.rules
    cur = visits.get(current[room] or "")
    roll = rng.random()
    if cur is not None and cur.status == "called":
        if roll < 0.12 and cur.recalls < rules.max_recalls and (now - cur.last_called).total_seconds() >= 60:
            svc.recall(room)
            cur.recalls += 1
            cur.last_called = now
            return
        if roll < 0.22:
            svc.no_show(room)
            cur.no_shows += 1
            if cur.no_shows >= rules.no_show_cancel_after:
                cur.status, cur.finished = "no_show", now
            else:
                cur.status, cur.room = "waiting", None
            current[room] = None
            return
        if roll < 0.6:
            svc.start_service(room)
            cur.status, cur.service_start = "serving", now
            return
    elif cur is not None and cur.status == "serving" and roll < 0.3:
        svc.finish(room)
        _done(rng, clinic, cur, now)
        current[room] = None
        return
    try:
        call = clinic.call_next(room)
    except ConflictError:
        return  # nobody waiting
    if cur is not None and cur.status in ("called", "serving"):
        _done(rng, clinic, cur, now)
    v = visits[call["ticket"]["ticket_id"]]
    v.status, v.room, v.last_called = "called", room, now
    v.first_called = v.first_called or now
    current[room] = v.ticket_id


def _done(rng: random.Random, clinic: ClinicDay, v: Visit, now: datetime) -> None:
    v.status, v.finished = "done", now
    if rng.random() < 0.5:
        v.score = rng.randint(1, 5)
        clinic.service.survey(v.ticket_id, v.score)


def expected(visits: list[Visit], *, long_wait_min: int) -> dict:
    """The figures of these visits, computed from the ledger with ``statistics`` (inclusive quantiles)."""
    # called before an early appointment's slot: no wait at all
    waits = [max(0.0, (v.first_called - v.wait_from).total_seconds() / 60) for v in visits if v.first_called]
    whole = [math.floor(w) for w in waits]
    services = [(v.finished - (v.service_start or v.last_called)).total_seconds() / 60
                for v in visits if v.status == "done"]
    scores = [v.score for v in visits if v.score is not None]
    called = [v for v in visits if v.first_called]

    def q(p: float) -> float | None:
        if not whole:
            return None
        if len(whole) == 1:
            return float(whole[0])
        return round(statistics.quantiles(whole, n=10, method="inclusive")[int(p * 10) - 1], 1)

    return {
        "arrivals": len(visits), "served": sum(v.status == "done" for v in visits), "called": len(called),
        "median_wait_min": None if not whole else round(float(statistics.median(whole)), 1), "p90_wait_min": q(0.9),
        "avg_wait_min": round(statistics.fmean(waits), 1) if waits else None,
        "long_waits": sum(w > long_wait_min for w in waits),
        "avg_service_min": round(statistics.fmean(services), 1) if services else None,
        "no_shows": sum(v.no_shows > 0 for v in visits), "recalls": sum(v.recalls for v in visits),
        "survey_count": len(scores), "survey_avg": round(statistics.fmean(scores), 2) if scores else None,
        "walk_ins": sum(v.source == "walk_in" for v in visits), "desk": sum(v.source == "desk" for v in visits),
        "appointments": sum(v.source == "appointment" for v in visits),
    }


def end_day(clinic: ClinicDay, visits: dict[str, Visit]) -> None:
    """Staff close the day: waiting and called tickets are cancelled, patients being served are done."""
    clinic.service.end_of_day()
    for v in visits.values():
        if v.status == "serving":
            v.status, v.finished = "done", clinic.now
        elif v.status in ("waiting", "called"):
            v.status = "cancelled"
