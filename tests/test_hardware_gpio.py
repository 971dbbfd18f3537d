"""GPIO parts on gpiozero's MockFactory: debounced buttons, the clinician's button box, the kiosk panel."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.buttonbox import ButtonBoxPins, ButtonResult, CallButtonBox, RoomApiClient
from hardware.buttonbox_cli import main as buttonbox_main
from hardware.debounce import PRESS, RELEASE, DebouncedButton, Debouncer
from hardware.kiosk_panel import FakeKioskPanel, KioskPanel, KioskPanelPins

SETTLE = 0.03


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def bounce(pin, final_low: bool, edges: int = 8) -> None:
    """A contact closing (or opening) with ``edges`` bounces, as fast as Python toggles a mock pin."""
    for i in range(edges):
        (pin.drive_low if i % 2 == 0 else pin.drive_high)()
    (pin.drive_low if final_low else pin.drive_high)()


# -- the debounce state machine, on exact times --------------------------------------------------

def test_debouncer_reports_a_bouncing_press_once_after_it_settles():
    d = Debouncer(0.02)
    events = []
    for i, t in enumerate([0.000, 0.001, 0.0015, 0.003, 0.004]):  # closes with bounces, ends closed
        events += d.feed(i % 2 == 0, t)
    assert events == [] and d.deadline() == pytest.approx(0.024)
    assert d.poll(0.020) == []          # not yet stable for 20 ms
    assert d.poll(0.024) == [PRESS]
    assert d.poll(0.5) == [] and d.pressed


def test_debouncer_ignores_a_spike_shorter_than_the_settle_time():
    d = Debouncer(0.02)
    assert d.feed(True, 1.000) == []
    assert d.feed(False, 1.005) == []   # 5 ms spike from a lift motor
    assert d.poll(2.0) == [] and not d.pressed


def test_debouncer_reports_release_after_press():
    d = Debouncer(0.02)
    d.feed(True, 0.0)
    assert d.feed(False, 0.5) == [PRESS]  # a due press is reported before the next edge
    assert d.poll(0.52) == [RELEASE]


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0.0, max_value=0.019), min_size=0, max_size=30), final=st.booleans())
def test_debouncer_any_bounce_shorter_than_settle_gives_at_most_one_event(gaps, final):
    d = Debouncer(0.02)
    t, level, events = 10.0, False, []
    for gap in gaps:
        t += gap
        level = not level
        events += d.feed(level, t)
    events += d.feed(final, t + 0.001)
    events += d.poll(t + 1.0)
    assert events == ([PRESS] if final else [])
    assert d.pressed is final


# -- a real debounced button on mock pins ----------------------------------------------------------

def test_debounced_button_on_mock_pin_fires_once_per_bouncing_press(pins: MockFactory):
    pressed, released = threading.Semaphore(0), threading.Semaphore(0)
    threads = []
    with DebouncedButton(17, settle_s=SETTLE, pin_factory=pins) as button:
        button.when_pressed = lambda: (threads.append(threading.current_thread().name), pressed.release())
        button.when_released = released.release
        pin = pins.pin(17)
        bounce(pin, final_low=True)
        assert pressed.acquire(timeout=2)
        assert button.is_pressed
        bounce(pin, final_low=False)
        assert released.acquire(timeout=2)
        # One press, one release: no extra events arrive after the settle time.
        assert not pressed.acquire(timeout=SETTLE * 4) and not released.acquire(timeout=0)
    assert threads == ["debounce-17"]  # handlers never run in gpiozero's edge thread


def test_debounced_button_spike_is_not_a_press(pins: MockFactory):
    pressed = threading.Event()
    with DebouncedButton(17, settle_s=0.2, pin_factory=pins) as button:
        button.when_pressed = pressed.set
        pin = pins.pin(17)
        pin.drive_low()
        pin.drive_high()
        assert not pressed.wait(0.4)


# -- the button box against a real HTTP server ------------------------------------------------------

class _Api:
    """A stand-in queue server on a loopback port speaking the room API; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.status = "open"
        self.fail: tuple[int, str] | None = None
        self.hang = threading.Event()
        self.release = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                api.requests.append(("GET", self.path, dict(self.headers)))
                self._reply(200, {"status": api.status})

            def do_POST(self):
                api.requests.append(("POST", self.path, dict(self.headers)))
                if api.hang.is_set():
                    api.release.wait(5)
                if api.fail:
                    self._reply(api.fail[0], {"detail": api.fail[1]})
                    return
                op = self.path.rsplit("/", 1)[-1]
                if op == "pause":
                    api.status = "paused"
                elif op == "resume":
                    api.status = "open"
                self._reply(200, {"ok": op})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def posts(self) -> list[str]:
        return [p for m, p, _ in self.requests if m == "POST"]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[_Api]:
    server = _Api()
    try:
        yield server
    finally:
        server.close()


