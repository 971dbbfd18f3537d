"""The dashboard's figures for a date range, from the aggregate tables plus the open days folded live.

Each query takes the closed days' cells of ``qs_stats_hour`` (90 days of a large hospital: about
50,000 rows, read once and then kept in memory: a closed day does not change), adds today's cells
kept up to date as the day goes (``open_day.OpenDay``) and any other open day folded from its rows
(``aggregate.fold_days``), and sums the cells per department, room, hour, day and week with numpy;
the figures of a group are then derived from its sums and wait histogram (``metrics``).
``raw=True`` folds every day from its tickets instead: the same answer, the way it would be
without aggregates (the bench compares).
"""
from __future__ import annotations

import copy
import functools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from queueserver.hospital.desk_records import PaymentChannels
from queueserver.hospital_file import Hospital
from queueserver.dashboard import quantiles
from queueserver.dashboard.aggregate import Folded, closed_days, fold_days
from queueserver.dashboard.extras import help_figures
from queueserver.dashboard.open_day import OpenDay
from queueserver.dashboard.tables import HOUR_SUMS, WAIT_CAP, stats_days, stats_hour, stats_kiosk

KIOSK_KINDS = ("check_in", "registration", "payment", "report")
VISITS_PER_KIOSK = 500  # the plans' rule of thumb: one self-service machine per 500 visits a day
MAX_DAYS = 400
MAX_KEPT_DAYS = 400  # closed days whose cells a running server keeps in memory (about 100 KB a day)
LIVE_TTL_S = 10.0


class RangeError(ValueError):
    """A date range that cannot be asked for (reversed, too long, not a date)."""


def days_between(first: str, last: str) -> list[str]:
    try:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise RangeError(f"Dates are YYYY-MM-DD: {exc}") from None
    if b < a:
        raise RangeError(f"The range ends ({last}) before it starts ({first}).")
    if (b - a).days >= MAX_DAYS:
        raise RangeError(f"A range is at most {MAX_DAYS} days.")
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def week_of(day: str) -> str:
    """The Monday of the ISO week of ``day`` (weeks are named by their first day)."""
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


def metrics(sums: Mapping[str, float], waits: np.ndarray) -> dict[str, Any]:
    """What a manager reads, from a group's sums and its whole-minute wait histogram."""
    def avg(total: str, n: str, digits: int = 1) -> float | None:
        return round(sums[total] / sums[n], digits) if sums[n] else None

    def q(p: float) -> float | None:
        v = quantiles.from_histogram(waits, p)
        return None if v is None else round(v, 1)

    return {
        "arrivals": int(sums["arrivals"]), "appointments": int(sums["appointments"]),
        "walk_ins": int(sums["walk_ins"]), "desk": int(sums["desk"]),
        "called": int(sums["called"]), "served": int(sums["served"]), "cancelled": int(sums["cancelled"]),
        "median_wait_min": q(0.5), "p90_wait_min": q(0.9), "avg_wait_min": avg("wait_sum", "wait_n"),
        "long_waits": int(sums["long_waits"]), "avg_service_min": avg("service_sum", "service_n"),
        "no_shows": int(sums["no_shows"]),
        "no_show_rate": round(sums["no_shows"] / sums["called"], 3) if sums["called"] else None,
        "recalls": int(sums["recalls"]), "survey_count": int(sums["survey_n"]),
        "survey_avg": avg("survey_sum", "survey_n", 2),
    }


class Groups:
    """Sums and wait histograms per group (a department, a room, an hour, a day...)."""

    def __init__(self, sums: dict[Any, dict[str, float]], waits: dict[Any, np.ndarray]) -> None:
        self.sums, self.waits = sums, waits

    def figures(self, key: Any) -> dict[str, Any]:
        return metrics(self.sums.get(key) or dict.fromkeys(HOUR_SUMS, 0), self.waits.get(key, _NO_WAITS))


_NO_WAITS = np.zeros(WAIT_CAP + 1, dtype=np.int64)


