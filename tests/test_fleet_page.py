"""A technician at the fleet page and API of a real queue server, with real device agents on real Mosquitto."""
from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator

import pytest

from clinicflow.agent import DeviceAgent
from clinicflow.mqtt import PahoMessageBus
from protocol import topics

@pytest.fixture
def fleet_server(queue_server_factory, monkeypatch):
    monkeypatch.setenv("CLINICFLOW_FLEET_OFFLINE_GRACE", "0")  # page the technician at once in this test
    return queue_server_factory()


class Device:
    """A hall board's agent, as the display app wires it."""

    def __init__(self, mosquitto, site: str) -> None:
        self.id = f"hall-{uuid.uuid4().hex[:6]}"
        self.bus = PahoMessageBus(mosquitto.url, availability_topic=topics.device(site, self.id, "availability"))
        self.agent = DeviceAgent(self.bus, site=site, device_id=self.id, role="hall_board", version="2.0.1",
                                 status_interval=60, settings={"rooms": ["r1", "r2"]}, reboot=lambda: None)
        self.rooms: queue.Queue[list[str]] = queue.Queue()
        self.agent.add_check("speech", lambda: True)

        def apply(settings: dict) -> None:
            if "yue" in settings["languages"]:
                raise ValueError("no Cantonese voice on this screen")
            self.rooms.put(settings["rooms"])

        self.agent.on_config(apply)
        self.site = site

    def start(self) -> "Device":
        self.agent.start()
        self.bus.start()
        assert self.bus.wait_connected(5)
        return self

    def stop(self) -> None:
        self.agent.stop()
        self.bus.stop()

    def forget(self, mosquitto) -> None:
        with PahoMessageBus(mosquitto.url) as cleaner:
            assert cleaner.wait_connected(5)
            for leaf in ("availability", "status", "config"):
                cleaner.publish(topics.device(self.site, self.id, leaf), b"", retain=True).wait_for_publish(5)


@pytest.fixture
def device(mosquitto, fleet_server) -> Iterator[Device]:
    dev = Device(mosquitto, fleet_server.site).start()
    yield dev
    dev.stop()
    dev.forget(mosquitto)


def _fleet_entry(admin, device_id: str) -> dict:
    for entry in admin.get("/api/v1/fleet").json()["devices"]:
        if entry["device"] == device_id:
            return entry
    raise AssertionError(f"{device_id} not in the fleet")


def _until_entry(admin, device_id: str, done, timeout: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
    """Poll the fleet list until ``done(entry)`` holds for the device (or the time is up: its last entry)."""
    deadline = time.monotonic() + timeout
    while True:
        entry = _fleet_entry(admin, device_id)
        if done(entry) or time.monotonic() >= deadline:
            return entry
        time.sleep(0.05)


def _until_reported(admin, device_id: str, timeout: float = 5.0) -> dict:
    """Poll the API until the server has heard from the device (its status crosses the broker asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        r = admin.get(f"/api/v1/fleet/{device_id}")
        if r.status_code == 200 and r.json()["online"] and r.json()["version"]:
            return r.json()
        assert time.monotonic() < deadline, f"{device_id} never reported: {r.text}"
        time.sleep(0.05)


def test_the_fleet_api_shows_devices_and_pushes_config_live(fleet_server, device):
    with fleet_server.client("admin") as admin, fleet_server.client("kiosk") as kiosk, fleet_server.client(None) as anon:
        entry = _until_reported(admin, device.id)
        assert entry["online"] is True and entry["version"] == "2.0.1" and entry["speech_ok"] is True
        assert kiosk.get("/api/v1/fleet").status_code == 403
        assert "admin token" in kiosk.get("/api/v1/fleet").json()["detail"]
        assert anon.get("/api/v1/fleet").status_code == 401

        r = admin.put(f"/api/v1/fleet/{device.id}/config", json={"rooms": ["r3", "r4"]})
        assert r.status_code == 200 and r.json()["response"]["status"] == "ok"
        assert device.rooms.get(timeout=5) == ["r3", "r4"]

        bad = admin.put(f"/api/v1/fleet/{device.id}/config", json={"rooms": ["r3"], "volume": 150})
        assert bad.status_code == 422 and "settings.volume" in bad.json()["detail"]

        refused = admin.put(f"/api/v1/fleet/{device.id}/config", json={"rooms": ["r3"], "languages": ["yue"]})
        assert refused.status_code == 200
        answer = refused.json()["response"]
        assert answer["status"] == "error" and "Cantonese" in answer["error"]
        assert device.agent.settings["rooms"] == ["r3", "r4"]  # the old config is kept
        # The refusal reaches the fleet in the device's next status, which crosses the broker after the answer.
        assert _until_entry(admin, device.id, lambda e: e["config_ok"] is not True)["config_ok"] is False

        ok = admin.post(f"/api/v1/fleet/{device.id}/commands", json={"command": "self_test"})
        assert ok.status_code == 200 and ok.json()["response"]["data"]["checks"]["speech"] is True
        assert admin.post("/api/v1/fleet/nope/commands", json={"command": "reboot"}).status_code == 404


def test_the_fleet_page_in_chromium_shows_health_and_offline_alerts(fleet_server, device, mosquitto, browser,
                                                                     artifacts_dir):
    from playwright.sync_api import expect

    with fleet_server.client("admin") as admin:
        _until_reported(admin, device.id)
    other = Device(mosquitto, fleet_server.site).start()
    try:
        with fleet_server.client("admin") as admin:
            _until_reported(admin, other.id)
        # The session's one Chromium (tests/fixtures_browser.py): a second sync Playwright cannot start beside it.
        context = browser.new_context(viewport={"width": 1400, "height": 800})
        try:
            page = context.new_page()
            page.goto(f"{fleet_server.base_url}/fleet#token={fleet_server.tokens['admin']}&lang=en")
            row = page.locator(f"tr[data-device='{device.id}']")
            expect(row.locator("td.state")).to_have_text("ok")
            expect(row.locator("td.version")).to_have_text("2.0.1")
            expect(row.locator("td.speech")).to_have_text("ok")

            row.locator("button[data-command='self_test']").click()
            expect(page.locator("#message")).to_have_text(f"Self-test → {device.id}: ok")

            other.stop()  # it goes offline while the site is open
            page.reload()  # the token stays in the session
            other_row = page.locator(f"tr[data-device='{other.id}']")
            expect(other_row.locator("td.state")).to_have_text("offline", timeout=10000)
            expect(page.locator("#alerts")).to_contain_text(f"{other.id} went offline")
            page.screenshot(path=str(artifacts_dir / "fleet-page.png"), full_page=True)
        finally:
            context.close()
    finally:
        other.stop()
        other.forget(mosquitto)