def _box(api: _Api, pins: MockFactory, results: list, timeout: float = 5.0) -> tuple[CallButtonBox, threading.Semaphore]:
    done = threading.Semaphore(0)

    def on_result(r: ButtonResult) -> None:
        results.append(r)
        done.release()

    client = RoomApiClient(api.url, room="r1", token="clin-token", timeout=timeout)
    return CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins, settle_s=SETTLE,
                         on_result=on_result), done


def test_button_box_call_next_press_calls_the_room_api_once(api: _Api, pins: MockFactory):
    results: list[ButtonResult] = []
    box, done = _box(api, pins, results)
    with box:
        bounce(pins.pin(17), final_low=True)
        assert done.acquire(timeout=5)
        assert results[0].ok and results[0].action == "call_next"
        [(method, path, headers)] = api.requests
        assert (method, path) == ("POST", "/api/v1/rooms/r1/call-next")
        assert headers["Authorization"] == "Bearer clin-token" and len(headers["Idempotency-Key"]) == 32
        assert any(s.state for s in pins.pin(25).states)  # the buzzer beeped


def test_button_box_recall_no_show_and_pause_toggle(api: _Api, pins: MockFactory):
    results: list[ButtonResult] = []
    box, done = _box(api, pins, results)
    with box:
        names = {27: "recall", 22: "no_show", 23: "pause"}
        for pin in (27, 22, 23, 23):  # recall, no-show, pause, pause again (= resume)
            bounce(pins.pin(pin), final_low=True)
            assert done.acquire(timeout=5)
            bounce(pins.pin(pin), final_low=False)
            # A finger needs far longer than the settle time to press again.
            assert wait_until(lambda: not box.buttons[names[pin]].is_pressed)
        assert api.posts() == ["/api/v1/rooms/r1/recall", "/api/v1/rooms/r1/no-show",
                               "/api/v1/rooms/r1/pause", "/api/v1/rooms/r1/resume"]
        assert all(r.ok for r in results) and not box.paused


def test_button_box_ignores_presses_while_a_call_is_under_way(api: _Api, pins: MockFactory):
    results: list[ButtonResult] = []
    box, done = _box(api, pins, results)
    with box:
        api.hang.set()
        assert box.press("call_next")
        deadline = time.monotonic() + 5
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert box.busy and pins.pin(24).state  # busy LED lit while the server thinks
        assert not box.press("call_next")        # the nervous second press calls nobody
        api.hang.clear()
        api.release.set()
        assert done.acquire(timeout=5)
        assert api.posts() == ["/api/v1/rooms/r1/call-next"] and not box.busy


def test_button_box_server_refusal_is_reported_with_its_sentence(api: _Api, pins: MockFactory):
    results: list[ButtonResult] = []
    box, done = _box(api, pins, results)
    with box:
        api.fail = (409, "Nobody is waiting for room 1.")
        box.press("call_next")
        assert done.acquire(timeout=5)
        assert not results[0].ok and results[0].detail == "Nobody is waiting for room 1."
        api.fail = None
        assert box.press("call_next")  # no stuck state after an error
        assert done.acquire(timeout=5) and results[1].ok


def test_button_box_unreachable_server_is_a_clear_error(pins: MockFactory):
    results: list[ButtonResult] = []
    done = threading.Semaphore(0)
    client = RoomApiClient("http://127.0.0.1:9", room="r1", token="t", timeout=1.0)
    with CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins,
                       on_result=lambda r: (results.append(r), done.release())) as box:
        box.press("call_next")
        assert done.acquire(timeout=5)
    assert not results[0].ok and "did not answer" in results[0].detail


