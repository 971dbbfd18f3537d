"""The server's fleet registry, fed by real device agents over real Mosquitto."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clinicflow.agent import DeviceAgent
from clinicflow.mqtt import PahoMessageBus
from protocol import Alert, topics
from queueserver.fleet import FleetRegistry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def site() -> str:
    return f"fleet{uuid.uuid4().hex[:6]}"


@pytest.fixture
def server_bus(mosquitto):
    bus = PahoMessageBus(mosquitto.url)
    yield bus
    bus.stop()


def _alerts(bus: PahoMessageBus, site: str) -> "queue.Queue[Alert]":
    got: queue.Queue[Alert] = queue.Queue()
    bus.subscribe_model(topics.alerts(site), Alert, lambda t, m, r: got.put(m))
    return got


def _wait_for(registry: FleetRegistry, device: str, predicate, changes: "queue.Queue[None]", timeout: float = 5):
    """Wait until the registry's view of ``device`` satisfies ``predicate`` (woken by each status/availability)."""
    deadline = datetime.now() + timedelta(seconds=timeout)
    while True:
        found = registry.device(device)
        if found and predicate(found):
            return found
        remaining = (deadline - datetime.now()).total_seconds()
        if remaining <= 0:
            raise AssertionError(f"{device} never matched; last seen as {found}")
        try:
            changes.get(timeout=remaining)
        except queue.Empty:
            pass


def _changes(bus: PahoMessageBus, site: str) -> "queue.Queue[None]":
    """A queue that gets an item after the registry has handled each device message (subscribed after it)."""
    changes: queue.Queue[None] = queue.Queue()
    bus.subscribe(f"{topics.ROOT}/{site}/devices/#", lambda t, p, r: changes.put(None))
    return changes


def _agent(mosquitto, site, device, role, **kwargs) -> tuple[DeviceAgent, PahoMessageBus]:
    bus = PahoMessageBus(mosquitto.url, availability_topic=topics.device(site, device, "availability"))
    return DeviceAgent(bus, site=site, device_id=device, role=role, status_interval=60, reboot=lambda: None, **kwargs), bus


def test_registry_shows_each_devices_health(mosquitto, server_bus, site, tmp_path):
    registry = FleetRegistry(site, check_interval=0)
    registry.attach(server_bus)
    changes = _changes(server_bus, site)
    server_bus.start()
    assert server_bus.wait_connected(5)

    hwmon = tmp_path / "hwmon" / "hwmon0"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("rpi_volt\n")
    (hwmon / "in0_lcrit_alarm").write_text("1\n")
    kiosk, kiosk_bus = _agent(mosquitto, site, "kiosk-1", "kiosk", version="1.4.0", hwmon_root=tmp_path / "hwmon")
    kiosk.add_detail("printer_paper", lambda: "low")
    hall, hall_bus = _agent(mosquitto, site, "hall-2", "hall_board", settings={"rooms": ["r1"]})
    speech = {"ok": True}
    hall.add_check("speech", lambda: speech["ok"])
    hall.add_detail("last_render", lambda: 1795426200.0)  # time.time() of the last frame, as the call screen sends it
    for agent, bus in ((kiosk, kiosk_bus), (hall, hall_bus)):
        agent.start()
        bus.start()
    try:
        k = _wait_for(registry, "kiosk-1", lambda d: d["online"] and d["version"] == "1.4.0", changes)
        assert k["printer_paper"] == "low" and k["under_voltage"] is True
        assert "under-voltage: check the power supply" in k["problems"] and "printer paper low" in k["problems"]
        assert k["state"] == "warning"

        h = _wait_for(registry, "hall-2", lambda d: d["online"] and d["speech_ok"] is True, changes)
        assert h["state"] == "ok" and h["problems"] == [] and h["last_refresh"] == "2026-11-23T09:30:00+00:00"

        speech["ok"] = False
        hall.publish_status_now()
        h = _wait_for(registry, "hall-2", lambda d: d["speech_ok"] is False, changes)
        assert "speech not working" in h["problems"]

        hall_bus.stop()  # a clean stop says offline too
        h = _wait_for(registry, "hall-2", lambda d: d["online"] is False, changes)
        assert h["state"] == "offline" and h["problems"][0].startswith("offline since")
    finally:
        for agent, bus in ((kiosk, kiosk_bus), (hall, hall_bus)):
            agent.stop()
            bus.stop()
        registry.stop()


