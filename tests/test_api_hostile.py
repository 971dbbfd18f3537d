"""Hostile input of every field class against a real server: each a 4xx with a sentence, never a 5xx.

Classes: numbers (amounts, scores, query numbers: exponents, 29 digits, NaN, signs, places,
non-ASCII digits), identifiers and free text (unicode, control characters, SQL, path tricks,
sizes), headers, path parameters and whole bodies (not JSON, invalid UTF-8, deep nesting). The
same keep-alive connection carries all of them: a request that crashed would also reset it.
Also: identification is throttled per kiosk and per phone number, with an alert for staff; a
busy department's numbers run past 999.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator

import httpx
import paho.mqtt.client as mqtt
import pytest

from queueserver.process import QueueServerProcess

BIG = "9" * 29
LONG = "x" * 10_000
UNICODE = "\u202e\U0001F600\u0000\ufeff𝟘𝟙"
ARABIC_DIGITS = "١٢٣"
PAY = {"payment_id": "pay-hostile-01", "bill_ids": ["B1001"], "method": "qr", "amount": "65.95"}


@pytest.fixture(scope="module")
def server(module_queue_server: QueueServerProcess) -> QueueServerProcess:
    return module_queue_server


@pytest.fixture(scope="module")
def http(server: QueueServerProcess) -> Iterator[httpx.Client]:
    """One keep-alive connection with the admin token and a patient session, shared by every case."""
    with server.client("admin") as client:
        session = client.post("/api/v1/patient/identify", json={"method": "qr", "appointment_no": "AP1001"}).json()
        client.headers["X-Patient-Session"] = session["session"]
        yield client


def _assert_refused(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 10


NUMBERS = [  # (method, path, json body)
    *[("POST", "/api/v1/patient/payments", {**PAY, "amount": a}) for a in
      ("1e999999", "1E+5", BIG, BIG + ".00", "NaN", "Infinity", "-1.00", "+1.00", "12.345", " 65.95", "65.95\n",
       ARABIC_DIGITS, "0x41", "1_000", "", 65.95, 1e308, 10**30, True, None, [], {})],
    *[("POST", "/api/v1/tickets/t00000000000000/survey", {"score": s}) for s in
      (0, 6, -1, 10**30, 3.5, "NaN", "3" * 29, None, [5])],
    *[("POST", "/api/v1/patient/payments", {**PAY, "bill_ids": b}) for b in
      ([], ["B" * 65], ["../B1001"], ["B1001"] * 51, [BIG * 4], "B1001")],
]
STRINGS = [
    *[("POST", "/api/v1/checkins", {"appointment_no": v}) for v in
      ("AP1001' OR '1'='1", "AP1001; DROP TABLE qs_tickets;--", "../../etc/passwd", UNICODE, LONG, "AP", "AP1001\n",
       "ＡＰ１００１", "", 1001, None)],
    *[("POST", "/api/v1/walkins", {"department": v}) for v in ("../surgery", "surgery/../x", UNICODE, LONG, "", "a b")],
    *[("POST", "/api/v1/walkins", {"department": "surgery", "language": v}) for v in ("zh-CN", "ZH", LONG, UNICODE)],
    ("POST", "/api/v1/tickets/t00000000000000/survey", {"score": 4, "comment": LONG}),
    *[("POST", "/api/v1/patient/identify", b) for b in
      ({"method": "phone", "phone": "1380000000" + ARABIC_DIGITS[0], "id_last4": "1234"},
       {"method": "phone", "phone": BIG, "id_last4": "1234"},
       {"method": "phone", "phone": "13800000001", "id_last4": "12\u00004"},
       {"method": "card", "card_number": UNICODE},
       {"method": "qr"}, {"method": "sql", "appointment_no": "AP1001"},
       {"method": "qr", "appointment_no": "AP1001", "extra": 1})],
    ("POST", "/api/v1/help-requests", {"device": "kiosk 1; rm -rf /", "reason": "help"}),
    ("POST", "/api/v1/help-requests", {"device": "kiosk-1", "message": LONG}),
    ("POST", "/api/v1/rooms/r1/call", {"ticket_id": "t' OR 1=1"}),
    ("POST", "/api/v1/tickets/t00000000000000/transfer", {"room": "../r3"}),
    ("POST", "/api/v1/patient/payments", {**PAY, "terminal_ref": "ref\u0000\n"}),
    ("POST", "/api/v1/patient/payments", {**PAY, "payment_id": "短"}),
]
PATHS_AND_QUERIES = [
    ("GET", "/api/v1/rooms/%2e%2e%2fadmin/state", None),
    ("GET", f"/api/v1/rooms/{'r' * 65}/state", None),
    ("GET", "/api/v1/rooms/r1%00/state", None),
    ("GET", f"/api/v1/tickets/{'t' * 1000}", None),
    ("GET", "/api/v1/tickets/%F0%9F%98%80", None),
    ("GET", "/api/v1/stats?day=2026-02-30", None),
    ("GET", "/api/v1/stats?day=99999-01-01", None),
    ("GET", "/api/v1/stats.csv?day=1e999", None),
    ("GET", "/api/v1/alerts?room=../r1", None),
    ("GET", "/api/v1/payments/..%2f..%2fetc", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NUMBERS + STRINGS + PATHS_AND_QUERIES,
                         ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_hostile_value_is_refused_with_a_sentence(http, method, path, body):
    _assert_refused(http.request(method, path, json=body))


@pytest.mark.parametrize("headers", [
    {"Idempotency-Key": "k" * 101},
    {"Idempotency-Key": ""},
    {"X-Patient-Session": "s" * 1000},
    {"Authorization": "Bearer " + "t" * 5000},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
], ids=["key-101", "key-empty", "session-1000", "token-5000", "basic-auth"])
def test_hostile_header_is_refused_with_a_sentence(http, headers):
    _assert_refused(http.post("/api/v1/patient/registrations", json={"department": "surgery"}, headers=headers))


@pytest.mark.parametrize(("path", "content"), [
    ("/api/v1/checkins", b"\xff\xfe{\"appointment_no\": \"AP1001\"}"),  # invalid UTF-8
    ("/api/v1/checkins", b"{\"appointment_no\": \"AP1001\""),  # cut off
    ("/api/v1/checkins", b"[" * 100_000 + b"]" * 100_000),  # deep nesting
    ("/api/v1/checkins", b"appointment_no=AP1001"),  # a form, not JSON
    ("/api/v1/checkins", b"{\"appointment_no\": \"AP1001\", \"pad\": \"" + b"p" * 2_000_000 + b"\"}"),  # 2 MB
    ("/api/v1/tickets/t00000000000000/survey", b"{\"score\": 1e999999}"),  # JSON numbers no float holds
    ("/api/v1/patient/payments", json.dumps(PAY).replace('"65.95"', "1e999999").encode()),
    ("/api/v1/patient/payments", json.dumps(PAY).replace('"65.95"', BIG).encode()),
    ("/api/v1/patient/payments", json.dumps(PAY).replace('"65.95"', "NaN").encode()),
], ids=["invalid-utf8", "truncated", "deep", "form", "2MB", "score-1e999999", "amount-1e999999", "amount-29-digits",
        "amount-bare-NaN"])
def test_hostile_body_is_refused_with_a_sentence(http, path, content):
    _assert_refused(http.post(path, content=content, headers={"Content-Type": "application/json"}))


def test_after_all_that_the_same_connection_still_serves(http):
    r = http.get("/api/v1/rooms/r1/state")
    assert r.status_code == 200 and r.json()["room"] == "r1"


# -- identification throttling -------------------------------------------------------------------------

def _alerts(server: QueueServerProcess) -> tuple[list[dict], mqtt.Client]:
    got: list[dict] = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: (c.subscribe(f"clinicflow/v1/{server.site}/alerts", qos=1), ready.set())
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    host, port = server.broker_url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    assert ready.wait(5)
    return got, client


def test_guessing_a_phone_number_is_stopped_and_staff_are_told(server):
    alerts, listener = _alerts(server)
    with server.client("kiosk") as kiosk:
        tries = [kiosk.post("/api/v1/patient/identify",
                            json={"method": "phone", "phone": "13800000001", "id_last4": f"{n:04d}"})
                 for n in range(6000, 6008)]
        # the right details, but the number is paused: a guesser cannot tell a hit from a miss
        right = kiosk.post("/api/v1/patient/identify",
                           json={"method": "phone", "phone": "13800000001", "id_last4": "1234"})
        other = kiosk.post("/api/v1/patient/identify", json={"method": "qr", "appointment_no": "AP1001"})
    assert [r.status_code for r in tries] == [404] * 5 + [429] * 3
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    assert "ask at the desk" in right.json()["detail"]
    assert other.status_code == 200  # another patient at this kiosk is not locked out by one number
    try:
        assert _wait(lambda: any("phone ending 0001" in a["message"] for a in alerts))
    finally:
        listener.loop_stop()
        listener.disconnect()


def test_a_kiosk_that_keeps_failing_is_paused_and_staff_are_told(server):
    alerts, listener = _alerts(server)
    try:
        # a token of its own (admin): the kiosk token's failures above count for that kiosk already
        with server.client("admin") as kiosk:
            answers = [kiosk.post("/api/v1/patient/identify", json={"method": "card", "card_number": f"NOPE{n:04d}"})
                       for n in range(11)]
        assert [r.status_code for r in answers] == [404] * 10 + [429]
        assert _wait(lambda: any("failed identifications" in a["message"] and a["kind"] == "help" for a in alerts))
    finally:
        listener.loop_stop()
        listener.disconnect()


def _wait(predicate, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- numbers past 999 ----------------------------------------------------------------------------------

def test_a_busy_department_numbers_past_999_instead_of_refusing_walk_ins(server):
    with server.client("kiosk") as kiosk:
        first = kiosk.post("/api/v1/walkins", json={"department": "pediatrics"}).json()
        with sqlite3.connect(server.db_path) as db:  # as if 997 more had come today
            db.execute("UPDATE qs_counters SET last = 998 WHERE department = 'pediatrics'")
        numbers = [kiosk.post("/api/v1/walkins", json={"department": "pediatrics"}) for _ in range(2)]
    prefix = first["number"].rstrip("0123456789")
    assert [r.status_code for r in numbers] == [201, 201], numbers[-1].text
    assert [r.json()["number"] for r in numbers] == [f"{prefix}999", f"{prefix}1000"]


# -- accidents: a double click on "Call next" ----------------------------------------------------------

def test_a_quick_second_call_next_by_the_same_clinician_needs_a_confirmation(server):
    with server.client("kiosk") as kiosk, server.client("clinician") as clinician, \
            server.client("admin") as admin:
        first, second, third = (kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json() for _ in range(3))
        called = clinician.post("/api/v1/rooms/r3/call-next")  # the click
        again = clinician.post("/api/v1/rooms/r3/call-next")  # the accidental second click, a fresh key
        assert called.status_code == 200 and called.json()["ticket"]["number"] == first["number"]
        assert again.status_code == 409 and first["number"] in again.json()["detail"]
        assert "confirm" in again.json()["detail"]
        view = clinician.get("/api/v1/rooms/r3/console").json()
        assert view["current"]["number"] == first["number"] and len(view["queue"]) == 2  # nobody sent away

        meant = clinician.post("/api/v1/rooms/r3/call-next", params={"confirm": "true"})
        assert meant.status_code == 200 and meant.json()["ticket"]["number"] == second["number"]
        other = admin.post("/api/v1/rooms/r3/call-next")  # someone else calling in the room is not an accident
        assert other.status_code == 200 and other.json()["ticket"]["number"] == third["number"]