def test_button_box_cli_press_without_hardware(api: _Api, monkeypatch, capsys):
    monkeypatch.setenv("CLINICFLOW_TOKEN", "clin-token")
    code = buttonbox_main(["--server", api.url, "--room", "r1", "--pin-factory", "mock", "--press", "call_next"])
    assert code == 0 and "call_next: ok" in capsys.readouterr().out
    api.fail = (403, "This token may not call patients to room r1.")
    code = buttonbox_main(["--server", api.url, "--room", "r1", "--pin-factory", "mock", "--press", "recall"])
    assert code == 1 and "This token may not call patients to room r1." in capsys.readouterr().out


def test_button_box_cli_explains_missing_settings(capsys, monkeypatch):
    monkeypatch.delenv("CLINICFLOW_TOKEN", raising=False)
    assert buttonbox_main(["--server", "http://x", "--room", "r1", "--pin-factory", "mock"]) == 2
    assert "no clinician token" in capsys.readouterr().err
    assert buttonbox_main(["--pins", "call_next=17,lamp=3", "--server", "http://x", "--room", "r1"]) == 2


def test_button_box_pins_from_the_device_file_schema():
    from config.schema import ButtonsSection

    pins = ButtonBoxPins.from_config(ButtonsSection(adapter="gpio", call_next_pin=17, recall_pin=27, pause_pin=22,
                                                    lamp_pin=23))
    assert (pins.call_next, pins.recall, pins.pause, pins.busy_led, pins.no_show, pins.buzzer) == (17, 27, 22, 23, None, None)


# -- the kiosk panel ------------------------------------------------------------------------------------

def test_kiosk_panel_keys_and_status_light(pins: MockFactory):
    keys: list[str] = []
    got = threading.Semaphore(0)
    panel = KioskPanel(pins=KioskPanelPins(), pin_factory=pins, settle_s=SETTLE)
    try:
        panel.when_key = lambda k: (keys.append(k), got.release())
        for pin, key in ((6, "next"), (13, "select"), (19, "back"), (5, "help"), (12, "voice")):
            bounce(pins.pin(pin), final_low=True)
            assert got.acquire(timeout=2)
            bounce(pins.pin(pin), final_low=False)
            assert wait_until(lambda: not panel.buttons[key].is_pressed)
        assert keys == ["next", "select", "back", "help", "voice"]
        panel.show_status("ok")
        assert pins.pin(26).state
        panel.show_status("off")
        assert not pins.pin(26).state
        with pytest.raises(ValueError):
            panel.show_status("purple")
    finally:
        panel.close()


def test_kiosk_panel_reports_headphones_plugged_in_and_out(pins: MockFactory):
    events: list[str] = []
    got = threading.Semaphore(0)
    panel = KioskPanel(pins=KioskPanelPins(headphones=16), pin_factory=pins, settle_s=SETTLE)
    try:
        panel.when_key = lambda k: (events.append(k), got.release())
        bounce(pins.pin(16), final_low=True)  # the jack's switch closes as the plug goes in
        assert got.acquire(timeout=2)
        bounce(pins.pin(16), final_low=False)
        assert got.acquire(timeout=2)
        assert events == ["headphones_in", "headphones_out"]
    finally:
        panel.close()


def test_fake_kiosk_panel_has_the_same_interface():
    panel = FakeKioskPanel()
    keys = []
    panel.when_key = keys.append
    panel.press("select")
    panel.show_status("fault")
    assert keys == ["select"] and panel.status == "fault"
    with pytest.raises(ValueError):
        panel.press("enter")


# -- end to end: a real queue server ---------------------------------------------------------------------

def test_button_box_calls_the_next_patient_on_the_real_queue_server(queue_server, pins: MockFactory):
    with queue_server.client("kiosk") as kiosk:
        r = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"})
        assert r.status_code in (200, 201), r.text
        ticket = r.json()
    room = ticket["room"] or "r1"
    results: list[ButtonResult] = []
    done = threading.Semaphore(0)
    client = RoomApiClient(queue_server.base_url, room=room, token=queue_server.tokens["clinician"])
    with CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins, settle_s=SETTLE,
                       on_result=lambda res: (results.append(res), done.release())) as box:
        bounce(pins.pin(17), final_low=True)  # the clinician presses "call next"
        assert done.acquire(timeout=10)
        assert results[0].ok, results[0].detail
        assert results[0].response["ticket"]["number"] == ticket["number"]
        with queue_server.client("display") as display:
            state = display.get(f"/api/v1/rooms/{room}/state").json()
        assert state["current"]["ticket"] == ticket["number"]
        bounce(pins.pin(17), final_low=False)
        assert wait_until(lambda: not box.buttons["call_next"].is_pressed)
        bounce(pins.pin(23), final_low=True)  # pause the room
        assert done.acquire(timeout=10) and results[1].ok and box.paused
        with queue_server.client("display") as display:
            assert display.get(f"/api/v1/rooms/{room}/state").json()["status"] == "paused"
    client.close()


