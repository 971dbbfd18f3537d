"""The device agent as a technician meets it: status, live config pushes and commands, over real Mosquitto."""
from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clinicflow.agent import DeviceAgent
from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from protocol.payloads import DeviceResponse, DeviceStatus

SITE = "agenttest"


@dataclass
class Technician:
    """A plain MQTT client on the technician's side: pushes configs, sends commands, reads answers."""

    bus: PahoMessageBus
    device: str
    responses: "queue.Queue[DeviceResponse]" = field(default_factory=queue.Queue)
    statuses: "queue.Queue[DeviceStatus]" = field(default_factory=queue.Queue)

    def push_config(self, data: dict[str, Any] | bytes) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.bus.publish(topics.device(SITE, self.device, "config"), raw, retain=True).wait_for_publish(5)

    def command(self, name: str, transaction: str, **args: Any) -> None:
        raw = json.dumps({"v": 1, "command": name, "transaction": transaction, "args": args}).encode()
        self.bus.publish(topics.device(SITE, self.device, "command"), raw).wait_for_publish(5)

    def response(self, transaction: str | None = None, timeout: float = 5) -> DeviceResponse:
        while True:
            answer = self.responses.get(timeout=timeout)
            if transaction is None or answer.transaction == transaction:
                return answer

    def status_where(self, predicate, timeout: float = 5) -> DeviceStatus:
        while True:
            status = self.statuses.get(timeout=timeout)
            if predicate(status):
                return status


@pytest.fixture
def device_id() -> str:
    return f"hall-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def technician(mosquitto, device_id) -> Iterator[Technician]:
    bus = PahoMessageBus(mosquitto.url)
    tech = Technician(bus, device_id)
    bus.subscribe_model(topics.device(SITE, device_id, "response"), DeviceResponse, lambda t, m, r: tech.responses.put(m))
    bus.subscribe_model(topics.device(SITE, device_id, "status"), DeviceStatus, lambda t, m, r: tech.statuses.put(m))
    bus.start()
    assert bus.wait_connected(5)
    yield tech
    # Clear what we retained so the session broker stays clean for others.
    for leaf in ("config", "status", "availability"):
        bus.publish(topics.device(SITE, device_id, leaf), b"", retain=True).wait_for_publish(5)
    bus.stop()


@pytest.fixture
def hall_board(mosquitto, device_id) -> Iterator[tuple[DeviceAgent, PahoMessageBus]]:
    bus = PahoMessageBus(mosquitto.url, availability_topic=topics.device(SITE, device_id, "availability"))
    agent = DeviceAgent(bus, site=SITE, device_id=device_id, role="hall_board", version="9.9.9",
                        status_interval=60, settings={"rooms": ["r1", "r2"], "languages": ["zh", "en"]},
                        reboot=lambda: None)
    yield agent, bus
    agent.stop()
    bus.stop()


def test_status_is_retained_with_checks_and_details_and_republished_on_demand(technician, hall_board, mosquitto):
    agent, bus = hall_board
    paper = {"ok": True}
    agent.add_check("printer_paper", lambda: paper["ok"])
    agent.add_detail("last_call_id", lambda: "c-41")
    agent.start()
    bus.start()
    first = technician.status_where(lambda s: True)
    assert first.version == "9.9.9" and first.role == "hall_board"
    assert first.checks["printer_paper"] is True and first.details["last_call_id"] == "c-41"

    paper["ok"] = False
    agent.publish_status_now()
    assert technician.status_where(lambda s: s.checks["printer_paper"] is False).device == technician.device

    # A fleet page that connects later still sees the last status: it is retained.
    late: queue.Queue[DeviceStatus] = queue.Queue()
    with PahoMessageBus(mosquitto.url) as observer:
        observer.subscribe_model(topics.device(SITE, technician.device, "status"), DeviceStatus,
                                 lambda t, m, r: late.put(m) if r else None)
        assert late.get(timeout=5).checks["printer_paper"] is False


def test_config_push_changes_a_hall_boards_rooms_live(technician, hall_board):
    agent, bus = hall_board
    shown: queue.Queue[list[str]] = queue.Queue()
    agent.on_config(lambda settings: shown.put(settings["rooms"]))
    agent.start()
    bus.start()
    assert bus.wait_connected(5)

    technician.push_config({"revision": 7, "rooms": ["r3", "r4", "r9"], "volume": 40})
    assert shown.get(timeout=5) == ["r3", "r4", "r9"]
    answer = technician.response("7")
    assert answer.status == "ok" and answer.command == "config"
    assert agent.settings["rooms"] == ["r3", "r4", "r9"] and agent.settings["volume"] == 40
    # Keys not pushed keep the file's values.
    assert agent.settings["languages"] == ["zh", "en"]
    status = technician.status_where(lambda s: s.details.get("config_revision") == 7)
    assert status.checks["config"] is True


def test_bad_config_push_is_refused_the_old_one_kept_and_the_refusal_reported(technician, hall_board):
    agent, bus = hall_board
    applied: list[dict] = []
    agent.on_config(applied.append)
    agent.start()
    bus.start()
    assert bus.wait_connected(5)

    technician.push_config({"revision": 8, "rooms": ["r3"], "volume": 150})
    answer = technician.response("8")
    assert answer.status == "error"
    assert "settings.volume" in answer.error and "0 (silent) to 100" in answer.error
    assert answer.data["kept"]["rooms"] == ["r1", "r2"]
    assert applied == [] and agent.settings["rooms"] == ["r1", "r2"]
    status = technician.status_where(lambda s: s.checks.get("config") is False)
    assert "settings.volume" in status.details["config_error"]

    # Not JSON at all, and a hall board with no rooms: both refused, the screen keeps going.
    technician.push_config(b"{rooms: r3")
    assert "not JSON" in technician.response().error
    technician.push_config({"revision": 9, "rooms": []})
    assert "at least one room" in technician.response("9").error
    assert applied == []

    # The next good push is accepted and clears the fault.
    technician.push_config({"revision": 10, "rooms": ["r4"]})
    assert technician.response("10").status == "ok"
    assert applied[-1]["rooms"] == ["r4"]
    assert technician.status_where(lambda s: s.checks.get("config") is True).details["config_error"] is None


