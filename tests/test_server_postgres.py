"""The queue store on PostgreSQL: two real server replicas on one database, one killed in the middle of the day."""
from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import httpx
from sqlalchemy import create_engine, text


def test_two_replicas_never_repeat_a_number_or_call_a_ticket_twice(queue_server_factory, postgres_schema_url,
                                                                   tmp_path):
    shared = tmp_path / "shared"  # one data dir: the same tokens and hospital backend behind a load balancer
    a = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    b = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    assert a.tokens == b.tokens
    issued: list[dict] = []
    called: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()
    replicas = [a, b]

    def send(method: str, path: str, token: str, json: dict | None = None) -> httpx.Response | None:
        """Like a load balancer: try a replica, and on a dead or dying one (no answer, or 503 while its
        queue core is gone) retry the same request (same key) on the other."""
        key = uuid.uuid4().hex
        for server in random.sample(replicas, len(replicas)):
            try:
                r = httpx.request(method, server.base_url + path, json=json, timeout=5,
                                  headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
            except httpx.TransportError:
                continue
            if r.status_code == 503:
                assert r.headers["Retry-After"]
                continue
            return r
        return None

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            if rng.random() < 0.6:
                r = send("POST", "/api/v1/walkins", a.tokens["kiosk"],
                         {"department": rng.choice(["internal", "surgery"])})
                if r is not None and r.status_code == 201:
                    with lock:
                        issued.append(r.json())
            else:
                r = send("POST", f"/api/v1/rooms/{rng.choice(['r1', 'r2', 'r3'])}/call-next?confirm=true",  # deliberate
                         a.tokens["clinician"])
                if r is not None and r.status_code == 200:
                    with lock:
                        called.append(r.json())
            if r is not None:
                assert r.status_code < 500, r.text

    def until_done(tickets: int, calls: int, limit: float = 60.0) -> None:
        """Let the load run until this much was answered (counts, not seconds: the machine may be busy)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with lock:
                if len(issued) >= tickets and len(called) >= calls:
                    return
            time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    until_done(10, 5)
    b.kill()  # one replica dies mid-day; the others keep serving
    with lock:
        before_kill = len(issued), len(called)
    until_done(before_kill[0] + 10, before_kill[1] + 5)
    stop.set()
    for t in threads:
        t.join()

    # The surviving replica went on issuing and calling after the kill.
    assert len(issued) >= before_kill[0] + 10 and len(called) >= before_kill[1] + 5
    engine = create_engine(postgres_schema_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ticket_id, department, number_seq, number FROM qs_tickets")).all()
        calls = conn.execute(text("SELECT ticket_id, room, seq FROM qs_calls ORDER BY at")).all()
        final_seq = dict(conn.execute(text("SELECT room_id, seq FROM qs_rooms")).all())
    engine.dispose()
    # Every ticket a kiosk was given is in the database, once.
    in_db = {r.ticket_id: r.number for r in rows}
    assert all(in_db.get(t["ticket_id"]) == t["number"] for t in issued)
    # Numbers are unique and gap-free per department across both replicas.
    for dept in ("internal", "surgery"):
        seqs = sorted(r.number_seq for r in rows if r.department == dept)
        assert seqs == list(range(1, len(seqs) + 1))
    # No ticket was called twice, whichever replica called it.
    assert not [t for t, n in Counter(c.ticket_id for c in calls).items() if n > 1]
    assert len({c["ticket"]["ticket_id"] for c in called}) == len(called)
    # The per-room seq comes from the database row, incremented under its row lock: two calls of a
    # room never share a seq, whichever replica made them, and the room's seq is past all of them.
    # (Screens order snapshots by seq, not by arrival: two replicas may publish out of order.)
    for room in ("r1", "r2", "r3"):
        seqs = [c.seq for c in calls if c.room == room]
        assert len(set(seqs)) == len(seqs)
        assert not seqs or final_seq[room] >= max(seqs)
    # The survivor still serves the day's tickets.
    with a.client("kiosk") as kiosk:
        assert kiosk.get(f"/api/v1/tickets/{issued[-1]['ticket_id']}").status_code == 200


def test_replica_numbering_continues_on_postgres_after_a_restart(queue_server_factory, postgres_schema_url):
    server = queue_server_factory(db=postgres_schema_url)
    with server.client("kiosk") as kiosk:
        first = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1003"}).json()
    server.kill()
    server.start()
    with server.client("kiosk") as kiosk:
        again = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1003"})
        assert again.status_code == 200 and again.json()["number"] == first["number"]
        assert kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json()["number"] == "B002"


def test_each_replica_keeps_its_calling_order_and_sees_the_others_changes(queue_server_factory, postgres_schema_url,
                                                                         tmp_path):
    """The replicas keep the calling order in memory; a change made by one must be in the other's next answer."""
    shared = tmp_path / "shared"
    a = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    b = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    with a.client("kiosk") as ka, b.client("kiosk") as kb, a.client("clinician") as ca, b.client("clinician") as cb:
        numbers = []
        for kiosk in (ka, kb, ka, kb, kb):
            numbers.append(kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()["number"])
        for replica in (ka, kb):
            state = replica.get("/api/v1/rooms/r1/state").json()
            assert state["waiting_count"] == 5 and list(state["next_tickets"]) == numbers
        called = []
        for clinician, room in ((cb, "r1"), (ca, "r2"), (cb, "r2"), (ca, "r1")):
            r = clinician.post(f"/api/v1/rooms/{room}/call-next")
            assert r.status_code == 200, r.text  # never "called by someone else": the order was current
            called.append(r.json()["ticket"]["number"])
        assert called == numbers[:4]  # in order, each once, whichever replica called
        for replica in (ka, kb):
            assert replica.get("/api/v1/rooms/r2/state").json()["next_tickets"] == [numbers[4]]
        ticket = ka.post("/api/v1/walkins", json={"department": "internal"}).json()
        assert kb.get(f"/api/v1/tickets/{ticket['ticket_id']}").json()["position"] == 2


def test_the_end_of_day_on_one_replica_empties_the_other_replicas_lists(queue_server_factory, postgres_schema_url,
                                                                         tmp_path):
    shared = tmp_path / "shared"
    a = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    b = queue_server_factory(db=postgres_schema_url, data_dir=shared)
    with a.client("kiosk") as ka, b.client("kiosk") as kb, a.client("admin") as admin:
        for kiosk in (ka, kb, ka):
            kiosk.post("/api/v1/walkins", json={"department": "surgery"})
        assert kb.get("/api/v1/rooms/r3/state").json()["waiting_count"] == 3
        assert admin.post("/api/v1/admin/end-of-day").json() == {"cancelled": 3, "finished": 0}
        assert kb.get("/api/v1/rooms/r3/state").json()["waiting_count"] == 0  # b rebuilt its lists
        fresh = kb.post("/api/v1/walkins", json={"department": "surgery"}).json()
        assert ka.get("/api/v1/rooms/r3/state").json()["next_tickets"] == [fresh["number"]]
