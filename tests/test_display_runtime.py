"""A call screen over a real Mosquitto: calls shown and announced once, in order; resync; bad input; health."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicflow.mqtt import PahoMessageBus
from display import samples
from display.runtime import CallScreen
from display.watchdog import STALL_EXIT_CODE, Watchdog
from hardware.speech import AlsaPlayer, EspeakSpeaker, FakeSpeaker, PhraseCache, wav_duration
from protocol import topics
from protocol.payloads import DeviceStatus, decode_payload, encode_payload

SITE = "demo"


@pytest.fixture
def server(mosquitto):
    """Publishes what the queue server publishes (until tests use the real one)."""
    bus = PahoMessageBus(mosquitto.url)
    bus.start()
    assert bus.wait_connected(5)
    yield bus
    bus.stop()


def publish(bus: PahoMessageBus, topic: str, payload, retain: bool = False) -> None:
    bus.publish(topic, payload, retain=retain).wait_for_publish(5)


def ready_screen(url: str, rooms, server_bus, speaker=None, site: str = SITE, **kw) -> CallScreen:
    """A started screen whose subscriptions are live: it has drawn the retained snapshot of its first room."""
    first = rooms[0] if rooms else "r1"
    publish(server_bus, topics.room_state(site, first), samples.room_state(first, 1, "A001", site=site), retain=True)
    screen = CallScreen(url, site, rooms, speaker=speaker if speaker is not None else FakeSpeaker(), **kw).start()
    assert screen.wait_until(lambda vm: any(t["ticket"] == "A001" for t in vm.tiles), 5)
    return screen


def test_a_call_is_shown_large_and_announced_with_chime_then_mandarin_then_english_twice(mosquitto, server):
    speaker = FakeSpeaker()
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker)
    try:
        publish(server, topics.room_state(SITE, "r1"), samples.room_state("r1", 2, "A012", next_tickets=("A013",)), retain=True)
        call = samples.call_event("r1", 2, "A012")
        publish(server, topics.calls(SITE), call)
        assert screen.wait_for_call(call_id=call.id)
        assert screen.announcer.wait_for(1)
        assert screen.view_model.ticket_text == "A012" and screen.view_model.name_text == "张*丰"
        zh, en = "请 A012 号到 1 诊室就诊", "Number A012, please go to room 1"
        assert speaker.events == ["chime", ("zh", zh), ("en", en), ("zh", zh), ("en", en)]
        assert screen.announcements[0].ok and screen.announcements[0].call_id == call.id
    finally:
        screen.stop()


def test_twenty_calls_in_one_second_give_twenty_announcements_in_order_none_twice(mosquitto, server, tmp_path):
    speaker = EspeakSpeaker(player=AlsaPlayer(device="null"), cache=PhraseCache(tmp_path))
    rooms = ["r1", "r2", "r3", "r4"]
    screen = ready_screen(mosquitto.url, [], server, speaker, layout="hall", repeats=1)
    try:
        calls = [samples.call_event(rooms[i % 4], 10 + i, f"{'ABCE'[i % 4]}{i:03d}") for i in range(20)]
        for call in calls:  # as fast as the server can publish: well inside one second
            server.publish(topics.calls(SITE), call)
        publish(server, topics.calls(SITE), calls[3])  # a duplicate delivery of an earlier call
        assert screen.announcer.wait_for(20, timeout=30)
        assert [a.call_id for a in screen.announcements] == [c.id for c in calls]
        assert screen.announcer.pending == 0 and len(screen.announcements) == 20
        for earlier, later in zip(screen.announcements, screen.announcements[1:]):
            assert earlier.finished <= later.started, "announcements never overlap"
        assert len(speaker.synthesised) == 40 and all(wav_duration(p) > 1 for p in speaker.synthesised)
        assert screen.wait_until(lambda vm: len(vm.history) == 8 and vm.history[0]["ticket"] == calls[-1].ticket)
    finally:
        screen.stop()
        speaker.close()


def test_screen_resyncs_after_a_broker_restart_without_announcing_old_calls(private_mosquitto):
    server = PahoMessageBus(private_mosquitto.url)
    server.start()
    assert server.wait_connected(5)
    speaker = FakeSpeaker()
    screen = ready_screen(private_mosquitto.url, ["r1"], server, speaker, offline_after=0.3, tick_interval=0.1)
    try:
        old_call = samples.call_event("r1", 5, "A005")
        publish(server, topics.room_state(SITE, "r1"), samples.room_state("r1", 5, "A005"), retain=True)
        publish(server, topics.calls(SITE), old_call)
        assert screen.announcer.wait_for(1)

        private_mosquitto.stop()
        assert screen.wait_until(lambda vm: vm.banner_text.startswith("网络离线，最后更新"), 5)
        assert screen.view_model.ticket_text == "A005"
        private_mosquitto.start()
        assert server.wait_connected(10)
        # The server re-publishes its snapshot on reconnect; meanwhile A006 was called while we were cut off.
        publish(server, topics.room_state(SITE, "r1"), samples.room_state("r1", 7, "A006"), retain=True)
        reconnected = time.monotonic()
        assert screen.wait_until(lambda vm: vm.ticket_text == "A006" and vm.banner_text == "", 5)
        assert time.monotonic() - reconnected < 2.0
        # Late or repeated events from before the snapshot are not announced again.
        publish(server, topics.calls(SITE), old_call)
        publish(server, topics.calls(SITE), samples.call_event("r1", 6, "A006"))
        fresh = samples.call_event("r1", 8, "A007")
        publish(server, topics.calls(SITE), fresh)
        assert screen.announcer.wait_for(2)
        assert [a.ticket for a in screen.announcements] == ["A005", "A007"]
    finally:
        screen.stop()
        server.stop()


def test_server_going_offline_is_shown(mosquitto, server):
    screen = ready_screen(mosquitto.url, ["r1"], server, languages=("en",))
    try:
        publish(server, topics.server_availability(SITE), b"offline", retain=True)
        assert screen.wait_until(lambda vm: vm.banner_text == "queue server offline")
        publish(server, topics.server_availability(SITE), b"online", retain=True)
        assert screen.wait_until(lambda vm: vm.banner_text == "")
    finally:
        screen.stop()


def test_notice_from_the_server_scrolls_on_the_screen(mosquitto, server):
    screen = ready_screen(mosquitto.url, ["r1"], server)
    try:
        publish(server, topics.notice(SITE), samples.notice(), retain=True)
        assert screen.wait_until(lambda vm: "Dr. Li's clinic is running 20 minutes late" in vm.notice_text)
    finally:
        publish(server, topics.notice(SITE), b"", retain=True)  # clear the retained notice for other tests
        screen.stop()


BAD = [
    (topics.calls(SITE), b"{not json"),
    (topics.calls(SITE), b'{"v": 2, "id": "x"}'),
    (topics.calls(SITE), b"x" * 70_000),
    (topics.calls(SITE), json.dumps({**json.loads(encode_payload(samples.call_event("r1", 1, "A001"))), "extra": 1}).encode()),
    (topics.room_state(SITE, "r1"), encode_payload(samples.room_state("r2", 50, "A050"))),  # another room's topic
    (topics.room_state(SITE, "r1"), b"[]"),
    (topics.server_availability(SITE), b"maybe"),
    (topics.notice(SITE), b'{"v": 1}'),
]


def test_malformed_payloads_are_dropped_and_the_next_call_still_shows(mosquitto, server, caplog):
    speaker = FakeSpeaker()
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker)
    try:
        for topic, payload in BAD:
            publish(server, topic, payload)
        good = samples.call_event("r1", 3, "A003")
        publish(server, topics.calls(SITE), good)
        assert screen.wait_for_call(call_id=good.id) and screen.announcer.wait_for(1)
        assert screen.dropped == len(BAD)
        assert screen.view_model.ticket_text == "A001" and [a.ticket for a in screen.announcements] == ["A003"]
    finally:
        screen.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    topic=st.sampled_from([topics.calls(SITE), topics.room_state(SITE, "r1"), topics.notice(SITE),
                           topics.server_availability(SITE), "clinicflow/v1/demo/rooms/r1/other",
                           "clinicflow/v1/other/calls", "junk"]) | st.text(max_size=40),
    payload=st.binary(max_size=300) | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
        max_leaves=12).map(lambda v: json.dumps(v).encode()),
    retained=st.booleans(),
)
def test_fuzzed_messages_never_break_the_screen(fuzz_screen, topic, payload, retained):
    fuzz_screen.handle(topic, payload, retained)  # the exact entry the MQTT thread calls
    assert fuzz_screen.view_model.ticket_text in ("—", "A001")


@pytest.fixture(scope="module")
def fuzz_screen():
    screen = CallScreen("mqtt://127.0.0.1:1", SITE, ["r1"], speaker=FakeSpeaker())  # never started: no network
    screen.announcer.start()
    yield screen
    screen.stop()


def test_speech_failure_keeps_the_screen_running_and_is_reported_in_status(mosquitto, server):
    statuses: queue.Queue[DeviceStatus] = queue.Queue()
    watcher = PahoMessageBus(mosquitto.url)
    watcher.subscribe_model(topics.device(SITE, "door-r1", "status"), DeviceStatus, lambda t, m, r: statuses.put(m))
    speaker = FakeSpeaker()
    speaker.simulate_failure("no audio output: no soundcards found")
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker, device_id="door-r1")
    try:
        with watcher:
            call = samples.call_event("r1", 4, "A004")
            publish(server, topics.calls(SITE), call)
            assert screen.wait_for_call(call_id=call.id) and screen.announcer.wait_for(1)
            assert screen.view_model.history[0]["ticket"] == "A004"
            assert not screen.announcements[0].ok
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                status = statuses.get(timeout=5)
                if status.checks.get("speech") is False:
                    break
            assert status.checks["speech"] is False and status.checks["broker"] is True
            assert "no soundcards" in status.details["speech_error"] and status.role == "door_screen"
            assert status.details["last_call_id"] == call.id
    finally:
        screen.stop()


def test_availability_is_announced_retained_and_goes_offline_when_the_screen_stops(mosquitto, server):
    seen: queue.Queue[bytes] = queue.Queue()
    screen = ready_screen(mosquitto.url, ["r1"], server, device_id="door-r1b")
    screen.stop()
    watcher = PahoMessageBus(mosquitto.url)
    watcher.subscribe(topics.device(SITE, "door-r1b", "availability"), lambda t, p, r: seen.put(p))
    with watcher:
        assert seen.get(timeout=5) == b"offline"


def test_watchdog_fires_once_when_the_ui_thread_stops_beating():
    fired: queue.Queue[float] = queue.Queue()
    dog = Watchdog(timeout=0.2, check_every=0.05, on_stall=fired.put).start()
    try:
        for _ in range(5):
            dog.beat()
            time.sleep(0.05)  # a healthy UI thread beating
        assert fired.empty()
        assert fired.get(timeout=2) > 0.2 and dog.stalled
    finally:
        dog.stop()


def test_watchdog_exits_the_process_non_zero_so_systemd_restarts_it():
    code = textwrap.dedent("""
        import time
        from display.watchdog import Watchdog
        Watchdog(timeout=0.3, check_every=0.05).start()
        time.sleep(10)  # the UI thread is stuck
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20)
    assert proc.returncode == STALL_EXIT_CODE
    assert b"UI thread stalled" in proc.stderr
