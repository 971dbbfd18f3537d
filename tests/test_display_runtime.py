"""A call screen over a real Mosquitto: calls shown and announced once, in order; resync; bad input; health."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicflow.mqtt import PahoMessageBus
from display import samples
from display.runtime import CallScreen
from display.watchdog import STALL_EXIT_CODE, Watchdog
from hardware.speech import AlsaPlayer, EspeakSpeaker, FakeSpeaker, PhraseCache, wav_duration
from hardware.speech.numbers import speakable
from protocol import topics
from protocol.payloads import DeviceStatus, encode_payload
from tests.fixtures_server import copy_demo_maps

SITE = "demo"
ROOT = Path(__file__).resolve().parent.parent


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
        assert screen.view_model.where_text == "门诊楼 2 楼，出电梯左转第一间"
        # Where the room is, after the room; figures as the words a person says (speakable).
        zh = "请 A 零一二 号到 一 诊室就诊，门诊楼 二 楼，出电梯左转第一间"
        en = "Number A, zero one two, please go to room one, Clinic building, floor two, first door left from the lifts"
        assert speaker.events == ["chime", ("zh", zh), ("en", en), ("zh", zh), ("en", en)]
        assert screen.announcements[0].ok and screen.announcements[0].call_id == call.id
    finally:
        screen.stop()


def test_twenty_calls_in_one_second_give_twenty_announcements_in_order_none_twice(mosquitto, server, tmp_path):
    speaker = EspeakSpeaker(player=AlsaPlayer(device="null"), cache=PhraseCache(tmp_path))
    rooms = ["r1", "r2", "r3", "r4"]
    # A site of its own: no retained snapshot another test left (with its next tickets to pre-render).
    screen = ready_screen(mosquitto.url, [], server, speaker, layout="hall", repeats=1, site="burst")
    try:
        calls = [samples.call_event(rooms[i % 4], 10 + i, f"{'ABCE'[i % 4]}{i:03d}", site="burst") for i in range(20)]
        for call in calls:  # as fast as the server can publish: well inside one second
            server.publish(topics.calls("burst"), call)
        publish(server, topics.calls("burst"), calls[3])  # a duplicate delivery of an earlier call
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


def test_recall_is_announced_again_and_highlighted(mosquitto, server):
    speaker = FakeSpeaker()
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker, repeats=1)
    try:
        # Calls as a server from before room locations sends them (no room_where): said without one.
        publish(server, topics.calls(SITE), samples.call_event("r1", 2, "A012", where=False))
        recall = samples.call_event("r1", 3, "A012", kind="recall", recall_count=1, where=False)
        publish(server, topics.calls(SITE), recall)
        assert screen.announcer.wait_for(2) and screen.wait_for_call(call_id=recall.id)
        assert screen.announcements[1].phrases == [("zh", "再次呼叫，请 A 零一二 号到 一 诊室就诊"),
                                                   ("en", "Calling again. Number A, zero one two, please go to room one")]
        assert screen.view_model.highlight and screen.view_model.history[0]["recall"]
    finally:
        screen.stop()


def test_cantonese_screen_speaks_and_shows_cantonese(mosquitto, server):
    speaker = FakeSpeaker()
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker, languages=("yue", "en"), repeats=1)
    try:
        publish(server, topics.calls(SITE), samples.call_event("r1", 2, "A012"))
        assert screen.announcer.wait_for(1)
        assert speaker.events == ["chime", ("yue", "请 A 零一二 号到 一 診室睇症，门诊楼 二 楼，出电梯左转第一间"),
                                  ("en", "Number A, zero one two, please go to room one, Clinic building, floor two, "
                                         "first door left from the lifts")]
        assert screen.view_model.caption_text == "現正診症"
    finally:
        screen.stop()


def test_next_tickets_are_prerendered_so_their_call_needs_no_synthesis(mosquitto, server, tmp_path):
    speaker = EspeakSpeaker(player=AlsaPlayer(device="null"), cache=PhraseCache(tmp_path))
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker)
    try:
        publish(server, topics.room_state(SITE, "r1"), samples.room_state("r1", 2, "A012", next_tickets=("A013", "A014")),
                retain=True)
        assert screen.wait_until(lambda vm: vm.ticket_text == "A012")
        assert speaker.wait_prepared()
        rendered = len(speaker.synthesised)
        assert rendered == 4  # A013 and A014, Mandarin and English, before anyone called them
        assert (tmp_path / "chime.wav").exists()
        publish(server, topics.calls(SITE), samples.call_event("r1", 3, "A013"))
        assert screen.announcer.wait_for(1)
        assert len(speaker.synthesised) == rendered, "the call was spoken from the cache"
        assert screen.announcements[0].ok and len(speaker.player.played) == 5  # chime + 2 x (zh, en)
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

        links: queue.Queue[tuple[bool, float]] = queue.Queue()
        screen.bus.add_connection_listener(lambda up: links.put((up, time.monotonic())))
        private_mosquitto.stop()
        assert screen.wait_until(lambda vm: vm.banner_text.startswith("网络离线，最后更新"), 5)
        assert screen.view_model.ticket_text == "A005"
        private_mosquitto.start()
        assert server.wait_connected(10)
        # The server re-publishes its snapshot on reconnect; meanwhile A006 was called while we were cut off.
        publish(server, topics.room_state(SITE, "r1"), samples.room_state("r1", 7, "A006"), retain=True)
        assert screen.wait_until(lambda vm: vm.ticket_text == "A006" and vm.banner_text == "", 10)
        shown = time.monotonic()
        ups = []
        while not links.empty():
            ups += [t for up, t in [links.get()] if up]
        assert ups and shown - ups[-1] < 2.0, "the right state within 2 s of the screen reconnecting"
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


def test_malformed_payloads_are_dropped_and_the_next_call_still_shows(mosquitto, server):
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
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=20)
    assert proc.returncode == STALL_EXIT_CODE
    assert b"UI thread stalled" in proc.stderr


def test_technician_can_trigger_a_test_announcement_remotely(mosquitto, server):
    from protocol.payloads import DeviceCommand, DeviceResponse

    answers: queue.Queue[DeviceResponse] = queue.Queue()
    speaker = FakeSpeaker()
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker, device_id="door-r1c", repeats=1)
    try:
        server.subscribe_model(topics.device(SITE, "door-r1c", "response"), DeviceResponse, lambda t, m, r: answers.put(m))
        publish(server, topics.device(SITE, "door-r1c", "command"),
                DeviceCommand(command="test_announcement", transaction="t-1"))
        answer = answers.get(timeout=10)
        assert (answer.status, answer.transaction) == ("ok", "t-1"), answer.error
        assert speaker.events[0] == "chime" and speaker.spoken[-1].text == "This is a test announcement"
    finally:
        screen.stop()


def test_pushed_settings_change_rooms_languages_and_repeats_live(mosquitto, server):
    speaker = FakeSpeaker()
    publish(server, topics.room_state(SITE, "r2"), samples.room_state("r2", 4, "A044"), retain=True)
    screen = ready_screen(mosquitto.url, ["r1"], server, speaker, device_id="door-cfg")
    try:
        # The fleet's retained config push, as an administrator sends it.
        publish(server, topics.device(SITE, "door-cfg", "config"),
                json.dumps({"rooms": ["r2"], "languages": ["en"], "announce_repeat": 1, "revision": 7}).encode(),
                retain=True)
        assert screen.wait_until(lambda vm: vm.caption_text == "Now serving" and vm.ticket_text == "A044", 10)
        assert screen.view_model.room_title == "room 2"
        publish(server, topics.calls(SITE), samples.call_event("r1", 9, "A009"))  # no longer this screen's room
        publish(server, topics.calls(SITE), samples.call_event("r2", 5, "A045", where=False))
        assert screen.announcer.wait_for(1)
        assert speaker.events == ["chime", ("en", "Number A, zero four five, please go to room two")]
        with pytest.raises(ValueError):
            screen.apply_settings({"rooms": ["r1", "r2"]})
    finally:
        publish(server, topics.device(SITE, "door-cfg", "config"), b"", retain=True)
        screen.stop()


def test_calls_from_the_real_queue_server_are_shown_and_announced_once(queue_server_factory, tmp_path):
    """Walk-ins, call-next and recall over HTTP on a real ``clinicflow server``; the screen follows over MQTT."""
    demo = (ROOT / "queueserver" / "demo_hospital.toml").read_text()
    hospital = tmp_path / "hospital.toml"
    hospital.write_text(demo.replace("recall_min_interval_s = 20", "recall_min_interval_s = 0"))  # no 20 s wait
    copy_demo_maps(tmp_path)
    queue_server = queue_server_factory(hospital=hospital)
    speaker = FakeSpeaker()
    kiosk, admin = queue_server.client("kiosk"), queue_server.client("admin")
    tickets = [kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()["number"] for _ in range(3)]
    screen = CallScreen(queue_server.broker_url, queue_server.site, ["r1"], speaker=speaker, repeats=1).start()
    try:
        assert screen.wait_until(lambda vm: vm.room_title == "1 诊室", 10), "the server's retained snapshot arrived"
        calls = [admin.post("/api/v1/rooms/r1/call-next", params={"confirm": "true"}).json() for _ in range(2)]
        for call in calls:
            assert screen.wait_for_call(call_id=call["call_id"], timeout=10)
        recall = admin.post("/api/v1/rooms/r1/recall").json()
        assert screen.wait_for_call(call_id=recall["call_id"], timeout=10) and screen.announcer.wait_for(3)
        called = [c["ticket"]["number"] for c in calls]
        assert set(called) <= set(tickets)
        assert [(a.ticket, a.kind) for a in screen.announcements] == [(called[0], "call"), (called[1], "call"),
                                                                      (called[1], "recall")]
        assert screen.wait_until(lambda vm: vm.ticket_text == called[1] and vm.highlight, 5)
        # The demo hospital file's location of room 1, said after the room and shown on the door screen.
        ticket = speakable(called[0], "zh")
        assert speaker.spoken[0].text == f"请 {ticket} 号到 一 诊室就诊，门诊楼 二 楼，出电梯左转第一间"
        assert screen.view_model.where_text == "门诊楼 2 楼，出电梯左转第一间"
        assert screen.view_model.where_subtext == "Clinic building, floor 2, first door left from the lifts"
    finally:
        screen.stop()
        kiosk.close()
        admin.close()
