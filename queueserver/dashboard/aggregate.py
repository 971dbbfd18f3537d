"""Fold a day's tickets and kiosk events into aggregate cells; close days into the aggregate tables.

Nothing here runs on the queue's write path: today's cells are kept up to date from its rows by
``open_day.OpenDay`` (which adds each ticket's ``ticket_cell``), another open day is folded from
its rows when a query asks, and a day is stored in the aggregate tables once it is over
(``close_past_days``, run by the scheduler and after "end of day"). A closed day is never read
from ``qs_tickets`` again.

Definitions (also in docs/dashboard.md): a ticket counts in the hour (hospital time) it was
issued and in the room it was called to (or booked for; "" when neither); its wait runs from when
its wait started (an early appointment waits from its slot) to its first call; a long wait is one
over ``rules.long_wait_alert_min`` minutes; service runs from the start of service (or the call)
to the finish of a ticket that is done.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import String, delete, insert, select, type_coerce
from sqlalchemy.engine import Connection

from queueserver import rules as R
from queueserver.context import waiting
from queueserver.hospital_file import Rules
from queueserver.store import Store, UTCDateTime, tickets
from queueserver.dashboard.tables import HOUR_SUMS, WAIT_CAP, kiosk_events, stats_days, stats_hour, stats_kiosk

HourKey = tuple[str, str, str, int]  # day, department, room, hour
KioskKey = tuple[str, str, int, str, str, str]  # day, kiosk, hour, kind, outcome, screen

TICKET_COLUMNS = [tickets.c[n] for n in (
    "ticket_id", "number", "number_seq", "day", "department", "room", "call_room", "source", "issued_at", "arrived_at",
    "slot_start", "slot_end", "emergency", "priority", "is_returning", "front_reason", "not_before", "status",
    "called_at", "first_called_at", "service_started_at", "finished_at", "recalls_total", "no_show_count",
    "survey_score")]
_SOURCE_COLUMN = {"appointment": "appointments", "walk_in": "walk_ins", "desk": "desk"}


@dataclass
class Folded:
    """Aggregate cells of some days, as the tables hold them."""

    hours: dict[HourKey, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: dict.fromkeys(HOUR_SUMS, 0)))
    waits: dict[HourKey, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    kiosk: dict[KioskKey, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))


def wait_minutes(row: Mapping[str, Any], rules: Rules) -> float | None:
    """Minutes from the start of the ticket's wait to its first call (None: never called)."""
    if row["first_called_at"] is None:
        return None
    if row["slot_start"] is None:  # no appointment: the wait starts at arrival (rules.wait_started)
        return max(0.0, (row["first_called_at"] - row["arrived_at"]).total_seconds() / 60)
    return max(0.0, (row["first_called_at"] - R.wait_started(waiting(row), rules)).total_seconds() / 60)


def service_minutes(row: Mapping[str, Any]) -> float | None:
    """Minutes of service of a finished ticket (None: not done, or never called)."""
    began = row["service_started_at"] or row["called_at"]
    if row["status"] != "done" or row["finished_at"] is None or began is None:
        return None
    return max(0.0, (row["finished_at"] - began).total_seconds() / 60)


def ticket_cell(r: Mapping[str, Any], *, rules: Rules, tz: ZoneInfo) -> tuple[HourKey, tuple[float, ...], int | None]:
    """What one ticket adds to the aggregates: its cell, its values in ``HOUR_SUMS`` order and the
    whole minute of its wait (None: never called). The only definition: the closed days, today's
    cells kept up to date (``open_day``) and the raw fold all add these."""
    status = r["status"]
    source = _SOURCE_COLUMN.get(r["source"])
    wait = wait_minutes(r, rules)
    service = service_minutes(r)
    survey = r["survey_score"]
    values = (1, source == "appointments", source == "walk_ins", source == "desk",  # arrivals, sources
              wait is not None, status == "done", status == "cancelled", r["no_show_count"] > 0, r["recalls_total"],
              wait is not None and wait > rules.long_wait_alert_min,  # long_waits
              wait is not None, wait or 0.0,  # wait_n, wait_sum
              service is not None, service or 0.0, survey is not None, survey or 0)
    key = (r["day"], r["department"], r["call_room"] or r["room"] or "", r["issued_at"].astimezone(tz).hour)
    return key, values, None if wait is None else min(WAIT_CAP, math.floor(wait))


def fold_tickets(rows: Iterable[Mapping[str, Any]], *, rules: Rules, tz: ZoneInfo, into: Folded | None = None) -> Folded:
    """Add tickets to the cells of ``into`` (a new ``Folded`` if None)."""
    out = into or Folded()
    for r in rows:
        key, values, minute = ticket_cell(r, rules=rules, tz=tz)
        cell = out.hours[key]
        for name, v in zip(HOUR_SUMS, values):
            cell[name] += v
        if minute is not None:
            out.waits[key][minute] += 1
    return out


def fold_kiosk(rows: Iterable[Mapping[Any, Any]], *, tz: ZoneInfo, into: Folded | None = None) -> Folded:
    out = into or Folded()
    for r in rows:
        cell = out.kiosk[(r["day"], r["kiosk"], r["at"].astimezone(tz).hour, r["kind"], r["outcome"], r["screen"])]
        cell[0] += 1
        cell[1] += r["seconds"]
    return out