DEVICE_SCRIPT = textwrap.dedent("""
    import sys, threading
    from clinicflow.agent import DeviceAgent
    from clinicflow.mqtt import PahoMessageBus
    from protocol import topics
    url, site, device = sys.argv[1:4]
    bus = PahoMessageBus(url, availability_topic=topics.device(site, device, "availability"))
    agent = DeviceAgent(bus, site=site, device_id=device, role="door_screen", settings={"rooms": ["r3"]})
    agent.start(); bus.start()
    print("up" if bus.wait_connected(10) else "down", flush=True)
    threading.Event().wait()
""")


def _device_process(mosquitto, site: str, device: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DEVICE_SCRIPT, mosquitto.url, site, device], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


def test_a_device_that_loses_power_during_opening_hours_raises_an_alert(mosquitto, server_bus, site):
    registry = FleetRegistry(site, offline_grace=0, check_interval=0)
    registry.attach(server_bus)
    alerts = _alerts(server_bus, site)
    changes = _changes(server_bus, site)
    server_bus.start()
    assert server_bus.wait_connected(5)
    proc = _device_process(mosquitto, site, "door-r3")
    try:
        _wait_for(registry, "door-r3", lambda d: d["online"] and d["role"] == "door_screen", changes)
        os.kill(proc.pid, signal.SIGKILL)  # the plug is pulled: only the broker's last will speaks for it
        proc.wait(5)
        alert = alerts.get(timeout=10)
        assert alert.kind == "device_offline" and alert.device == "door-r3"
        assert "Door screen door-r3 went offline" in alert.message
        assert registry.device("door-r3")["online"] is False
        assert registry.alerts()[0]["device"] == "door-r3"
    finally:
        if proc.poll() is None:
            proc.kill()
        registry.stop()
        server_bus.publish(topics.device(site, "door-r3", "availability"), b"", retain=True).wait_for_publish(5)
        server_bus.publish(topics.device(site, "door-r3", "status"), b"", retain=True).wait_for_publish(5)


def test_offline_alerts_wait_for_the_grace_and_only_come_while_the_site_is_open(server_bus, site):
    now = {"t": datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)}  # 10:00 in Shanghai
    open_hours = {"open": True}
    registry = FleetRegistry(site, offline_grace=60, check_interval=0, clock=lambda: now["t"],
                             is_open=lambda t: open_hours["open"])
    availability = topics.device(site, "hall-9", "availability")
    registry._on_availability(availability, b"online", False)
    registry._on_availability(availability, b"offline", False)
    assert registry.check_offline() == []  # a reboot takes less than the grace
    now["t"] += timedelta(seconds=30)
    registry._on_availability(availability, b"online", False)  # ...and it came back
    registry._on_availability(availability, b"offline", False)
    now["t"] += timedelta(seconds=59)
    assert registry.check_offline() == []
    now["t"] += timedelta(seconds=2)
    raised = registry.check_offline()
    assert [a.device for a in raised] == ["hall-9"]
    assert registry.check_offline() == []  # once per outage

    # At night nobody is paged; the page still shows it offline.
    registry._on_availability(topics.device(site, "kiosk-3", "availability"), b"offline", False)
    open_hours["open"] = False
    now["t"] += timedelta(hours=1)
    assert registry.check_offline() == []
    assert registry.device("kiosk-3")["state"] == "offline"


def test_an_outage_pages_once_across_server_processes_and_restarts(sqlite_store, site):
    from queueserver.fleet.history import FleetHistory

    now = {"t": datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)}

    def server() -> FleetRegistry:  # a server process on the site's database (an HTTP worker, a replica, a restart)
        return FleetRegistry(site, offline_grace=60, check_interval=0, clock=lambda: now["t"],
                             history=FleetHistory(sqlite_store, site))

    availability = topics.device(site, "hall-9", "availability")
    first, second = server(), server()
    for registry in (first, second):
        registry._on_availability(availability, b"online", False)
        registry._on_availability(availability, b"offline", False)
    now["t"] += timedelta(seconds=61)
    assert [a.device for a in first.check_offline()] == ["hall-9"]
    assert second.check_offline() == []  # the other process finds it stored: nobody is paged twice
    assert [a["id"] for a in second.alerts()] == [a["id"] for a in first.alerts()]

    restarted = server()  # still offline after a restart: the same alert, still open, not a new one
    restarted._on_availability(availability, b"offline", True)
    now["t"] += timedelta(seconds=61)
    assert restarted.check_offline() == [] and [a["resolved"] for a in restarted.alerts()] == [False]
    now["t"] += timedelta(seconds=5)
    restarted._on_availability(availability, b"online", False)
    assert [(a["id"], a["resolved_at"]) for a in server().alerts()] == [(first.alerts()[0]["id"], now["t"].isoformat())]


