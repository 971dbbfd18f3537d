"""The queue server as devices meet it: a real ``clinicflow server`` process, real SQLite, real Mosquitto."""
from __future__ import annotations

import queue
import threading

import pytest

from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from protocol.payloads import CallEvent, RoomState


class Collector:
    """A plain subscriber that keeps what arrives, so a test can wait for a message."""

    def __init__(self, url: str, topic_filter: str, model) -> None:  # type: ignore[no-untyped-def]
        self.items: queue.Queue = queue.Queue()
        self.bus = PahoMessageBus(url)
        self.bus.subscribe_model(topic_filter, model, lambda t, m, retained: self.items.put((m, retained)))
        self.bus.start()
        assert self.bus.wait_connected(5)

    def wait_for(self, predicate, timeout: float = 5.0):  # type: ignore[no-untyped-def]
        while True:
            message, retained = self.items.get(timeout=timeout)
            if predicate(message):
                return message, retained

    def close(self) -> None:
        self.bus.stop()


@pytest.fixture(params=["sqlite", "postgresql", "one-process"])
def queue_server(request, queue_server_factory):
    """Every test here runs against a server on SQLite (HTTP in a worker process, the default on two
    cores), one on PostgreSQL (a schema per test), and one on SQLite all in one process
    (``--http-workers 0``): the same answers whichever way the server is laid out."""
    if request.param == "postgresql":
        return queue_server_factory(db=request.getfixturevalue("postgres_schema_url"))
    if request.param == "one-process":
        return queue_server_factory(extra_args=["--http-workers", "0"])
    return queue_server_factory(extra_args=["--http-workers", "1"])


@pytest.fixture
def clinician(queue_server):
    with queue_server.client("clinician") as c:
        yield c


@pytest.fixture
def kiosk(queue_server):
    with queue_server.client("kiosk") as c:
        yield c


def test_checkin_issues_a_department_numbered_ticket_once(kiosk, queue_server):
    first = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"})
    assert first.status_code == 201, first.text
    ticket = first.json()
    assert ticket["number"] == "A001"
    assert ticket["department_name"]["zh"] == "内科"
    assert ticket["masked_name"] == "张*"  # never the full name
    assert ticket["status_url"].endswith("/status/" + ticket["ticket_id"])
    again = kiosk.post("/api/v1/checkins", json={"appointment_no": "ap1001"})
    assert again.status_code == 200
    assert again.json()["already_checked_in"] is True and again.json()["number"] == "A001"
    fetched = kiosk.get(f"/api/v1/tickets/{ticket['ticket_id']}").json()
    assert fetched["number"] == "A001" and fetched["position"] == 1


def test_unknown_appointment_is_a_clear_404_and_no_ticket(kiosk):
    r = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP9999"})
    assert r.status_code == 404
    assert "AP9999" in r.json()["detail"]
    bad = kiosk.post("/api/v1/checkins", json={"appointment_no": "x"})
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)
    assert kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1003"}).json()["number"] == "B001"


def test_tokens_are_required_and_scoped(queue_server, kiosk):
    with queue_server.client(None) as anonymous:
        r = anonymous.post("/api/v1/checkins", json={"appointment_no": "AP1001"})
        assert r.status_code == 401 and "token" in r.json()["detail"]
    r = kiosk.post("/api/v1/rooms/r1/call-next")
    assert r.status_code == 403 and "kiosk" in r.json()["detail"]
    with queue_server.client("clinician:sun") as sun:  # Dr. Sun works in r3 only
        r = sun.post("/api/v1/rooms/r1/call-next")
        assert r.status_code == 403 and "r3" in r.json()["detail"]
        assert sun.post("/api/v1/rooms/r77/call-next").status_code == 404
    tokens_file = queue_server.data_dir / "tokens.json"
    assert tokens_file.stat().st_mode & 0o777 == 0o600


