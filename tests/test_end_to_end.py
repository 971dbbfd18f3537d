"""One patient from kiosk check-in to a spoken call, on real parts: a real queue server process,
real Mosquitto, the kiosk's view-model and its real (headless) Kivy window, ESC/POS bytes, the call
screen's view-model, espeak-ng, and a plain paho client that comes late."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import wave
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicflow.mqtt import PahoMessageBus
from display.runtime import CallScreen
from hardware.escpos_preview import parse as parse_escpos
from hardware.speech import EspeakSpeaker
from hardware.speech.cache import PhraseCache
from hardware.speech.numbers import speakable
from hardware.ticket_printer import EscposTicketPrinter
from kiosk.server_client import KioskServerClient
from kiosk.viewmodels import KioskViewModel
from protocol import RoomState, topics


@pytest.fixture
def queue_server(queue_server_factory, private_mosquitto):
    """A real server on a broker of this test's own: no other test's retained rooms (with higher seq) interfere."""
    return queue_server_factory(broker_url=private_mosquitto.url)


@pytest.fixture
def call_screen(queue_server, tmp_path):
    """A hall board for rooms r1 and r2 with real espeak-ng; sound goes nowhere (no audio device here)."""
    speaker = EspeakSpeaker(player=None, cache=PhraseCache(tmp_path / "speech"))
    screen = CallScreen(queue_server.broker_url, queue_server.site, ["r1", "r2"], speaker=speaker, layout="hall",
                        languages=["zh", "en"], repeats=1).start()
    # Ready once the retained snapshots of both rooms are drawn (the server published them at start).
    assert screen.wait_until(lambda vm: all(t["status"] == "open" for t in vm.tiles), timeout=10)
    try:
        yield screen, speaker
    finally:
        screen.stop()


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_patient_checks_in_at_the_kiosk_and_is_called_and_announced(queue_server, call_screen, tmp_path):
    screen, speaker = call_screen
    receipt = tmp_path / "receipt.escpos"
    kiosk = KioskViewModel(client=KioskServerClient(queue_server.base_url, token=queue_server.tokens["kiosk"]),
                           printer=EscposTicketPrinter(device=f"file://{receipt}", profile="cn-80"))

    # The patient types the appointment number on the keypad and confirms.
    kiosk.checkin.type_code("AP1001")
    kiosk.checkin.submit()
    assert kiosk.screen == "ticket", kiosk.current.error
    ticket = kiosk.ticket.ticket
    assert ticket.number.startswith("A") and ticket.department == "internal"

    # The slip that came out of the printer: the number, and a QR code leading to the status page.
    printed = parse_escpos(receipt.read_bytes())
    assert ticket.number in printed.text
    assert printed.native_qr_payloads == [ticket.status_url]

    # The clinician in room 1 calls the next patient.
    with queue_server.client("clinician") as clinician:
        reply = clinician.post("/api/v1/rooms/r1/call-next")
    assert reply.status_code == 200, reply.text
    call = reply.json()
    assert call["ticket"]["number"] == ticket.number and call["reason"]

    # The waiting room sees it, with a masked name, and hears it: chime, Mandarin, English.
    assert screen.wait_for_call(call_id=call["call_id"], timeout=10)
    tile = next(t for t in screen.view_model.tiles if t["room"] == "r1")
    assert tile["ticket"] == ticket.number
    assert "张伟" not in json.dumps(screen.view_model.tiles, ensure_ascii=False)
    assert screen.announcer.wait_for(1, timeout=20)
    spoken = screen.announcements[0]
    assert [lang for lang, _ in spoken.phrases] == ["zh", "en"]
    # Figures as words (speakable), and where room 1 is (the demo hospital file's location).
    assert dict(spoken.phrases)["en"] == (f"{speakable(f'Number {ticket.number}', 'en')}, please go to room one, "
                                          "Clinic building, floor two, first door left from the lifts")
    wavs = [p for p in speaker.synthesised if p.name != "chime.wav"]
    assert wavs and all(_wav_seconds(p) > 0.5 for p in wavs)

    # A screen or phone that connects only now still gets the room's state (retained).
    late: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.room_state(queue_server.site, "r1"), 1)
    client.on_message = lambda c, u, m: late.put(m)
    broker_host, broker_port = queue_server.broker_url.removeprefix("mqtt://").split(":")
    client.connect(broker_host, int(broker_port))
    client.loop_start()
    try:
        message = late.get(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()
    state = RoomState.model_validate_json(message.payload)
    assert message.retain and state.current is not None and state.current.ticket == ticket.number


def test_touching_the_real_kiosk_window_checks_a_patient_in(queue_server, tmp_path):
    """The `clinicflow kiosk --walkthrough` path: real window, keypad buttons pressed one by one."""
    shots = tmp_path / "shots"
    done = subprocess.run([sys.executable, "-m", "clinicflow", "kiosk", "--server", queue_server.base_url,
                           "--token", queue_server.tokens["kiosk"], "--walkthrough", "AP1003",
                           "--screenshot-dir", str(shots)], capture_output=True, timeout=120)
    report = json.loads((shots / "walkthrough.json").read_text())
    assert done.returncode == 0, report["errors"]
    assert report["touches"][-1] == "OK" and report["ticket_printed"] and report["final_screen"] == "ticket"
    with queue_server.client("clinician") as clinician:
        rooms = clinician.get("/api/v1/rooms").json()
    waiting = {t for room in rooms for t in room["next_tickets"]}
    assert report["ticket_number"] in waiting  # the server queued the ticket the window showed
    assert (shots / "touch-ticket.png").stat().st_size > 10_000


def test_malformed_call_does_not_stop_the_call_screen(queue_server, call_screen):
    screen, _ = call_screen
    with PahoMessageBus(queue_server.broker_url) as rogue:
        assert rogue.wait_connected(5)
        rogue.publish(topics.calls(queue_server.site), b'{"v": 1, "ticket": "<script>"}').wait_for_publish(5)
        rogue.publish(topics.calls(queue_server.site), b"\xff\x00garbage").wait_for_publish(5)
    with queue_server.client("kiosk") as kiosk:
        assert kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).status_code in (200, 201)
    with queue_server.client("clinician") as clinician:
        call = clinician.post("/api/v1/rooms/r1/call-next").json()
    assert screen.wait_for_call(call_id=call["call_id"], timeout=10)
    assert screen.dropped == 2  # both logged and dropped, the real call still shown