def test_bad_fleet_messages_are_dropped(server_bus, site, caplog):
    registry = FleetRegistry(site, check_interval=0)
    registry._on_status(topics.device(site, "k1", "status"), b'{"v": 1, "device": "k1"', False)
    registry._on_status(topics.device(site, "k1", "status"),
                        b'{"v": 1, "ts": "2026-11-23T09:00:00Z", "device": "k2", "role": "kiosk", "version": "1", '
                        b'"uptime_s": 1}', False)
    registry._on_availability(topics.device(site, "k1", "availability"), b"maybe", False)
    assert registry.devices() == []
    assert sum("dropped" in r.message for r in caplog.records) == 3


def test_a_printer_running_out_of_paper_raises_an_alert(mosquitto, server_bus, site):
    registry = FleetRegistry(site, check_interval=0)
    registry.attach(server_bus)
    alerts = _alerts(server_bus, site)
    changes = _changes(server_bus, site)
    server_bus.start()
    assert server_bus.wait_connected(5)
    paper = {"state": "ok"}
    kiosk, bus = _agent(mosquitto, site, "kiosk-4", "kiosk")
    kiosk.add_detail("printer_paper", lambda: paper["state"])
    kiosk.start()
    bus.start()
    try:
        _wait_for(registry, "kiosk-4", lambda d: d["printer_paper"] == "ok", changes)
        paper["state"] = "out"
        kiosk.publish_status_now()
        alert = alerts.get(timeout=5)
        assert alert.kind == "paper_out" and alert.device == "kiosk-4" and "out of paper" in alert.message
    finally:
        kiosk.stop()
        bus.stop()
        registry.stop()


def _status(site: str, device: str, role: str = "kiosk", **details) -> tuple[str, bytes]:
    body = {"v": 1, "ts": "2026-11-23T09:00:00Z", "device": device, "role": role, "version": "1.0", "uptime_s": 5,
            "checks": {}, "details": details}
    import json

    return topics.device(site, device, "status"), json.dumps(body).encode()


def test_registered_devices_that_never_connected_are_listed_and_say_so(site):
    from config.registry import DeviceRecord

    records = [DeviceRecord(id="box-1", role="button_box", site=site, name="Room 1 desk", token_sha256="0" * 64),
               DeviceRecord(id="elsewhere", role="kiosk", site="othersite", token_sha256="1" * 64)]
    registry = FleetRegistry(site, check_interval=0, known=lambda: records)
    registry._on_status(*_status(site, "kiosk-1"), False)
    listed = {d["device"]: d for d in registry.devices()}
    assert set(listed) == {"box-1", "kiosk-1"}  # another site's device is not ours
    assert listed["box-1"]["state"] == "never connected" and listed["box-1"]["name"] == "Room 1 desk"
    assert listed["kiosk-1"]["printer_paper"] == "unknown"  # a kiosk that says nothing of its printer: unknown, not ok
    registry._on_availability(topics.device(site, "box-1", "availability"), b"online", False)
    assert registry.device("box-1")["state"] == "ok"


def test_a_paper_out_alert_is_kept_and_marked_resolved_when_paper_is_back(site):
    registry = FleetRegistry(site, check_interval=0)
    registry._on_status(*_status(site, "kiosk-2", ticket_printer="ok"), False)
    registry._on_status(*_status(site, "kiosk-2", ticket_printer="out"), False)
    assert [(a["kind"], a["resolved"]) for a in registry.alerts()] == [("paper_out", False)]
    registry._on_status(*_status(site, "kiosk-2", ticket_printer="ok"), False)
    (alert,) = registry.alerts()
    assert alert["resolved"] and alert["resolved_at"] is not None


def test_a_screenshot_that_is_not_a_png_is_dropped(site, caplog):
    import base64

    from protocol.payloads import DeviceResponse

    registry = FleetRegistry(site, check_interval=0)
    for data in (b"<html>", b"\x89PNG\r\n\x1a\nIHDR"):
        response = DeviceResponse(ts=datetime.now(timezone.utc), device="k", command="screenshot", transaction="t",
                                  status="ok", data={"png_base64": base64.b64encode(data).decode()})
        registry._on_response(topics.device(site, "k", "response"), response.model_dump_json().encode(), False)
    assert registry.screenshot("k") == b"\x89PNG\r\n\x1a\nIHDR"
    assert any("not a PNG" in r.message for r in caplog.records)