class Codes:
    """Small integers for the (department, room) pairs of the cells, so that cells are grouped by numpy alone."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def of(self, pairs: Iterable[tuple[str, str]]) -> np.ndarray:
        with self._lock:
            out = []
            for p in pairs:
                i = self._index.get(p)
                if i is None:
                    i = self._index[p] = len(self.pairs)
                    self.pairs.append(p)
                out.append(i)
        return np.array(out, dtype=np.int32)

    def departments(self, department: str) -> np.ndarray:
        """Per pair code: does it belong to ``department``."""
        with self._lock:
            return np.array([d == department for d, _ in self.pairs], dtype=bool)


@functools.lru_cache(maxsize=4096)
def _ordinal(day: str) -> int:
    return date.fromisoformat(day).toordinal()


class Cells:
    """Aggregate cells (day, department, room, hour) as parallel arrays: ``day`` (date ordinal), ``pair`` (a
    ``Codes`` number of (department, room)), ``hour``, ``sums`` (n x HOUR_SUMS), and the wait histograms kept
    sparse as (cell, minute, count): a dense n x 241 matrix of 90 days would be 90 MB. A closed day's cells
    are one ``Cells``, kept in memory by the dashboard (closed days do not change)."""

    def __init__(self, day: np.ndarray, pair: np.ndarray, hour: np.ndarray, sums: np.ndarray,
                 hist: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.day, self.pair, self.hour, self.sums, self.hist = day, pair, hour, sums, hist

    def __len__(self) -> int:
        return len(self.day)

    @classmethod
    def empty(cls) -> "Cells":
        i = np.zeros(0, dtype=np.int32)
        return cls(i, i, i, np.zeros((0, len(HOUR_SUMS))), (i, i, i))

    @classmethod
    def from_rows(cls, rows: list[Any], codes: Codes) -> "Cells":
        """Rows of ``qs_stats_hour`` (day, department, room, hour, *HOUR_SUMS, waits)."""
        if not rows:
            return cls.empty()
        k = len(HOUR_SUMS)
        cols = list(zip(*rows))
        day = np.array([_ordinal(d) for d in cols[0]], dtype=np.int32)
        pair = codes.of(zip(cols[1], cols[2]))
        sums = np.array(cols[4:4 + k], dtype=float).T.copy()
        blobs = [bytes(b) if b else b"" for b in cols[4 + k]]
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // 2
        packed = np.frombuffer(b"".join(blobs), dtype="<u2")
        where = np.flatnonzero(packed)  # each non-zero count's place: its cell, and its minute in the cell
        ends = np.cumsum(lengths)
        cell = np.searchsorted(ends, where, side="right")
        minute = where - (ends - lengths)[cell]
        return cls(day, pair, np.array(cols[3], dtype=np.int32), sums,
                   (cell.astype(np.int32), minute.astype(np.int32), packed[where].astype(np.int32)))

    @classmethod
    def from_folded(cls, folded: Folded, codes: Codes) -> "Cells":
        keys = list(folded.hours)
        if not keys:
            return cls.empty()
        cells, minutes, counts = [], [], []
        for i, key in enumerate(keys):
            for minute, count in folded.waits.get(key, {}).items():
                cells.append(i)
                minutes.append(minute)
                counts.append(count)
        sums = np.array([[folded.hours[key][name] for name in HOUR_SUMS] for key in keys], dtype=float)
        return cls(np.array([_ordinal(k[0]) for k in keys], dtype=np.int32), codes.of((k[1], k[2]) for k in keys),
                   np.array([k[3] for k in keys], dtype=np.int32), sums,
                   (np.array(cells, dtype=np.int32), np.array(minutes, dtype=np.int32), np.array(counts, dtype=np.int32)))

    @classmethod
    def join(cls, parts: list["Cells"]) -> "Cells":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        return cls(np.concatenate([p.day for p in parts]), np.concatenate([p.pair for p in parts]),
                   np.concatenate([p.hour for p in parts]), np.concatenate([p.sums for p in parts]),
                   (np.concatenate([p.hist[0].astype(np.int64) + o for p, o in zip(parts, offsets)]),
                    np.concatenate([p.hist[1] for p in parts]).astype(np.int64),
                    np.concatenate([p.hist[2] for p in parts]).astype(np.int64)))

    def only(self, keep: np.ndarray) -> "Cells":
        """The cells where ``keep`` is true (one department's)."""
        new_index = np.cumsum(keep) - 1
        cell, minute, count = self.hist
        mine = keep[cell]
        return Cells(self.day[keep], self.pair[keep], self.hour[keep], self.sums[keep],
                     (new_index[cell[mine]], minute[mine], count[mine]))

    def group(self, codes: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Add up the cells by ``codes`` (one per cell): the codes present, their sums and dense histograms."""
        width = WAIT_CAP + 1
        if not len(codes):
            return [], np.zeros((0, len(HOUR_SUMS))), np.zeros((0, width), dtype=np.int64)
        uniq, inv = np.unique(codes, return_inverse=True)
        n = len(uniq)
        k = self.sums.shape[1]  # every column in one bincount (the same sums, in the same order, as one per column)
        sums = np.bincount((inv[:, None] * k + np.arange(k)).ravel(), weights=self.sums.ravel(),
                           minlength=n * k).reshape(n, k)
        cell_of, minute_of, count_of = self.hist
        waits = np.bincount(inv[cell_of].astype(np.int64) * width + minute_of, weights=count_of, minlength=n * width)
        return uniq.tolist(), sums, np.rint(waits).astype(np.int64).reshape(n, width)


def _groups(labels: list[Any], sums: np.ndarray, waits: np.ndarray) -> Groups:
    return Groups({u: dict(zip(HOUR_SUMS, sums[j].tolist())) for j, u in enumerate(labels)},
                  {u: waits[j] for j, u in enumerate(labels)})


def _regroup(labels: list[Any], sums: np.ndarray, waits: np.ndarray, key: Callable[[Any], Any]) -> Groups:
    """Groups of groups (departments of rooms, weeks of days): a few rows, summed again."""
    out: dict[Any, list[int]] = defaultdict(list)
    for j, u in enumerate(labels):
        out[key(u)].append(j)
    return Groups({k: dict(zip(HOUR_SUMS, sums[js].sum(axis=0).tolist())) for k, js in out.items()},
                  {k: waits[js].sum(axis=0) for k, js in out.items()})


class Dashboard:
    """The queries of one site (hospital file for names, rules and time zone)."""

    def __init__(self, *, hospital: Hospital, read: Callable[[], Any], today: Callable[[], str],
                 payments: PaymentChannels | None = None) -> None:
        self.hospital = hospital
        self.payments = payments  # where bills were paid, if the hospital backend records it
        self.read = read  # a context manager giving a read-only Connection (Store.read)
        self.today = today
        self._live_cache: dict[tuple, tuple[float, Folded]] = {}
        self._cache_lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._figures_cache: dict[tuple, tuple[float, dict]] = {}
        self._figures_lock = threading.Lock()
        self.open_day = OpenDay()  # today's cells, kept up to date as the day goes
        self.codes = Codes()
        self._closed_cache: dict[str, tuple[str, Cells]] = {}  # day -> (its closed_at, its cells)
        self._kiosk_cache: dict[tuple, tuple] = {}  # (first, last, closed days' stamp) -> closed kiosk part

    def forget_open_days(self) -> None:
        """Drop the kept answers and other open days' folds (a kiosk event just came in: show it at once).
        Today's cells stay: each query brings them up to date anyway."""
        with self._cache_lock:
            self._live_cache = {}
        with self._figures_lock:
            self._figures_cache = {}

    @property
    def tz(self) -> ZoneInfo:
        return self.hospital.tz

    # ------------------------------------------------------------------ helpers
    def _open_fold(self, conn: Connection, days: list[str], closed: set[str], *, raw: bool,
                   department: str | None = None) -> Folded:
        """The days of the range that are not closed, folded from their rows. Raw: every day, from scratch.

        Today comes from the cells kept up to date as the day goes (``OpenDay``: only changed tickets are
        folded again); another open day (a past day not closed yet, or reopened by a late rating) is folded
        from its rows and that fold kept ``LIVE_TTL_S`` seconds.
        """
        open_days = [d for d in days if raw or d not in closed]
        if raw or not open_days:  # raw: one department's tickets only, if asked
            return fold_days(conn, open_days, rules=self.hospital.rules, tz=self.tz, department=department)
        today = self.today()
        others = [d for d in open_days if d != today]
        with self._fold_lock:  # one fold at a time: the page's parallel requests wait for the first one's
            folded = Folded()
            if others:
                key = (tuple(others), id(self.hospital))
                now = time.monotonic()
                with self._cache_lock:
                    hit = self._live_cache.get(key)
                if hit is not None and now - hit[0] < LIVE_TTL_S:
                    folded = hit[1]
                else:
                    folded = fold_days(conn, others, rules=self.hospital.rules, tz=self.tz)
                    with self._cache_lock:
                        self._live_cache = {k: v for k, v in self._live_cache.items() if now - v[0] < LIVE_TTL_S}
                        self._live_cache[key] = (time.monotonic(), folded)
            if today not in open_days:
                return folded
            kept = self.open_day.refresh(conn, today, rules=self.hospital.rules, tz=self.tz)
            if not others:
                return kept
            return Folded(hours={**folded.hours, **kept.hours}, waits={**folded.waits, **kept.waits},
                          kiosk={**folded.kiosk, **kept.kiosk})  # keys start with the day: no overlap

    def _closed_cells(self, conn: Connection, days: list[str]) -> tuple[set[str], list[Cells]]:
        """The closed days of the range and their cells: kept in memory once read (a closed day does not
        change; closing it again or reopening it changes its ``closed_at``, and it is read anew)."""
        stamps = {d: str(at) for d, at in conn.execute(
            select(stats_days.c.day, stats_days.c.closed_at).where(stats_days.c.day.between(days[0], days[-1])))}
        with self._cache_lock:
            kept = {d: c for d, (at, c) in self._closed_cache.items() if stamps.get(d) == at}
        missing = sorted(d for d in stamps if d not in kept)
        if missing:
            h = stats_hour
            cond = [h.c.day.between(missing[0], missing[-1])]
            if len(missing) < len(stamps):
                cond.append(h.c.day.in_(missing))
            rows = conn.execute(select(h.c.day, h.c.department, h.c.room, h.c.hour, *(h.c[n] for n in HOUR_SUMS),
                                       h.c.waits).where(*cond).order_by(h.c.day, h.c.department, h.c.room, h.c.hour)
                                ).tuples().all()
            by_day: dict[str, list[Any]] = defaultdict(list)
            for r in rows:
                by_day[r[0]].append(r)
            for d in missing:
                kept[d] = Cells.from_rows(by_day.get(d, []), self.codes)
            with self._cache_lock:
                self._closed_cache.update({d: (stamps[d], kept[d]) for d in missing})
                if len(self._closed_cache) > MAX_KEPT_DAYS:  # the days least recently closed go first
                    for d in sorted(self._closed_cache, key=lambda d: self._closed_cache[d][0])[:-MAX_KEPT_DAYS]:
                        del self._closed_cache[d]
        return set(stamps), [kept[d] for d in sorted(kept)]

    def _cells(self, conn: Connection, days: list[str], department: str | None, *, raw: bool) -> tuple[Cells, Folded]:
        """Every aggregate cell of the range: the closed days' (kept in memory), plus the open days folded."""
        closed, parts = (set(), []) if raw else self._closed_cells(conn, days)
        live = self._open_fold(conn, days, closed, raw=raw, department=department if raw else None)
        cells = Cells.join(parts + [Cells.from_folded(live, self.codes)])
        if department:
            cells = cells.only(self.codes.departments(department)[cells.pair])
        return cells, live

    def _queue_groups(self, cells: Cells) -> dict[str, Groups]:
        """Groups by "department", "room", "hour", "day", "week" and "total"."""
        # Three passes over the cells; departments, rooms and the total come from (department, room),
        # weeks from days.
        pairs, room_sums, room_waits = cells.group(cells.pair)
        by_room = ([self.codes.pairs[c] for c in pairs], room_sums, room_waits)
        days, day_sums, day_waits = cells.group(cells.day)
        by_day = ([date.fromordinal(d).isoformat() for d in days], day_sums, day_waits)
        return {"department": _regroup(*by_room, key=lambda dr: dr[0]), "room": _regroup(*by_room, key=lambda dr: dr[1]),
                "total": _regroup(*by_room, key=lambda dr: ""), "hour": _groups(*cells.group(cells.hour)),
                "day": _groups(*by_day), "week": _regroup(*by_day, key=week_of)}

    # ------------------------------------------------------------------ queries
    def queue_figures(self, first: str, last: str, *, department: str | None = None, raw: bool = False) -> dict:
        """Per department, room, hour of day and day: arrivals, waits (median, p90, mean), long waits,
        service, no-shows, recalls, survey; plus help requests and red flags where they are recorded.

        An answer is kept ``LIVE_TTL_S`` seconds (closed days do not change; the open day's fold is
        kept as long): the page's plots and tables of one range are computed once.
        """
        if raw:
            return self._queue_figures(first, last, department, raw=True)
        with self.read() as conn:  # a day closed since is a new answer (its figures now come from the aggregates)
            stamp = tuple(conn.execute(select(func.count(), func.max(stats_days.c.closed_at))
                                       .where(stats_days.c.day.between(first, last))).one())
        key = (first, last, department, id(self.hospital), stamp)
        with self._figures_lock:
            now = time.monotonic()
            hit = self._figures_cache.get(key)
            if hit is not None and now - hit[0] < LIVE_TTL_S:
                return copy.deepcopy(hit[1])
            result = self._queue_figures(first, last, department, raw=False)
            self._figures_cache = {k: v for k, v in self._figures_cache.items() if now - v[0] < LIVE_TTL_S}
            self._figures_cache[key] = (time.monotonic(), result)
            return copy.deepcopy(result)

    def _queue_figures(self, first: str, last: str, department: str | None, *, raw: bool) -> dict:
        days = days_between(first, last)
        if department and self.hospital.department(department) is None:
            raise RangeError(f"There is no department {department!r}.")
        with self.read() as conn:
            cells, _ = self._cells(conn, days, department, raw=raw)
            g = self._queue_groups(cells)
            help_rows = help_figures(conn, first, last, tz=self.tz)
        depts = [{"id": d.id, "name": dict(d.name), **g["department"].figures(d.id)}
                 for d in self.hospital.departments if not department or d.id == department]
        room_ids = [r.id for r in self.hospital.rooms if not department or department in r.departments]
        room_ids += sorted(k for k in g["room"].sums if k and k not in room_ids)
        rooms = [{"id": rid, "name": dict(room.name) if (room := self.hospital.room(rid)) else {"en": rid, "zh": rid},
                  **g["room"].figures(rid)} for rid in room_ids]
        if "" in g["room"].sums:
            rooms.append({"id": "", "name": {"en": "not called", "zh": "未叫号"}, **g["room"].figures("")})
        hours = [{"hour": h, **g["hour"].figures(h)} for h in sorted(g["hour"].sums)]
        return {
            "site": self.hospital.site.id, "first": first, "last": last, "department": department,
            "long_wait_min": self.hospital.rules.long_wait_alert_min,
            "total": g["total"].figures(""), "departments": depts, "rooms": rooms, "hours": hours,
            "days": [{"day": d, **g["day"].figures(d)} for d in days],
            "weeks": [{"week": w, **g["week"].figures(w)} for w in sorted({week_of(d) for d in days})],
            "help": help_rows,
        }

    def compare(self, before: tuple[str, str], after: tuple[str, str], *, department: str | None = None) -> dict:
        """Two date ranges side by side: did the change cut waits? Per department and in total."""
        a = self.queue_figures(*before, department=department)
        b = self.queue_figures(*after, department=department)
        keys = ("arrivals", "median_wait_min", "p90_wait_min", "avg_wait_min", "long_waits", "avg_service_min",
                "no_show_rate", "survey_avg")

        def per_day(fig: dict, n_days: int) -> dict:
            return {**{k: fig[k] for k in keys}, "arrivals_per_day": round(fig["arrivals"] / n_days, 1)}

        na, nb = len(a["days"]), len(b["days"])
        rows = []
        for scope, name, fa, fb in [("total", None, a["total"], b["total"])] + [
                (da["id"], da["name"], da, db) for da, db in zip(a["departments"], b["departments"])]:
            ba, bb = per_day(fa, na), per_day(fb, nb)
            change = {k: (None if ba[k] is None or bb[k] is None else round(bb[k] - ba[k], 2)) for k in ba}
            rows.append({"scope": scope, "name": name, "before": ba, "after": bb, "change": change})
        return {"before": {"first": before[0], "last": before[1]}, "after": {"first": after[0], "last": after[1]},
                "department": department, "rows": rows}

    def _payment_share(self, days: list[str]) -> dict[str, Any]:
        """Paid payments at kiosks and at the desk, from the backend; None where it does not record the desk."""
        if self.payments is None:
            return {"payments_recorded": False, "payments_paid_at_kiosk": None, "payments_paid_at_desk": None,
                    "payment_kiosk_share": None}
        counts = self.payments.payments_by_channel(date.fromisoformat(days[0]), date.fromisoformat(days[-1]), self.tz)
        return {"payments_recorded": True, "payments_paid_at_kiosk": counts.kiosk, "payments_paid_at_desk": counts.desk,
                "payment_kiosk_share": counts.kiosk_share}

    def _closed_kiosk(self, conn: Connection, first: str, last: str, names: tuple[str, ...]) -> tuple:
        """The closed days' kiosk cells summed by the database (a 90-day range is 60,000 rows, a few hundred
        groups), which kiosks worked on which day (for the visits-per-kiosk advice) and the arrival totals:
        kept for the range until a day in it is closed or reopened."""
        stamp = tuple(conn.execute(select(func.count(), func.max(stats_days.c.closed_at))
                                   .where(stats_days.c.day.between(first, last))).one())
        key = (first, last, stamp)
        with self._cache_lock:
            hit = self._kiosk_cache.get(key)
        if hit is not None:
            return hit
        k = stats_kiosk
        in_range = k.c.day.between(first, last)
        cells = {tuple(r[:5]): (r[5], r[6]) for r in conn.execute(
            select(k.c.kiosk, k.c.hour, k.c.kind, k.c.outcome, k.c.screen, func.sum(k.c.n), func.sum(k.c.seconds_sum))
            .where(in_range).group_by(k.c.kiosk, k.c.hour, k.c.kind, k.c.outcome, k.c.screen))}
        kiosk_days = frozenset(tuple(r) for r in conn.execute(select(k.c.day, k.c.kiosk).where(in_range).distinct()))
        h = stats_hour
        totals = tuple(conn.execute(select(*(func.coalesce(func.sum(h.c[n]), 0) for n in names))
                                    .where(h.c.day.between(first, last))).one())
        hit = (cells, kiosk_days, totals)
        with self._cache_lock:
            self._kiosk_cache = {kk: v for kk, v in list(self._kiosk_cache.items())[-7:] if kk[:2] != key[:2]}
            self._kiosk_cache[key] = hit
        return hit

    def prime(self, *, days: int = 90) -> None:
        """Read the closed days' cells of the last ``days`` days and fold today, so that the first manager
        after a (re)start does not wait for it (the scheduler calls it once at start)."""
        today = self.today()
        span = days_between((date.fromisoformat(today) - timedelta(days=days - 1)).isoformat(), today)
        with self.read() as conn:
            closed, _ = self._closed_cells(conn, span)
            self._open_fold(conn, span, closed, raw=False)

    def kiosk_figures(self, first: str, last: str) -> dict:
        """Kiosk transactions per kiosk and hour by kind, time per transaction, abandoned sessions and the
        screen they stopped at, kiosk share of check-ins and registrations, visits per kiosk against 500."""
        days = days_between(first, last)
        names = ("arrivals", "appointments", "walk_ins", "desk")
        with self.read() as conn:
            closed_part = self._closed_kiosk(conn, first, last, names)
            cells: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0], {k: list(v) for k, v in closed_part[0].items()})
            kiosk_days, closed = set(closed_part[1]), closed_part[2]
            live = self._open_fold(conn, days, closed_days(conn, first, last), raw=False)
            for (day, *key), (n, secs) in live.kiosk.items():
                kiosk_days.add((day, key[0]))
                cell = cells[tuple(key)]
                cell[0] += n
                cell[1] += secs
        total = dict(zip(names, (int(v) for v in closed)))
        for values in live.hours.values():
            for name in names:
                total[name] += int(values[name])
        per_hour: dict[tuple[str, int, str], int] = defaultdict(int)
        kinds = {kind: {"done": 0, "abandoned": 0, "seconds": 0.0} for kind in KIOSK_KINDS}
        screens: dict[tuple[str, str], int] = defaultdict(int)
        kiosks: set[str] = set()
        for (kiosk, hour, kind, outcome, screen), (n, secs) in cells.items():
            kiosks.add(kiosk)
            entry = kinds.setdefault(kind, {"done": 0, "abandoned": 0, "seconds": 0.0})
            if outcome == "done":
                per_hour[(kiosk, hour, kind)] += int(n)
                entry["done"] += int(n)
                entry["seconds"] += secs
            else:
                entry["abandoned"] += int(n)
                screens[(kind, screen)] += int(n)
        by_kind = [{"kind": kind, "done": v["done"], "abandoned": v["abandoned"],
                    "abandon_rate": round(v["abandoned"] / (v["done"] + v["abandoned"]), 3) if v["done"] + v["abandoned"] else None,
                    "avg_seconds": round(v["seconds"] / v["done"], 1) if v["done"] else None} for kind, v in kinds.items()]
        checkins = kinds["check_in"]["done"]
        n_days = len(days)
        visits_per_day = total["arrivals"] / n_days
        active = len(kiosks)
        per_kiosk = round(visits_per_day / active, 1) if active else None
        needed = math.ceil(visits_per_day / VISITS_PER_KIOSK) if visits_per_day else 0
        return {
            "first": first, "last": last, "kiosks": sorted(kiosks),
            "per_kiosk_hour": [{"kiosk": kk, "hour": h, "kind": kind, "transactions": n}
                               for (kk, h, kind), n in sorted(per_hour.items())],
            "by_kind": by_kind,
            "abandoned_at": [{"kind": kind, "screen": s, "sessions": n}
                             for (kind, s), n in sorted(screens.items(), key=lambda x: -x[1])],
            "share": {
                "check_in_at_kiosk": checkins, "check_in_tickets": total["appointments"],
                "check_in_kiosk_share": round(min(1.0, checkins / total["appointments"]), 3) if total["appointments"] else None,
                "registration_at_kiosk": total["walk_ins"], "registration_at_desk": total["desk"],
                "registration_kiosk_share": round(total["walk_ins"] / (total["walk_ins"] + total["desk"]), 3)
                if total["walk_ins"] + total["desk"] else None,
                "payment_at_kiosk": kinds["payment"]["done"],
                **self._payment_share(days),
            },
            "advice": {"visits_per_day": round(visits_per_day, 1), "kiosks": active, "visits_per_kiosk": per_kiosk,
                       "rule_of_thumb": VISITS_PER_KIOSK, "kiosks_needed": needed,
                       "kiosk_days": len(kiosk_days)},
        }
