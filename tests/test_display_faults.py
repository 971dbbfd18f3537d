"""Call screens around faults, on a real Mosquitto, a real ``clinicflow server`` and the real screen runtime.

Broker outages (no call spoken late; the console shows what screens missed), a restored store
(seq goes back: the next call is still spoken), a bogus snapshot (ignored), a removed room
(tile gone, retained state cleared, also after a restart), unknown rooms and unversioned
payloads (dropped), and what the screen reports to monitoring.
"""
from __future__ import annotations

import json
import queue
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import expect
from paho.mqtt.enums import CallbackAPIVersion

from clinicflow.mqtt import PahoMessageBus
from display import samples
from display.runtime import CallScreen
from hardware.speech import FakeSpeaker
from protocol import topics
from protocol.errors import ProtocolError
from protocol.payloads import DeviceStatus, RoomState, decode_payload, encode_payload
from tests.fixtures_server import copy_demo_maps

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hospital_file(tmp_path: Path) -> Path:
    """The demo hospital without the 20 s wait between recalls."""
    path = tmp_path / "hospital.toml"
    demo = (ROOT / "queueserver" / "demo_hospital.toml").read_text()
    path.write_text(demo.replace("recall_min_interval_s = 20", "recall_min_interval_s = 0"))
    copy_demo_maps(tmp_path)
    return path


@pytest.fixture
def bus(mosquitto) -> Iterator[PahoMessageBus]:
    """Plays the queue server (or an intruder) on the session broker."""
    with PahoMessageBus(mosquitto.url) as started:
        assert started.wait_connected(5)
        yield started


@contextmanager
def running(url: str, site: str, rooms: list[str], **options: object) -> Iterator[CallScreen]:
    """A started screen with live subscriptions, stopped afterwards."""
    screen = CallScreen(url, site, rooms, speaker=FakeSpeaker(), **options).start()  # type: ignore[arg-type]
    try:
        assert screen.bus.wait_connected(5)
        yield screen
    finally:
        screen.stop()


def send(bus: PahoMessageBus, topic: str, payload: object, retain: bool = False) -> None:
    bus.publish(topic, payload, retain=retain).wait_for_publish(5)  # type: ignore[arg-type]


def walk_ins(server, count: int, department: str = "internal") -> list[str]:
    with server.client("kiosk") as kiosk:
        return [kiosk.post("/api/v1/walkins", json={"department": department}).json()["number"] for _ in range(count)]


def retained_states(url: str, site: str, wait: float = 1.0) -> dict[str, bytes]:
    """What a board that starts now would receive: every retained room snapshot of the site."""
    got: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topics.all_room_states(site), qos=1)
    client.on_message = lambda c, u, m: got.__setitem__(topics.parse(m.topic).room, m.payload) if m.retain else None
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    time.sleep(wait)
    client.loop_stop()
    client.disconnect()
    return {room: payload for room, payload in got.items() if payload}


