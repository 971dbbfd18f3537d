"""Dashboard queries over 90 days of a large hospital: aggregates against the raw tickets.

    .venv/bin/python bench/dashboard_90days.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/dashboard_90days.py --dbs sqlite --days 30

Writes 90 days x 20 departments x 500 tickets (10,000 a day, 900,000 tickets; 2-3 rooms per
department, arrivals peaking in the morning, waits skewed with a long tail, no-shows, recalls,
surveys) and 2,000 kiosk sessions a day straight into a fresh store, closes every day but the
last (that one stays open: "today"), then times the dashboard's queries over the whole range
(the figures per department/room/hour/day/week), one department's, the kiosk figures and the
last 7 days:

- on a running server, the figure a manager sees: the dashboard has answered before (closed days'
  cells kept in memory, today's cells kept up to date), 50 of today's tickets change before each
  look, and each look computes a new answer (median and worst of 5);
- the first whole-range query of a fresh process (a server just restarted: every closed day read
  from ``qs_stats_hour``, today's 10,000 tickets folded), in a subprocess, twice; and the start-up
  priming the scheduler does instead (``Dashboard.prime``), with the first query after it;
- the same figures over the raw tickets (every day folded from ``qs_tickets``), checked equal.

Wall and CPU seconds are printed with the load average: the machine's 2 cores are shared.

PostgreSQL: a database of its own on 127.0.0.1:5432 (trust, user postgres), dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, select, text, update  # noqa: E402

from queueserver.dashboard.aggregate import close_day  # noqa: E402
from queueserver.dashboard.queries import Dashboard  # noqa: E402
from queueserver.dashboard.tables import kiosk_events  # noqa: E402
from queueserver.hospital_file import Department, Room, load_hospital  # noqa: E402
from queueserver.store import Store, tickets  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
N_DEPTS, PER_DEPT, KIOSK_SESSIONS = 20, 500, 2000
CHANGED = 50  # today's tickets changed between two looks at the page on a running server


def big_hospital():  # type: ignore[no-untyped-def]
    base = load_hospital()
    depts, rooms = [], []
    for i in range(N_DEPTS):
        d = Department(id=f"d{i:02d}", prefix="".join(chr(65 + int(c)) for c in f"{i:02d}"),
                       name={"en": f"Department {i}", "zh": f"科室{i}"})
        depts.append(d)
        for j in range(2 + i % 2):
            rooms.append(Room(id=f"d{i:02d}r{j}", name={"en": f"room {i}.{j}", "zh": f"{i}.{j}诊室"},
                              departments=(d.id,)))
    return base.model_copy(update={"departments": tuple(depts), "rooms": tuple(rooms), "clinicians": ()})


def day_rows(rng: random.Random, day: date, hospital) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
    rows = []
    for d_i, dept in enumerate(hospital.departments):
        rooms = [r.id for r in hospital.rooms if dept.id in r.departments]
        for n in range(1, PER_DEPT + 1):
            minute = min(539, int(abs(rng.gauss(150, 120))))  # 08:00-17:00, busiest mid-morning
            issued = datetime.combine(day, dtime(8, 0), SH) + timedelta(minutes=minute, seconds=rng.randint(0, 59))
            source = rng.choices(("appointment", "walk_in", "desk"), (50, 35, 15))[0]
            status = rng.choices(("done", "no_show", "cancelled"), (90, 3, 7))[0]
            row = dict(ticket_id=uuid.uuid4().hex[:20], day=day.isoformat(), department=dept.id, number_seq=n,
                       number=f"{dept.prefix}{n:04d}", room=None, source=source, masked_name="张*",
                       language="zh", emergency=False, is_returning=False, issued_at=issued, arrived_at=issued,
                       status=status, recall_count=0, recalls_total=rng.choices((0, 1, 2), (85, 12, 3))[0],
                       no_show_count=1 if status == "no_show" else 0, call_room=None, first_called_at=None,
                       called_at=None, service_started_at=None, finished_at=None, survey_score=None,
                       slot_start=None, slot_end=None, priority=None, front_reason=None, not_before=None)
            if status != "cancelled":
                wait = rng.gammavariate(2.0, 8.0 + d_i % 5)
                called = issued + timedelta(minutes=wait)
                row.update(call_room=rng.choice(rooms), first_called_at=called, called_at=called)
                if status == "done":
                    row["finished_at"] = called + timedelta(minutes=rng.uniform(3, 15))
                    if rng.random() < 0.3:
                        row["survey_score"] = rng.choices((1, 2, 3, 4, 5), (3, 5, 15, 40, 37))[0]
            rows.append(row)
    kiosk = []
    for _ in range(KIOSK_SESSIONS):
        at = datetime.combine(day, dtime(8, 0), SH) + timedelta(minutes=rng.randint(0, 539))
        kind = rng.choices(("check_in", "registration", "payment", "report"), (45, 25, 20, 10))[0]
        abandoned = rng.random() < 0.08
        kiosk.append(dict(event_id=uuid.uuid4().hex, day=day.isoformat(), at=at, kiosk=f"k{rng.randint(1, 12)}",
                          kind=kind, outcome="abandoned" if abandoned else "done",
                          screen=rng.choice(("identify", "pay_method", "department")) if abandoned else "",
                          seconds=rng.uniform(20, 120)))
    return rows, kiosk


def clock(fn):  # type: ignore[no-untyped-def]
    """(wall s, CPU s of this process, result) of one call."""
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - t, time.process_time() - c, result


def first_query(db: str, first: str, last: str, today: str) -> dict:
    """In this (fresh) process: the very first whole-range query, nothing kept yet (what the server's first
    visitor after a restart waits for)."""
    store = Store(db)
    board = Dashboard(hospital=big_hospital(), read=store.read, today=lambda: today)
    wall, cpu, _ = clock(lambda: board.queue_figures(first, last))
    store.dispose()
    return {"wall": wall, "cpu": cpu}


def fresh_process(db: str, first: str, last: str, today: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--first-query", db, first, last, today], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def as_the_day_goes(store: Store, today: str, rng: random.Random, n: int = CHANGED) -> None:
    """``n`` of today's tickets change, as calls, recalls and ratings do between two looks at the page."""
    with store.read() as conn:
        ids = conn.execute(select(tickets.c.ticket_id).where(tickets.c.day == today, tickets.c.status == "done")
                           .order_by(tickets.c.ticket_id)).scalars().all()
    with store.tx() as tx:
        for tid in rng.sample(ids, n):
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == tid).values(
                recalls_total=tickets.c.recalls_total + 1, survey_score=rng.randint(1, 5)))