def test_button_box_with_another_rooms_token_is_refused_with_a_sentence(queue_server, pins: MockFactory):
    results: list[ButtonResult] = []
    done = threading.Semaphore(0)
    client = RoomApiClient(queue_server.base_url, room="r1", token=queue_server.tokens["clinician:sun"])
    with CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins,
                       on_result=lambda res: (results.append(res), done.release())) as box:
        box.press("call_next")
        assert done.acquire(timeout=10)
    client.close()
    assert not results[0].ok and results[0].detail.endswith(".") and len(results[0].detail) > 10


class _LosesAnswers:
    """An httpx transport to the real server that loses the answer of the first ``lose`` POSTs
    (they reach the server and take effect; the box sees a timeout), recording each POST's key."""

    def __init__(self, lose: int = 1) -> None:
        import httpx

        self.inner, self.lose, self.keys = httpx.HTTPTransport(), lose, []

    def handle_request(self, request):
        import httpx

        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.keys.append((request.url.path.rsplit("/", 1)[-1], request.headers["Idempotency-Key"]))
            if self.lose > 0:
                self.lose -= 1
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost on the way", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def _box_losing_answers(queue_server, pins: MockFactory, room: str):  # type: ignore[no-untyped-def]
    """A button box for ``room`` on the real server whose first answer is lost; (box, client, transport, results, done)."""
    transport = _LosesAnswers(lose=1)
    results: list[ButtonResult] = []
    done = threading.Semaphore(0)
    client = RoomApiClient(queue_server.base_url, room=room, token=queue_server.tokens["clinician"],
                           transport=transport)
    box = CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins,
                        on_result=lambda res: (results.append(res), done.release()))
    return box, client, transport, results, done


def test_button_box_retry_after_a_lost_answer_calls_the_same_patient_not_the_next(queue_server, pins: MockFactory):
    with queue_server.client("kiosk") as kiosk:
        first, second = (kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json() for _ in range(2))
    box, client, transport, results, done = _box_losing_answers(queue_server, pins, "r3")
    with box:
        box.press("call_next")  # the server calls the first patient; the answer never arrives
        assert done.acquire(timeout=10) and not results[0].ok
        box.press("call_next")  # the clinician presses again
        assert done.acquire(timeout=10) and results[1].ok, results[1].detail
        assert results[1].response["ticket"]["number"] == first["number"]
        with queue_server.client("clinician") as clinician:
            view = clinician.get("/api/v1/rooms/r3/console").json()
        assert view["current"]["number"] == first["number"]  # not finished and replaced by the second
        assert [e["number"] for e in view["queue"]] == [second["number"]]
        box.press("call_next")  # a new press right after an answer: a new action, which the server questions
        assert done.acquire(timeout=10) and not results[2].ok and "confirm" in results[2].detail
    client.close()
    keys = [k for _, k in transport.keys]
    assert keys[0] == keys[1] and keys[2] != keys[1]


def test_button_box_retried_pause_stays_a_pause(queue_server, pins: MockFactory):
    box, client, transport, results, done = _box_losing_answers(queue_server, pins, "r1")
    with box:
        box.press("pause")  # paused on the server, answer lost
        assert done.acquire(timeout=10) and not results[0].ok
        box.press("pause")  # the retry must not read "paused" and resume the room
        assert done.acquire(timeout=10) and results[1].ok and box.paused
    client.close()
    with queue_server.client("display") as display:
        assert display.get("/api/v1/rooms/r1/state").json()["status"] == "paused"
    assert [op for op, _ in transport.keys] == ["pause", "pause"]


def test_button_box_service_stops_cleanly_on_sigterm(api: _Api):
    """systemd stops the box with SIGTERM: it must release the pins and exit 0, not hang."""
    import os
    import signal
    import subprocess
    import sys

    env = dict(os.environ, CLINICFLOW_TOKEN="clin-token")
    proc = subprocess.Popen([sys.executable, "-m", "clinicflow", "buttonbox", "--server", api.url, "--room", "r1",
                             "--pin-factory", "mock"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout.readline().decode().startswith("button box for room r1 ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
