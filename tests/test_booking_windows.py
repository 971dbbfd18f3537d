"""Booking screens in the real kiosk window (Kivy under Xvfb, child process ``kiosk.ui.driver --scenario booking``):
every step in zh/en, normal and large text, fits the 1280x800 glass with large targets; screenshots for review."""
from __future__ import annotations


import pytest

from tests.kiosk_driver import run_kiosk_driver



@pytest.fixture(scope="module")
def run(tmp_path_factory, mosquitto, artifacts_dir):
    return run_kiosk_driver(tmp_path_factory, mosquitto.url, artifacts_dir / "kiosk-booking", "booking-windows",
                            "--scenario", "booking", "--size", "1280x800")


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
