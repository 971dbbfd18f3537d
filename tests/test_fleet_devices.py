"""The fleet page tells the truth about real device processes: two kiosks, a call screen, a registered button box.

Kiosk A has an ESC/POS printer that answers real-time status (python-escpos ``Dummy`` with
status replies, ``--printer dummy-status:FILE``), a report printer on a real private cupsd
and a speaker whose ALSA device does not exist; kiosk B a printer that cannot report
anything (a file). The call screen is a real ``clinicflow display`` process speaking
through espeak-ng into an ``aplay`` stand-in that keeps each WAV; the button box is in
``devices.json`` and never connects (tests/fixtures_fleet.py). The queue server itself is
restarted once: the page still shows the alert history and what each device accepted.
"""
from __future__ import annotations

import json
import time
import wave
from array import array
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fixtures_fleet import Fleet, until as _until

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_the_fleet_reports_what_was_checked_and_only_that(fleet, browser, artifacts_dir):
    cups = fleet.cups
    fleet.start_kiosk("kiosk-a", "--printer", f"dummy-status:{fleet.printer_state}", "--printer-profile", "cn-58",
                      "--report-printer", f"cups:{cups.printer}", "--speaker", "espeak", "--audio-device", "hw:9,0")
    fleet.start_kiosk("kiosk-b", "--printer", f"dummy-file:{fleet.tmp / 'receipts.bin'}", "--report-printer", "none",
                      "--speaker", "none")
    heard = fleet.tmp / "heard"
    fleet.start_display("door-r1", "--speaker", "espeak", "--speech-cache", str(fleet.tmp / "speech"),
                        path=_recording_aplay(fleet.tmp / "bin", heard))

    # The button box was provisioned but never came up: it is listed, and says so.
    box = fleet.entry("box-r1")
    assert box["state"] == "never connected" and box["registered"] and box["last_seen"] is None
    assert box["name"] == "Room 1 desk buttons" and "never connected" in box["problems"][0]

    # Kiosk A: the ESC/POS printer answered "paper near its end"; CUPS idle; the ALSA device does not exist.
    a = fleet.wait("kiosk-a", lambda d: d["online"] and d["version"] and d["speech"] is not None)
    assert a["printer_paper"] == "low" and "printer paper low" in a["problems"]
    assert a["report_printer"] == "idle" and a["report_printer_ok"] is True
    assert a["speech"] == "failing" and "no sound output hw:9,0" in a["details"]["speech_output_detail"]
    assert a["free_disk_mb"] > 0  # the Pi's own health travels in the status (disk; SD, temp where the machine has them)
    assert {"free_disk", "filesystem_errors", "cpu_temperature", "under_voltage"} <= set(a["checks"]) | set(a["unknown"])
    assert "test_announcement" not in a["commands"] and {"self_test", "screenshot", "reboot"} <= set(a["commands"])

    # Kiosk B's printer is a file: nobody can know its paper. Not "ok": unknown. No speaker: no speech row.
    b = fleet.wait("kiosk-b", lambda d: d["online"] and d["version"])
    assert b["printer_paper"] == "unknown" and "ticket_printer" in b["unknown"] and b["speech"] is None
    assert b["report_printer"] is None

    # The technician opens the printer's cover and stops the CUPS queue; the remote self-test asks them again.
    fleet.printer_state.write_text("paper=ok cover=open\n")
    conn = cups.connection()
    conn.disablePrinter(cups.printer, reason="jammed")
    answer = fleet.command("kiosk-a", "self_test")
    assert answer["status"] == "error" and "ticket_printer" in answer["error"] and "report_printer" in answer["error"]
    assert answer["data"]["details"]["ticket_printer_detail"] == "cover open"
    a = fleet.entry("kiosk-a")
    assert "ticket printer: cover open" in a["problems"] and a["report_printer"] == "stopped"
    fleet.printer_state.write_text("paper=ok\n")
    conn.enablePrinter(cups.printer)
    answer = fleet.command("kiosk-a", "self_test")
    assert "ticket_printer" not in answer["data"]["checks"] or answer["data"]["checks"]["ticket_printer"] is True
    assert answer["data"]["checks"]["report_printer"] is True

    # A test announcement is refused before it reaches a kiosk; the call screen answers it.
    r = fleet.admin.post("/api/v1/fleet/kiosk-a/commands", json={"command": "test_announcement"})
    assert r.status_code == 422 and "does not answer 'test_announcement'" in r.json()["detail"]
    screen = fleet.wait("door-r1", lambda d: d["online"] and d["version"])
    assert "test_announcement" in screen["commands"] and screen["details"]["volume"] == 100
    loud = _loudness(fleet, "door-r1", heard)

    # The technician asks for the kiosk's screen: a PNG of its window comes back and the server keeps it.
    shot = fleet.command("kiosk-a", "screenshot")
    assert shot["status"] == "ok" and shot["data"]["size"] == [800, 500] and "png_base64" not in shot["data"]
    png = fleet.admin.get("/api/v1/fleet/kiosk-a/screenshot.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    (artifacts_dir / "fleet-kiosk-screenshot.png").write_bytes(png.content)
    # And the call screen's.
    shot = fleet.command("door-r1", "screenshot")
    assert shot["status"] == "ok" and shot["data"]["size"] == [640, 400] and "png_base64" not in shot["data"]
    png = fleet.admin.get("/api/v1/fleet/door-r1/screenshot.png").content
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (int.from_bytes(png[16:20]), int.from_bytes(png[20:24])) == (640, 400)

    # The technician turns the call screen down.
    pushed = fleet.admin.put("/api/v1/fleet/door-r1/config", json={"volume": 25})
    assert pushed.json()["response"]["status"] == "ok"
    accepted = pushed.json()["revision"]

    # The call screen loses power: an alert. Meanwhile the broker restarts and forgets what it retained for
    # the screen. It comes back: the alert stays in the history, resolved; the screen runs the volume it
    # accepted, kept on its own disk (nobody gave it back).
    fleet.kill("door-r1")
    _until(lambda: fleet.admin.get("/api/v1/fleet").json(),
           lambda f: any(al["device"] == "door-r1" and not al["resolved"] for al in f["alerts"]))
    fleet.publish("door-r1", "config", b"")
    fleet.start_again("door-r1")
    back = fleet.wait("door-r1", lambda d: d["online"] and d["uptime_s"] is not None and d["uptime_s"] < 30)
    assert back["problems"] == [] and back["state"] == "ok"  # its first status after connecting is not a false alarm
    assert 0.2 < _loudness(fleet, "door-r1", heard) / loud < 0.3
    assert fleet.retained_config("door-r1", timeout=0.5) is None
    alerts = _until(lambda: fleet.admin.get("/api/v1/fleet").json(),
                    lambda f: any(al["device"] == "door-r1" and al["resolved"] for al in f["alerts"]))["alerts"]
    mine = [al for al in alerts if al["device"] == "door-r1"]
    assert len(mine) == 1 and mine[0]["kind"] == "device_offline" and mine[0]["resolved_at"] >= mine[0]["ts"]

    # The queue server restarts: the page shows the same history, and still knows what the screen accepted.
    fleet.restart_server()
    assert [al for al in fleet.admin.get("/api/v1/fleet").json()["alerts"] if al["device"] == "door-r1"] == mine
    assert fleet.entry("door-r1")["accepted_config"] == {"revision": accepted, "settings": {"volume": 25}}
    # A bad push straight on the broker is refused by the screen; the server puts back the accepted one it kept.
    fleet.publish("door-r1", "config", json.dumps({"announce_repeat": 9, "revision": "bad-1"}).encode())
    _until(lambda: fleet.retained_config("door-r1") or {}, lambda c: c.get("revision") == accepted)

    _check_page_in_chromium(fleet, browser, artifacts_dir)


def _recording_aplay(folder: Path, heard: Path) -> Path:
    """A folder with an ``aplay`` that keeps each WAV it is handed in ``heard`` (the ALSA probe's silence
    on stdin is swallowed): there is no sound card here to listen with."""
    folder.mkdir()
    heard.mkdir()
    (folder / "aplay").write_text('#!/bin/sh\nfor last; do :; done\n'
                                  'if [ "$last" = - ]; then cat >/dev/null; exit 0; fi\n'
                                  f'cp "$last" "{heard}/$(date +%s%N).wav"\n')
    (folder / "aplay").chmod(0o755)
    return folder


def _loudness(fleet: Fleet, device: str, heard: Path) -> int:
    """A test announcement's last phrase (the English sentence, after the chime) at its loudest sample."""
    before = set(heard.iterdir())
    assert fleet.command(device, "test_announcement")["status"] == "ok"
    with wave.open(str(max(set(heard.iterdir()) - before))) as w:
        return max(abs(s) for s in array("h", w.readframes(w.getnframes())))


def _check_page_in_chromium(fleet: Fleet, browser: Browser, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    # The session's one Chromium (tests/fixtures_browser.py): a second sync Playwright in the same
    # process cannot start while that one runs. A technician's laptop set to UTC: the page still
    # speaks the hospital's time (Asia/Shanghai).
    context = browser.new_context(viewport={"width": 1500, "height": 900}, timezone_id="UTC")
    try:
        page = context.new_page()
        page.goto(f"{fleet.server.base_url}/fleet#token={fleet.server.tokens['admin']}&lang=en")
        expect(page.locator("tr[data-device=box-r1] .state")).to_have_text("never connected")
        expect(page.locator("tr[data-device=kiosk-b] .paper")).to_contain_text("unknown · this printer cannot report")
        expect(page.locator("tr[data-device=kiosk-a] .speech")).to_have_text("failing")
        expect(page.locator("#alerts li.resolved[data-device=door-r1]")).to_contain_text("resolved")
        # Only the commands each device answers.
        expect(page.locator("tr[data-device=kiosk-a] button[data-command=test_announcement]")).to_have_count(0)
        expect(page.locator("tr[data-device=door-r1] button[data-command=test_announcement]")).to_have_count(1)
        expect(page.locator("tr[data-device=box-r1] button")).to_have_count(0)
        expect(page.locator("#updated")).to_contain_text("Asia/Shanghai")
        alert_text = page.locator("#alerts li.resolved[data-device=door-r1]").inner_text()
        shanghai_hour = time.strftime("%H", time.gmtime(time.time() + 8 * 3600))
        assert f" {shanghai_hour}:" in alert_text, alert_text
        page.screenshot(path=str(artifacts_dir / "fleet-truth.png"), full_page=True)
        page.locator("tr[data-device=kiosk-a] button[data-command=screenshot]").click()
        expect(page.locator("#shot")).to_be_visible(timeout=15000)
        page.wait_for_function("document.getElementById('shot-img').naturalWidth > 0")
        page.screenshot(path=str(artifacts_dir / "fleet-truth-screenshot.png"), full_page=True)
    finally:
        context.close()