def test_call_next_publishes_call_and_retained_state(queue_server, kiosk, clinician, mosquitto):
    site = queue_server.site
    calls = Collector(mosquitto.url, topics.calls(site), CallEvent)
    try:
        ticket = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
        out = clinician.post("/api/v1/rooms/r1/call-next")
        assert out.status_code == 200, out.text
        call = out.json()
        assert call["ticket"]["number"] == ticket["number"] and call["room"] == "r1"
        assert "inside slot" in call["reason"]
        event, _ = calls.wait_for(lambda e: e.ticket == ticket["number"])
        assert event.kind.value == "call" and event.room == "r1"
        # The room's location from the hospital file: shown by the screens, said after the room.
        assert event.room_where["zh"] == "门诊楼 2 楼，出电梯左转第一间"
        assert event.announce["zh"] == f"请 {ticket['number']} 号到 1 诊室就诊，门诊楼 2 楼，出电梯左转第一间"
        assert event.announce["en"] == (f"Number {ticket['number']}, please go to room 1, Clinic building, floor 2, "
                                        "first door left from the lifts")
    finally:
        calls.close()
    # A subscriber that connects after the call still gets the room's state (retained).
    late = Collector(mosquitto.url, topics.room_state(site, "r1"), RoomState)
    try:
        state, retained = late.wait_for(lambda s: s.current is not None)
        assert retained and state.current.ticket == ticket["number"] and state.seq == event.seq
        assert state.room_where == event.room_where  # a screen that starts now can say where the room is
    finally:
        late.close()
    assert clinician.get("/api/v1/rooms/r1/state").json()["current"]["ticket"] == ticket["number"]
    empty = clinician.post("/api/v1/rooms/r1/call-next")
    assert empty.status_code == 409 and "Nobody is waiting" in empty.json()["detail"]