def test_a_callback_that_refuses_rolls_back_the_ones_already_applied(technician, hall_board):
    agent, bus = hall_board
    screen_rooms: list[list[str]] = []
    agent.on_config(lambda s: screen_rooms.append(s["rooms"]))

    def speaker(settings: dict) -> None:
        if "yue" in settings["languages"]:
            raise ValueError("no Cantonese voice installed on this screen")

    agent.on_config(speaker)
    agent.start()
    bus.start()
    assert bus.wait_connected(5)
    technician.push_config({"revision": 3, "rooms": ["r9"], "languages": ["yue"]})
    answer = technician.response("3")
    assert answer.status == "error" and "Cantonese" in answer.error
    assert screen_rooms == [["r9"], ["r1", "r2"]]  # applied, then given the old rooms back
    assert agent.settings["languages"] == ["zh", "en"]


def test_commands_are_answered_on_the_response_topic_with_their_transaction(technician, hall_board):
    agent, bus = hall_board
    speech_ok = {"ok": True}
    agent.add_check("speech", lambda: speech_ok["ok"])
    announced: list[str] = []
    agent.on_command("test_announcement", lambda args: announced.append(args.get("text", "")) or {"spoken": True})
    agent.start()
    bus.start()
    technician.status_where(lambda s: True)  # its first status follows its subscriptions: it listens now

    technician.command("self_test", "t1")
    ok = technician.response("t1")
    assert ok.status == "ok" and ok.data["checks"]["speech"] is True

    speech_ok["ok"] = False
    technician.command("self_test", "t2")
    failed = technician.response("t2")
    assert failed.status == "error" and "speech" in failed.error and failed.data["checks"]["speech"] is False

    technician.command("test_announcement", "t3", text="测试")
    assert technician.response("t3").data == {"spoken": True} and announced == ["测试"]

    technician.command("format_disk", "t4")
    unknown = technician.response("t4")
    assert unknown.status == "error" and "unknown command" in unknown.error and "reboot" in unknown.error

    # A malformed command that still names its transaction gets an answer; the agent keeps working.
    bus_raw = technician.bus
    bus_raw.publish(topics.device(SITE, technician.device, "command"),
                    b'{"v": 1, "command": "reload", "transaction": "t5", "extra": 1}').wait_for_publish(5)
    assert "malformed command" in technician.response("t5").error
    technician.command("reload", "t6")
    assert technician.response("t6").status == "ok"


def test_reboot_waits_while_a_patient_is_mid_session(technician, mosquitto, device_id):
    rebooted = threading.Event()
    in_session = threading.Event()
    in_session.set()
    polls = threading.Semaphore(0)

    def busy() -> bool:
        polls.release()
        return in_session.is_set()

    bus = PahoMessageBus(mosquitto.url, availability_topic=topics.device(SITE, device_id, "availability"))
    agent = DeviceAgent(bus, site=SITE, device_id=device_id, role="kiosk", status_interval=60,
                        reboot=rebooted.set, busy_poll=0.02)
    agent.set_busy(busy)
    agent.start()
    bus.start()
    try:
        technician.status_where(lambda s: True)
        technician.command("reboot", "r1")
        assert technician.status_where(lambda s: s.details.get("reboot_pending") is True)
        for _ in range(3):  # the agent asked, more than once, and the patient was still there
            assert polls.acquire(timeout=5)
        assert not rebooted.is_set()
        # Other commands are still answered while the reboot waits.
        technician.command("reboot", "r2")
        assert technician.response("r2").error == "a reboot is already pending"

        in_session.clear()  # the patient takes the ticket and walks away
        assert rebooted.wait(5)
        answer = technician.response("r1")
        assert answer.status == "ok" and answer.data["waited_for_session"] is True
    finally:
        agent.stop()
        bus.stop()


def test_a_retained_command_is_never_obeyed(technician, mosquitto, device_id):
    """Someone published a reboot with retain=True: a device that boots must not reboot again and again."""
    rebooted = threading.Event()
    technician.bus.publish(topics.device(SITE, device_id, "command"),
                           json.dumps({"v": 1, "command": "reboot", "transaction": "old"}).encode(),
                           retain=True).wait_for_publish(5)
    bus = PahoMessageBus(mosquitto.url)
    agent = DeviceAgent(bus, site=SITE, device_id=device_id, role="kiosk", status_interval=60, reboot=rebooted.set)
    agent.start()
    bus.start()
    try:
        technician.status_where(lambda s: True)
        technician.command("status", "s1")  # answered after the retained one was seen and ignored
        assert technician.response("s1").status == "ok"
        assert not rebooted.is_set()
    finally:
        technician.bus.publish(topics.device(SITE, device_id, "command"), b"", retain=True).wait_for_publish(5)
        agent.stop()
        bus.stop()


def test_device_connections_do_not_hold_small_messages_back(hall_board):
    """Answers and statuses are tiny packets: with Nagle on, each waited ~40 ms for the broker's delayed ACK."""
    import socket

    agent, bus = hall_board
    agent.start()
    bus.start()
    assert bus.wait_connected(5)
    assert bus._client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
