"""Queue server throughput: a mixed workload against a real ``clinicflow server`` (uvicorn + SQLite + Mosquitto).

    .venv/bin/python bench/server_throughput.py --clients 16 --duration 10

Workload per client, chosen at random per request: 60% check-in (appointment numbers seeded
beforehand), 30% call-next (a random room of the department), 10% other (ticket status, room
state, finish). Every request goes over keep-alive HTTP/1.1 with its own bearer token and an
Idempotency-Key on state changes, exactly as kiosks and consoles send them.

Printed: operations per second, p50/p99 latency (overall and per kind), and in the same run
the raw SQLite commit rate (WAL, synchronous=FULL, one small INSERT per transaction) on the
same disk, with the ratio. ``--http-workers`` passes the server's option (default ``auto``:
HTTP in a worker process on a machine with two or more cores); ``--modes pg1,pg2`` also runs
PostgreSQL with one and two replicas, and prints the raw transaction rate of the same
PostgreSQL (``pgbench``, 16 clients, one-row INSERT transactions) with the ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicflow.broker import MosquittoBroker  # noqa: E402
from queueserver.process import QueueServerProcess  # noqa: E402

DEPARTMENTS = {"internal": ["r1", "r2"], "surgery": ["r3"], "pediatrics": ["r4"]}


def seed_appointments(data_dir: Path, count: int, tz: str = "Asia/Shanghai") -> list[str]:
    """Put ``count`` patients with appointments in the current slot into the embedded hospital backend."""
    from queueserver.hospital.embedded import EmbeddedHospitalBackend

    db = data_dir / "hospital.sqlite3"
    EmbeddedHospitalBackend(db, timezone_name=tz).close()  # creates the his_* schema
    now = datetime.now(ZoneInfo(tz))
    start = now - timedelta(minutes=5)
    numbers = []
    con = sqlite3.connect(db)
    with con:  # one transaction: seeding is not what we measure
        for i in range(count):
            pid, no = f"BP{i:06d}", f"BA{i:06d}"
            dept = random.choice(list(DEPARTMENTS))
            con.execute("INSERT INTO his_patients (patient_id, name, birth_date) VALUES (?,?,?)",
                        (pid, f"Bench Patient {i}", f"{1940 + i % 70}-01-01"))
            con.execute("INSERT INTO his_appointments (appointment_no, patient_id, department, slot_start, slot_end) "
                        "VALUES (?,?,?,?,?)", (no, pid, dept, start.isoformat(), (start + timedelta(minutes=30)).isoformat()))
            numbers.append(no)
    con.close()
    return numbers


def raw_sqlite_commits(directory: Path, seconds: float = 2.0) -> float:
    """Commits per second of one tiny INSERT per transaction, WAL + synchronous=FULL, on this disk."""
    path = directory / "raw-baseline.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (v) VALUES (?)", ("x" * 64,))
        con.execute("COMMIT")
        n += 1
    elapsed = time.perf_counter() - t0
    con.close()
    return n / elapsed


def raw_pg_transactions(admin_url: str, seconds: int = 5, clients: int = 16) -> float | None:
    """pgbench: one-row INSERT transactions per second from ``clients`` connections (None: no pgbench)."""
    import shutil
    import subprocess

    from sqlalchemy.engine import make_url

    if shutil.which("pgbench") is None:
        return None
    db_url = create_pg_database(admin_url)
    url = make_url(db_url)
    conn = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    script = Path(tempfile.mkdtemp(prefix="clinicflow-pgbench-")) / "insert.sql"
    script.write_text("INSERT INTO raw_inserts (v) VALUES (repeat('x', 64));\n")
    try:
        subprocess.run(["psql", *conn, "-q", "-d", url.database, "-c",
                        "CREATE TABLE raw_inserts (id bigserial PRIMARY KEY, v text)"], check=True)
        out = subprocess.run(["pgbench", *conn, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                              "-f", str(script), url.database], check=True, capture_output=True, text=True).stdout
    finally:
        drop_pg_database(admin_url, db_url)
    for line in out.splitlines():
        if line.startswith("tps ="):
            return float(line.split()[2])
    return None


class Http:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (the load generator must stay cheap)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None, idem: bool = False) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Authorization: Bearer {self.token}",
                f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if idem:
            head.append(f"Idempotency-Key: {uuid.uuid4().hex}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.writer.drain()
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_load(servers: list[QueueServerProcess], appointments: list[str], clients: int, duration: float,
                   warmup: float) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"check-in": [], "call-next": [], "other": []}
    errors: dict[str, int] = {}
    pool = list(appointments)
    random.shuffle(pool)
    issued: list[str] = []
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def client(i: int) -> None:
        server = servers[i % len(servers)]  # clients spread over the replicas like a load balancer
        kiosk = Http("127.0.0.1", server.port, server.tokens["kiosk"])
        clin = Http("127.0.0.1", server.port, server.tokens["clinician"])
        rng = random.Random(i)
        try:
            while (now := time.perf_counter()) < stop_at:
                pick = rng.random()
                t0 = time.perf_counter()
                if pick < 0.6 and pool:
                    kind = "check-in"
                    status, body = await kiosk.request("POST", "/api/v1/checkins",
                                                       {"appointment_no": pool.pop()}, idem=True)
                    if status == 201:
                        issued.append(json.loads(body)["ticket_id"])
                elif pick < 0.9:
                    kind = "call-next"
                    room = rng.choice([r for rooms in DEPARTMENTS.values() for r in rooms])
                    status, _ = await clin.request("POST", f"/api/v1/rooms/{room}/call-next", idem=True)
                else:
                    kind = "other"
                    which = rng.random()
                    if which < 0.5 and issued:
                        status, _ = await kiosk.request("GET", f"/api/v1/tickets/{rng.choice(issued)}")
                    elif which < 0.8:
                        status, _ = await kiosk.request("GET", f"/api/v1/rooms/{rng.choice(['r1', 'r3', 'r4'])}/state")
                    else:
                        status, _ = await clin.request("POST", f"/api/v1/rooms/{rng.choice(['r1', 'r2', 'r3'])}/finish",
                                                       idem=True)
                elapsed = time.perf_counter() - t0
                if status >= 500 or status in (401, 403, 422):
                    errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1
                if now >= measure_from:
                    latencies[kind].append(elapsed)
        finally:
            await kiosk.close()
            await clin.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    if errors:
        print(f"  unexpected answers: {errors}")
    return latencies


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def create_pg_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"clinicflow_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    engine.dispose()


def run_mode(mode: str, work: Path, broker: MosquittoBroker, args: argparse.Namespace) -> tuple[float, list[float]]:
    """One measured run: ``sqlite``, or ``pgN`` (N replicas on one fresh PostgreSQL database)."""
    data = work / mode
    data.mkdir()
    appointments = seed_appointments(data, int((args.duration + args.warmup) * 1500) + 1000)
    replicas, db_url = 1, None
    if mode.startswith("pg"):
        replicas = int(mode[2:] or 1)
        db_url = create_pg_database(args.pg_admin)
    extra = ["--alert-interval", str(args.alert_interval), "--http-workers", str(args.http_workers)]
    servers = [QueueServerProcess(data, broker.url, db=db_url, extra_args=extra) for _ in range(replicas)]
    try:
        for server in servers:
            server.start()
        lat = asyncio.run(run_load(servers, appointments, args.clients, args.duration, args.warmup))
    finally:
        for server in servers:
            server.stop()
        if db_url:
            drop_pg_database(args.pg_admin, db_url)
    every = [x for v in lat.values() for x in v]
    ops = len(every) / args.duration
    label = "SQLite" if mode == "sqlite" else f"PostgreSQL, {replicas} replica{'s' if replicas > 1 else ''}"
    print(f"{label}: {ops:,.0f} ops/s   p50 {pct(every, 50):.1f} ms   p99 {pct(every, 99):.1f} ms"
          f"   ({len(every):,} requests)")
    for kind, values in lat.items():
        share = len(values) / max(1, len(every)) * 100
        print(f"  {kind:<10} {share:4.0f}%   p50 {pct(values, 50):6.1f} ms   p99 {pct(values, 99):6.1f} ms"
              f"   mean {statistics.fmean(values) * 1000 if values else float('nan'):6.1f} ms")
    return ops, every


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per mode")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--http-workers", default="auto",
                   help="the server's --http-workers (auto: its default; 0: one process; 1: HTTP in a second process)")
    p.add_argument("--alert-interval", type=float, default=15.0,
                   help="the server's long-wait check interval (default 15 s, as deployed; 0: off)")
    p.add_argument("--modes", default="sqlite", help="comma-separated: sqlite, pg1, pg2 (PostgreSQL replicas)")
    p.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                   help="PostgreSQL URL used to create and drop the benchmark's database")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="clinicflow-bench-"))
    print(f"clinicflow server throughput: {args.clients} clients, --http-workers {args.http_workers}, "
          f"{args.duration:.0f} s measured per mode, "
          f"mix 60% check-in / 30% call-next / 10% other, data in {work}")
    raw = raw_sqlite_commits(work)
    print(f"raw SQLite commit rate (WAL, synchronous=FULL, same disk): {raw:,.0f} commits/s")
    (work / "mosquitto").mkdir()
    broker = MosquittoBroker(workdir=work / "mosquitto").start()
    try:
        results = {mode: run_mode(mode, work, broker, args) for mode in args.modes.split(",")}
    finally:
        broker.stop()
    raw_pg = raw_pg_transactions(args.pg_admin) if any(m.startswith("pg") for m in results) else None
    if raw_pg is not None:
        print(f"raw PostgreSQL transaction rate (pgbench, 16 clients, one-row INSERT transactions): "
              f"{raw_pg:,.0f} tx/s")
    for mode, (ops, _) in results.items():
        if mode == "sqlite":
            print(f"ratio {mode}: server ops/s / raw SQLite commits/s = {ops / raw:.3f}"
                  " (every answered change is on disk; a group commit shares one fsync among the changes that"
                  " arrived together)")
        elif raw_pg is not None:
            print(f"ratio {mode}: server ops/s / raw PostgreSQL tx/s = {ops / raw_pg:.3f}"
                  " (each server operation is a dozen statements; a group commit makes them one transaction)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