def test_idempotency_key_gives_a_retrying_kiosk_one_ticket(kiosk):
    headers = {"Idempotency-Key": "kiosk-7-req-1"}
    a = kiosk.post("/api/v1/walkins", json={"department": "surgery"}, headers=headers)
    b = kiosk.post("/api/v1/walkins", json={"department": "surgery"}, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["ticket_id"] == b.json()["ticket_id"]
    c = kiosk.post("/api/v1/walkins", json={"department": "surgery"}, headers={"Idempotency-Key": "kiosk-7-req-2"})
    assert c.json()["number"] != a.json()["number"]
    reused = kiosk.post("/api/v1/walkins", json={"department": "pediatrics"}, headers=headers)
    assert reused.status_code == 409


def test_sigkill_loses_no_ticket_and_seq_keeps_rising(queue_server, mosquitto):
    with queue_server.client("kiosk") as kiosk, queue_server.client("clinician") as clinician:
        issued = [kiosk.post("/api/v1/walkins", json={"department": "internal"}).json() for _ in range(8)]
        clinician.post("/api/v1/rooms/r1/call-next").raise_for_status()
        seq_before = clinician.get("/api/v1/rooms/r1/state").json()["seq"]
    queue_server.kill()
    queue_server.start()
    states = Collector(mosquitto.url, topics.room_state(queue_server.site, "r1"), RoomState)
    try:
        republished, _ = states.wait_for(lambda s: True)
        assert republished.seq >= seq_before
    finally:
        states.close()
    with queue_server.client("kiosk") as kiosk, queue_server.client("clinician") as clinician:
        for t in issued:
            again = kiosk.get(f"/api/v1/tickets/{t['ticket_id']}")
            assert again.status_code == 200 and again.json()["number"] == t["number"]
        nxt = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
        assert nxt["number"] == "A009"  # numbering continues, no repeat after the crash
        clinician.post("/api/v1/rooms/r1/call-next").raise_for_status()
        assert clinician.get("/api/v1/rooms/r1/state").json()["seq"] > seq_before


def test_console_page_is_served(queue_server):
    with queue_server.client(None) as http:
        page = http.get("/console/r1")
        assert page.status_code == 200 and "Call next" in page.text
        assert http.get("/console/nowhere").status_code == 404


def test_a_morning_of_room_operations_over_http(queue_server):
    with queue_server.client("kiosk") as kiosk, queue_server.client("clinician:zhou") as zhou, \
            queue_server.client("admin") as admin, queue_server.client("display") as display:
        a = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
        b = kiosk.post("/api/v1/walkins", json={"department": "internal", "priority": "pregnant"}).json()
        assert kiosk.post("/api/v1/walkins", json={"department": "internal", "emergency": True}).status_code == 403
        assert kiosk.post("/api/v1/walkins", json={"department": "dentistry"}).status_code == 404
        urgent = admin.post("/api/v1/walkins", json={"department": "internal", "emergency": True}).json()

        console = zhou.get("/api/v1/rooms/r1/console").json()
        assert [e["number"] for e in console["queue"]] == [urgent["number"], a["number"], b["number"]]
        assert console["queue"][0]["reason"] == "emergency: called first"
        assert display.get("/api/v1/rooms/r1/state").json()["next_tickets"][0] == urgent["number"]
        assert display.post("/api/v1/rooms/r1/call-next").status_code == 403

        assert zhou.post("/api/v1/rooms/r1/call-next").json()["ticket"]["number"] == urgent["number"]
        assert zhou.post("/api/v1/rooms/r1/recall").status_code == 409  # too soon
        assert zhou.post("/api/v1/rooms/r1/start").json()["status"] == "serving"
        assert zhou.post("/api/v1/rooms/r1/finish").json()["status"] == "done"
        specific = zhou.post("/api/v1/rooms/r1/call", json={"ticket_id": b["ticket_id"]}).json()
        assert specific["reason"] == f"chosen by the clinician (next by the rules: {a['number']})"
        # Dr. Sun (room 3) may not move a patient who is queued for room 1.
        with queue_server.client("clinician:sun") as sun:
            assert sun.post(f"/api/v1/tickets/{a['ticket_id']}/transfer", json={"room": "r3"}).status_code == 403
        moved = zhou.post(f"/api/v1/tickets/{b['ticket_id']}/transfer",
                          json={"department": "surgery", "placement": "front"}).json()
        assert moved["number"] == b["number"] and moved["department"] == "surgery"
        assert zhou.post("/api/v1/tickets/nope/cancel").status_code == 404
        assert zhou.post(f"/api/v1/tickets/{a['ticket_id']}/cancel").json()["status"] == "cancelled"
        assert zhou.post("/api/v1/rooms/r1/pause").json()["status"] == "paused"
        assert zhou.post("/api/v1/rooms/r1/call-next").status_code == 409
        assert zhou.post("/api/v1/rooms/r1/resume").json()["status"] == "open"

        assert kiosk.get("/api/v1/stats").status_code == 403
        csv_text = admin.get("/api/v1/stats.csv").text
        assert csv_text.splitlines()[0].startswith("day,scope,id,tickets")
        assert admin.post("/api/v1/admin/end-of-day").json() == {"cancelled": 1, "finished": 0}
        assert kiosk.get("/api/v1/tickets/unknown-ticket").status_code == 404


def test_sigkill_under_load_keeps_every_answered_ticket(queue_server):
    import httpx

    answered: list[dict] = []
    lock = threading.Lock()

    def kiosk_loop() -> None:
        with queue_server.client("kiosk", timeout=3) as kiosk:
            while True:
                try:
                    r = kiosk.post("/api/v1/walkins", json={"department": "pediatrics"})
                except httpx.TransportError:
                    return  # the server died under us: whatever was answered must survive
                if r.status_code == 201:
                    with lock:
                        answered.append(r.json())

    threads = [threading.Thread(target=kiosk_loop) for _ in range(4)]
    for t in threads:
        t.start()
    while len(answered) < 30:
        threading.Event().wait(0.02)
    queue_server.kill()
    for t in threads:
        t.join()
    queue_server.start()
    with queue_server.client("admin") as admin:
        for t in answered:
            again = admin.get(f"/api/v1/tickets/{t['ticket_id']}")
            assert again.status_code == 200 and again.json()["number"] == t["number"]
        after = admin.post("/api/v1/walkins", json={"department": "pediatrics"}).json()
    issued = sorted(int(t["number"][1:]) for t in answered)
    assert len(set(issued)) == len(issued)
    assert int(after["number"][1:]) > issued[-1]  # numbering never goes back over a number already given out