def test_calls_made_while_the_broker_is_down_are_never_spoken_late_and_the_console_marks_them(
        queue_server_factory, private_mosquitto, hospital_file, browser_page, artifacts_dir):
    server = queue_server_factory(broker_url=private_mosquitto.url, hospital=hospital_file, site="outage")
    walk_ins(server, 4)
    speaker = FakeSpeaker()
    expiries: queue.Queue[tuple[dict, int | None]] = queue.Queue()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: expiries.put((json.loads(m.payload),
                                                       getattr(m.properties, "MessageExpiryInterval", None)))
    watcher.connect(private_mosquitto.host, private_mosquitto.port)
    watcher.subscribe(topics.calls("outage"), qos=1)
    watcher.loop_start()
    screen = CallScreen(private_mosquitto.url, "outage", ["r1"], speaker=speaker, repeats=1, tick_interval=0.2).start()
    admin = server.client("admin")
    try:
        assert screen.wait_until(lambda vm: vm.room_title == "1 诊室", 10)
        heard = admin.post("/api/v1/rooms/r1/call-next").json()
        assert screen.wait_for_call(call_id=heard["call_id"], timeout=10) and screen.announcer.wait_for(1)
        event, expiry = expiries.get(timeout=5)
        assert event["announce_within_s"] == 10 and expiry is not None and 0 < expiry <= 10, \
            "the call carries its window, and the broker drops it once the window has passed"

        private_mosquitto.stop()
        assert screen.wait_until(lambda vm: not vm.connected, 5)
        missed = [admin.post("/api/v1/rooms/r1/call-next", params={"confirm": "true"}).json()  # deliberate
                  for _ in range(2)]
        assert all("call_id" in m for m in missed), "calling goes on while the screens' broker is down"
        console = admin.get("/api/v1/rooms/r1/console").json()
        assert [u["ticket"] for u in console["unheard_calls"]] == [m["ticket"]["number"] for m in reversed(missed)]
        assert console["current"]["unheard"] is True, "the clinician sees that the current call was not heard"
        browser_page.goto(f"{server.base_url}/console/r1#token={server.tokens['clinician:zhou']}&lang=en")  # zh_CN by default
        expect(browser_page.locator("#unheard")).to_contain_text(
            f"Not heard by the call screens: {missed[1]['ticket']['number']}, {missed[0]['ticket']['number']}")
        expect(browser_page.locator("#unheard")).to_contain_text(f"Recall {missed[1]['ticket']['number']}")
        browser_page.screenshot(path=str(artifacts_dir / "queue-console-unheard-calls.png"))

        private_mosquitto.start()
        latest = missed[-1]["ticket"]["number"]
        assert screen.wait_until(lambda vm: vm.connected and vm.ticket_text == latest, 10), \
            "after the outage the screen shows the room as it is"
        time.sleep(1.5)  # a replay of the calls made during the outage would be spoken by now
        assert [a.call_id for a in screen.announcements] == [heard["call_id"]], "nothing spoken late"

        # The clinician recalls the patient: that is heard, and the mark goes.
        recall = admin.post("/api/v1/rooms/r1/recall").json()
        assert screen.wait_for_call(call_id=recall["call_id"], timeout=10) and screen.announcer.wait_for(2)
        assert screen.announcements[-1].ticket == latest
        console = admin.get("/api/v1/rooms/r1/console").json()
        assert latest not in [u["ticket"] for u in console["unheard_calls"]] and not console["current"]["unheard"]
    finally:
        admin.close()
        screen.stop()
        watcher.loop_stop()
        watcher.disconnect()


def test_a_call_that_reaches_the_screen_after_its_window_is_shown_but_not_spoken(mosquitto, bus):
    with running(mosquitto.url, "late", ["r1"], repeats=1) as screen:
        send(bus, topics.room_state("late", "r1"), samples.room_state("r1", 1, "A001", site="late"), retain=True)
        assert screen.wait_until(lambda vm: vm.ticket_text == "A001", 5)
        old = samples.call_event("r1", 2, "A002", site="late")
        old = old.model_copy(update={"ts": old.ts - timedelta(seconds=30)})  # held up 30 s somewhere
        fresh = samples.call_event("r1", 3, "A003", site="late")
        for event in (old, fresh):
            send(bus, topics.calls("late"), event)
        assert screen.wait_for_call(call_id=fresh.id) and screen.announcer.wait_for(1)
        assert [h["ticket"] for h in screen.view_model.history] == ["A003", "A002"], "both are on the board"
        assert [a.ticket for a in screen.announcements] == ["A003"] and screen.late_calls == 1


