"""Booking screens in the real kiosk window (Kivy under Xvfb, child process ``kiosk.ui.driver --scenario booking``):
every step in zh/en, normal and large text, fits the 1280x800 glass with large targets; screenshots for review."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_server import QueueServerProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory, mosquitto, artifacts_dir):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: run the suite under xvfb-run")
    server = QueueServerProcess(tmp_path_factory.mktemp("booking-windows"), mosquitto.url).start()
    out = tmp_path_factory.mktemp("booking-shots")
    env = dict(os.environ, KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1",
               KIVY_HOME=str(tmp_path_factory.mktemp("kivy-home")), PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kiosk.ui.driver", "--server", server.base_url, "--token=" + server.tokens["kiosk"],
             "--out", str(out), "--report", str(out / "report.json"), "--scenario", "booking", "--size", "1280x800"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    dest = artifacts_dir / "kiosk-booking"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(out, dest)
    return json.loads((out / "report.json").read_text())


def test_every_booking_step_fits_with_large_targets_in_both_languages_and_sizes(run):
    assert run["errors"] == []
    shots = {s["name"]: s for s in run["shots"]}
    assert len(shots) == 4 * 8
    assert {s["name"]: s["problems"][:3] for s in run["shots"] if s["problems"]} == {}
    for combo in ("zh-normal", "zh-large", "en-normal", "en-large"):
        assert shots[f"booking-{combo}-1-departments"]["screen"] == "booking"
        assert shots[f"booking-{combo}-5-booked"]["error"] == ""
    assert shots["booking-en-normal-5-booked"]["prompt"].startswith("Booked: BK")
    assert shots["booking-zh-large-5-booked"]["prompt"].startswith("预约成功")
    assert "改期" in shots["booking-zh-normal-6-with-bookings"]["texts"]  # the booking with Change / Cancel
    assert any("Not ready yet" in t for t in shots["booking-en-large-8-reports-not-ready"]["texts"])