def running(board: Dashboard, store: Store, today: str, rng: random.Random, fn, what: str,  # type: ignore[no-untyped-def]
            repeat: int = 5) -> tuple[str, object]:
    """A server that has been running: ``CHANGED`` tickets changed since its last query, the answer not kept
    (each look is a new answer). Median and worst wall, median CPU of ``repeat`` looks."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        as_the_day_goes(store, today, rng)
        board.forget_open_days()  # drops the kept answers only: the kept cells stay, as on a running server
        wall, cpu, result = clock(fn)
        walls.append(wall)
        cpus.append(cpu)
        assert board.open_day.refolded <= CHANGED  # today's cells: only the changed tickets folded again
    return (f"{what} {statistics.median(walls):.3f} s (worst {max(walls):.3f}, CPU {statistics.median(cpus):.3f} s)",
            result)


def run(label: str, db: str, n_days: int) -> None:
    hospital = big_hospital()
    store = Store(db)
    store.migrate()
    rng = random.Random(90)
    first = date(2026, 9, 1)
    days = [first + timedelta(days=i) for i in range(n_days)]
    t = time.perf_counter()
    total = 0
    for day in days:
        rows, kiosk = day_rows(rng, day, hospital)
        with store.tx() as tx:
            tx.conn.execute(insert(tickets), rows)
            tx.conn.execute(insert(kiosk_events), kiosk)
        total += len(rows)
    print(f"[{label}] wrote {total:,} tickets and {n_days * KIOSK_SESSIONS:,} kiosk sessions in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    now = datetime.now(timezone.utc)
    for day in days[:-1]:
        close_day(store, day.isoformat(), rules=hospital.rules, tz=hospital.tz, now=now)
    per_day = (time.perf_counter() - t) / max(1, n_days - 1)
    print(f"[{label}] closed {n_days - 1} days: {per_day * 1000:.0f} ms per day (10,000 tickets), "
          "once, after the day is over", flush=True)
    a, b = days[0].isoformat(), days[-1].isoformat()
    loads = [os.getloadavg()[0]]
    fresh = [fresh_process(db, a, b, b) for _ in range(2)]
    loads.append(os.getloadavg()[0])
    board = Dashboard(hospital=hospital, read=store.read, today=lambda: b)
    primed = clock(board.prime)  # what the scheduler does at start: the last 90 days' cells read, today folded
    started = clock(lambda: board.queue_figures(a, b))  # then the server's first query
    board.kiosk_figures(a, b)
    board.queue_figures(a, b, department="d07")
    last7 = days[max(0, n_days - 7)].isoformat()
    board.queue_figures(last7, b)
    whole, agg = running(board, store, b, rng, lambda: board.queue_figures(a, b), "whole range")
    dept, _ = running(board, store, b, rng, lambda: board.queue_figures(a, b, department="d07"), "one department")
    kiosk, _ = running(board, store, b, rng, lambda: board.kiosk_figures(a, b), "kiosk figures")
    week, _ = running(board, store, b, rng, lambda: board.queue_figures(last7, b), "last 7 days")
    loads.append(os.getloadavg()[0])
    board.forget_open_days()
    agg = board.queue_figures(a, b)  # the state the raw queries see
    agg_dept = board.queue_figures(a, b, department="d07")
    raw_s, raw_cpu, raw = clock(lambda: board.queue_figures(a, b, raw=True))
    raw_dept_s, _, raw_dept = clock(lambda: board.queue_figures(a, b, department="d07", raw=True))
    loads.append(os.getloadavg()[0])
    assert agg == raw, "aggregates and raw tickets disagree"
    assert agg_dept == raw_dept
    t_ = agg["total"]  # type: ignore[index]
    print(f"[{label}] load average (1 min) during the queries: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} "
          "cores (other work shares them; CPU is this process's only" + (", not the PostgreSQL server's" if
                                                                             label == "PostgreSQL" else "") + ")")
    print(f"[{label}] {n_days} days, {t_['arrivals']:,} tickets: median wait {t_['median_wait_min']} min, "
          f"p90 {t_['p90_wait_min']} min, {t_['long_waits']:,} waits over 30 min")
    print(f"[{label}] running server, {CHANGED} of today's tickets changed before each look: {whole}; {dept}; "
          f"{kiosk}; {week}")
    print(f"[{label}] first whole-range query of a fresh process (nothing kept: all closed days read, today's "
          "10,000 tickets folded): " + ", ".join(f"{f['wall']:.3f} s (CPU {f['cpu']:.3f} s)" for f in fresh)
          + f"; a restarted server primes itself at start in {primed[0]:.3f} s (CPU {primed[1]:.3f} s), "
          f"its first query then takes {started[0]:.3f} s (CPU {started[1]:.3f} s)")
    print(f"[{label}] same whole-range query over the raw tickets: {raw_s:.2f} s (CPU {raw_cpu:.2f} s); "
          f"one department raw: {raw_dept_s:.2f} s; figures checked equal", flush=True)
    store.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dbs", default="sqlite,postgresql")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--first-query", nargs=4, metavar=("DB", "FIRST", "LAST", "TODAY"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.first_query:  # the fresh process of fresh_process()
        print(json.dumps(first_query(*args.first_query)))
        return 0
    for kind in args.dbs.split(","):
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run("SQLite", str(Path(tmp) / "queue.sqlite3"), args.days)
        elif kind == "postgresql":
            name = f"clinicflow_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                run("PostgreSQL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", args.days)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