def test_after_a_restore_with_lower_seqs_the_next_call_is_still_spoken(queue_server_factory, hospital_file):
    server = queue_server_factory(hospital=hospital_file, site="restore")
    tickets = walk_ins(server, 4)
    server.stop()
    backup = server.data_dir / "backup"
    backup.mkdir()
    for part in server.data_dir.glob("queue.sqlite3*"):
        shutil.copy2(part, backup / part.name)
    server.start()
    speaker = FakeSpeaker()
    # A reorder window of an hour: only the new epoch can make this screen take the lower seq.
    screen = CallScreen(server.broker_url, "restore", ["r1"], speaker=speaker, repeats=1, reorder_window=3600).start()
    try:
        with server.client("admin") as admin:
            for _ in range(3):
                call = admin.post("/api/v1/rooms/r1/call-next", params={"confirm": "true"}).json()  # deliberate
                assert screen.wait_for_call(call_id=call["call_id"], timeout=10)
        assert screen.announcer.wait_for(3) and screen.view_model.ticket_text == tickets[2]
        before = screen.view_model.tiles[0]
        epoch_before, seq_before = screen.latest_state("r1").epoch, screen.latest_state("r1").seq

        server.stop()  # restore the backup taken before any call: r1's seq goes back
        for part in server.data_dir.glob("queue.sqlite3*"):
            part.unlink()
        for part in backup.iterdir():
            shutil.copy2(part, server.data_dir / part.name)
        server.start()
        assert screen.wait_until(lambda vm: vm.ticket_text == "—", 10), "the restored room (nobody called) is shown"
        restored = screen.latest_state("r1")
        assert restored.epoch not in (epoch_before, "0") and restored.seq < seq_before, "a new generation, seq back"
        assert before["ticket"] == tickets[2]
        with server.client("admin") as admin:
            call = admin.post("/api/v1/rooms/r1/call-next").json()
        assert call["ticket"]["number"] == tickets[0]
        assert screen.wait_for_call(call_id=call["call_id"], timeout=10) and screen.announcer.wait_for(4)
        assert screen.announcements[-1].ticket == tickets[0] and screen.view_model.ticket_text == tickets[0]
    finally:
        screen.stop()


def test_a_bogus_snapshot_with_a_huge_seq_is_ignored_and_the_room_keeps_calling(queue_server):
    walk_ins(queue_server, 2)
    screen = CallScreen(queue_server.broker_url, queue_server.site, ["r1"], speaker=FakeSpeaker(), repeats=1).start()
    intruder = PahoMessageBus(queue_server.broker_url)
    intruder.start()
    try:
        assert intruder.wait_connected(5)
        assert screen.wait_until(lambda vm: vm.room_title == "1 诊室", 10)
        real = screen.latest_state("r1")
        bogus = samples.room_state("r1", 10**12, "A999", site=queue_server.site).model_copy(update={"epoch": real.epoch})
        intruder.publish(topics.room_state(queue_server.site, "r1"), bogus).wait_for_publish(5)  # live, not retained
        with queue_server.client("admin") as admin:
            call = admin.post("/api/v1/rooms/r1/call-next").json()
        assert screen.wait_for_call(call_id=call["call_id"], timeout=10) and screen.announcer.wait_for(1)
        assert screen.view_model.ticket_text == call["ticket"]["number"] != "A999"
        assert screen.dropped >= 1
    finally:
        intruder.stop()
        screen.stop()


def test_a_removed_room_leaves_the_boards_and_the_broker_also_after_a_restart(queue_server_factory, hospital_file):
    server = queue_server_factory(hospital=hospital_file, site="rooms")
    hall = CallScreen(server.broker_url, "rooms", [], speaker=FakeSpeaker(), layout="hall").start()
    try:
        assert hall.wait_until(lambda vm: [t["room"] for t in vm.tiles] == ["r1", "r2", "r3", "r4", "r9"], 10)
        with server.client("admin") as admin:
            config = admin.get("/api/v1/admin/hospital").json()
            config["rooms"] = [r for r in config["rooms"] if r["id"] != "r9"]
            config["departments"] = [d for d in config["departments"] if d["id"] != "emergency"]
            for clinician in config["clinicians"]:
                clinician["rooms"] = [r for r in clinician["rooms"] if r != "r9"]
            assert admin.put("/api/v1/admin/hospital", json=config).status_code == 200
        assert hall.wait_until(lambda vm: [t["room"] for t in vm.tiles] == ["r1", "r2", "r3", "r4"], 10)
        assert "r9" not in retained_states(server.broker_url, "rooms")
        server.stop()
        server.hospital = None  # restart on the configuration the admin API saved
        server.start()
        assert sorted(retained_states(server.broker_url, "rooms")) == ["r1", "r2", "r3", "r4"]
    finally:
        hall.stop()