def fold_days(conn: Connection, days: list[str], *, rules: Rules, tz: ZoneInfo,
              department: str | None = None) -> Folded:
    """Fold the given (open) days from their ticket and kiosk rows (tickets of one department only, if given)."""
    out = Folded()
    if not days:
        return out
    cond = [tickets.c.day.in_(days)] + ([tickets.c.department == department] if department else [])
    fold_tickets(ticket_rows(conn, cond), rules=rules, tz=tz, into=out)
    fold_kiosk(conn.execute(select(kiosk_events).where(kiosk_events.c.day.in_(days))).mappings(), tz=tz, into=out)
    return out


_TIMES = {c.name for c in TICKET_COLUMNS if isinstance(c.type, UTCDateTime)}
_NAMES = [c.name for c in TICKET_COLUMNS]
# Datetimes come as the driver gives them: SQLAlchemy's own parsing of SQLite's text costs more than
# the whole fold (about 5 us a value); datetime.fromisoformat is a fraction of that.
_RAW_COLUMNS = [type_coerce(c, String()).label(c.name) if c.name in _TIMES else c for c in TICKET_COLUMNS]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        # The store writes naive UTC text; parsing it with its offset appended is four times cheaper
        # than parsing, then ``replace(tzinfo=...)`` (1.2 us of the 1.6 us a value).
        return datetime.fromisoformat(value if value[-6:-5] in ("+", "-") else value + "+00:00")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def ticket_rows(conn: Connection, cond: list[Any], *, extra: Sequence[Any] = ()) -> Iterable[dict[str, Any]]:
    """The fold's columns of the tickets matching ``cond`` (and ``extra`` labelled expressions), as dicts."""
    times = [i for i, n in enumerate(_NAMES) if n in _TIMES]
    names = _NAMES + [e.name for e in extra]
    for raw in conn.execute(select(*_RAW_COLUMNS, *extra).where(*cond)):
        values = list(raw)
        for i in times:
            values[i] = _utc(values[i])
        yield dict(zip(names, values))


def closed_days(conn: Connection, first: str, last: str) -> set[str]:
    return set(conn.execute(select(stats_days.c.day).where(stats_days.c.day.between(first, last))).scalars())


def pack_waits(counts: Mapping[int, int]) -> bytes:
    """A cell's whole-minute wait counts as stored in ``qs_stats_hour.waits``."""
    if not counts:
        return b""
    dense = np.zeros(max(counts) + 1, dtype="<u2")
    for minute, n in counts.items():
        dense[minute] = n
    return dense.tobytes()


def store_folded(conn: Connection, day: str, folded: Folded, *, now: datetime) -> None:
    """Replace the aggregates of ``day`` by ``folded`` and mark the day closed (one transaction)."""
    for table in (stats_hour, stats_kiosk, stats_days):
        conn.execute(delete(table).where(table.c.day == day))
    hours = [dict(zip(("day", "department", "room", "hour"), k), **v, waits=pack_waits(folded.waits.get(k, {})))
             for k, v in folded.hours.items()]
    kiosk = [dict(zip(("day", "kiosk", "hour", "kind", "outcome", "screen"), k), n=v[0], seconds_sum=v[1])
             for k, v in folded.kiosk.items()]
    for table, rows in ((stats_hour, hours), (stats_kiosk, kiosk)):
        if rows:
            conn.execute(insert(table), rows)
    conn.execute(insert(stats_days).values(day=day, closed_at=now,
                                           tickets=int(sum(v["arrivals"] for v in folded.hours.values()))))


def reopen_day(conn: Connection, day: str) -> None:
    """Forget ``day``'s aggregates (a late change, such as a rating the next morning): it is folded from its
    rows again, live, until the scheduler closes it anew. Cheap when the day was not closed."""
    for table in (stats_days, stats_hour, stats_kiosk):
        conn.execute(delete(table).where(table.c.day == day))


def close_day(store: Store, day: str, *, rules: Rules, tz: ZoneInfo, now: datetime) -> None:
    """Fold ``day`` from its rows and store it as closed (again, if it was: the result is the same)."""
    with store.read() as conn:  # the fold reads outside the writer lock; the day is over, its rows are settled
        folded = fold_days(conn, [day], rules=rules, tz=tz)
    with store.tx() as tx:
        store_folded(tx.conn, day, folded, now=now)


def close_past_days(store: Store, *, today: str, rules: Rules, tz: ZoneInfo, now: datetime) -> list[str]:
    """Close every day before ``today`` that has tickets or kiosk events and is not closed yet."""
    with store.read() as conn:
        seen = set(conn.execute(select(tickets.c.day).where(tickets.c.day < today).distinct()).scalars())
        seen |= set(conn.execute(select(kiosk_events.c.day).where(kiosk_events.c.day < today).distinct()).scalars())
        done = set(conn.execute(select(stats_days.c.day)).scalars())
    todo = sorted(seen - done)
    for day in todo:
        close_day(store, day, rules=rules, tz=tz, now=now)
    return todo