def test_a_retained_snapshot_of_a_room_the_hospital_does_not_have_is_cleared_when_the_server_connects(
        queue_server_factory, mosquitto, bus, hospital_file):
    send(bus, topics.room_state("stale", "r77"), samples.room_state("r77", 3, "A003", site="stale"), retain=True)
    assert "r77" in retained_states(mosquitto.url, "stale")
    queue_server_factory(hospital=hospital_file, site="stale")
    deadline = time.monotonic() + 5
    while "r77" in retained_states(mosquitto.url, "stale", wait=0.3):
        assert time.monotonic() < deadline, "the server clears what it does not own"


def test_a_hall_board_draws_and_announces_only_its_configured_rooms(mosquitto, bus):
    with running(mosquitto.url, "only", ["r1", "r2"], layout="hall", repeats=1) as hall:
        for room, ticket in (("r77", "A077"), ("r2", "A002")):
            send(bus, topics.room_state("only", room), samples.room_state(room, 1, ticket, site="only"), retain=True)
            send(bus, topics.calls("only"), samples.call_event(room, 1, ticket, site="only"))
        assert hall.wait_for_call(ticket="A002") and hall.announcer.wait_for(1)
        assert [t["room"] for t in hall.view_model.tiles] == ["r1", "r2"]
        assert [a.ticket for a in hall.announcements] == ["A002"]


def test_a_payload_without_its_version_is_dropped(mosquitto, bus):
    with running(mosquitto.url, "unversioned", ["r1"]) as screen:
        good = samples.room_state("r1", 1, "A001", site="unversioned")
        raw = json.loads(encode_payload(good.model_copy(update={"seq": 2, "current": None})))
        del raw["v"]
        send(bus, topics.room_state("unversioned", "r1"), json.dumps(raw))
        send(bus, topics.room_state("unversioned", "r1"), good.model_copy(update={"seq": 3}))
        assert screen.wait_until(lambda vm: vm.ticket_text == "A001", 5)
        assert screen.dropped == 1
        with pytest.raises(ProtocolError, match="version"):
            decode_payload(RoomState, json.dumps(raw))


def test_monitoring_sees_every_announced_call_and_a_running_count(mosquitto, bus):
    statuses: queue.Queue[DeviceStatus] = queue.Queue()
    bus.subscribe_model(topics.device("count", "hall-count", "status"), DeviceStatus, lambda t, m, r: statuses.put(m))
    with running(mosquitto.url, "count", [], layout="hall", repeats=1, device_id="hall-count") as hall:
        calls = [samples.call_event(f"r{i % 4 + 1}", 10 + i, f"A{i:03d}", site="count") for i in range(20)]
        for call in calls:
            bus.publish(topics.calls("count"), call)
        assert hall.announcer.wait_for(20, timeout=30)
        deadline = time.monotonic() + 5
        last = None
        while last is None or last.details.get("announced_count") != 20:
            last = statuses.get(timeout=max(0.1, deadline - time.monotonic()))
        assert last.details["last_call_id"] == calls[-1].id


def test_a_screen_whose_clock_is_an_hour_off_still_speaks_fresh_calls(mosquitto, bus):
    """A Pi has no clock of its own: judged by the server's clock (from live snapshots), calls stay timely."""
    behind = timedelta(hours=1)  # the server's clock is an hour behind this screen's
    with running(mosquitto.url, "skew", ["r1"], repeats=1) as screen:
        for seq in (1, 2, 3):
            state = samples.room_state("r1", seq, f"A00{seq}", site="skew")
            send(bus, topics.room_state("skew", "r1"), state.model_copy(update={"ts": state.ts - behind}), retain=True)
        assert screen.wait_until(lambda vm: vm.ticket_text == "A003", 5)
        call = samples.call_event("r1", 3, "A003", site="skew")
        send(bus, topics.calls("skew"), call.model_copy(update={"ts": call.ts - behind}))
        assert screen.announcer.wait_for(1) and screen.late_calls == 0
        assert abs(screen.skew.seconds - 3600) < 5
