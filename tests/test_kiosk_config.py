"""``clinicflow kiosk`` on a provisioned device: its options come from the device file.

The systemd unit runs ``clinicflow kiosk`` with only ``CLINICFLOW_CONFIG`` set: the shipped
example must map to the printer, scanner, server, broker and timeouts a technician expects,
flags still win, and a bad file stops the kiosk with the loader's message (exit 2).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import load_config
from config.schema import PrinterSection
from kiosk.cli import make_ticket_printer, options_from_config, parse_args, printer_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config" / "examples"


def provisioned(tmp_path: Path, text: str | None = None) -> Path:
    """The shipped kiosk example, with its secrets in files under tmp_path (as `clinicflow provision` writes them)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "mqtt-password").write_text("pw-kiosk\n")
    (secrets / "api-token").write_text("kiosk-token-123\n")
    text = (text or (EXAMPLES / "kiosk.toml").read_text()).replace("/etc/clinicflow/secrets/", f"{secrets}/")
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def test_kiosk_example_maps_to_its_printer_scanner_server_and_timeouts(tmp_path):
    options = options_from_config(load_config(provisioned(tmp_path)))
    assert options == {
        "device_id": "kiosk-1", "site": "demo",
        "server": "http://127.0.0.1:8000", "token": "kiosk-token-123",
        "broker": "mqtts://kiosk-1:pw-kiosk@broker.hospital.local:8883", "ca_file": "/etc/clinicflow/ca.crt",
        "language": "zh", "idle_timeout": 60.0, "voice": "",
        # Epson TM-T20III on USB 04b8:0e28, 80 mm paper with a Chinese font.
        "printer": "usb:04b8:0e28", "printer_profile": "cn-80",
        "scanner": "keyboard", "card_reader": "none", "speaker": "none", "audio_device": None,
        # No terminal or report printer in the file: none (never a fake), and full screen.
        "terminal": "none", "report_printer": "none", "fullscreen": True,
    }


def test_a_guangdong_kiosk_reads_its_chinese_screens_in_cantonese(tmp_path):
    """``languages = ["zh", "en", "yue"]`` in the device file, or ``--voice zh=yue``: the kiosk keeps its
    Chinese screens and speaks them with the Cantonese voice (tests/test_kiosk_voice.py hears it)."""
    text = (EXAMPLES / "kiosk.toml").read_text()
    assert 'languages = ["zh", "en"]' in text
    guangdong = provisioned(tmp_path, text.replace('languages = ["zh", "en"]', 'languages = ["zh", "en", "yue"]'))
    assert options_from_config(load_config(guangdong))["voice"] == "zh=yue"
    from kiosk.cli import spoken_languages

    assert spoken_languages(parse_args(["--voice", "zh=yue"]).voice) == {"zh": "yue"}
    assert spoken_languages(parse_args([]).voice) == {}  # each screen in its own voice
    with pytest.raises(SystemExit, match="zh=yue"):
        spoken_languages("zh:yue")


@pytest.mark.parametrize("section, spec, profile", [
    ({"adapter": "escpos_serial", "device": "/dev/ttyUSB0", "paper_width_mm": 58, "chinese_font": True},
     "serial:/dev/ttyUSB0", "cn-58"),
    ({"adapter": "escpos_network", "host": "10.0.0.7"}, "network:10.0.0.7", "intl-80"),
    ({"adapter": "escpos_file", "device": "/tmp/receipts.bin", "paper_width_mm": 58}, "dummy-file:/tmp/receipts.bin", "intl-58"),
    ({"adapter": "none"}, "none", "intl-80"),
])
def test_every_printer_adapter_becomes_a_printer_spec_the_kiosk_opens(section, spec, profile):
    assert printer_spec(PrinterSection(**section)) == (spec, profile)


def test_a_kiosk_without_a_printer_runs_with_none():
    assert make_ticket_printer("none", None) is None


def test_config_comes_from_the_environment_and_flags_still_win(tmp_path, monkeypatch):
    text = (EXAMPLES / "kiosk.toml").read_text().replace('default_language = "zh"', 'default_language = "en"') \
        .replace("idle_timeout_s = 60", "idle_timeout_s = 90")
    monkeypatch.setenv("CLINICFLOW_CONFIG", str(provisioned(tmp_path, text)))
    args = parse_args([])
    assert (args.device_id, args.language, args.idle_timeout, args.token) == ("kiosk-1", "en", 90.0, "kiosk-token-123")
    args = parse_args(["--printer", "fake", "--language", "zh", "--server", "http://10.1.1.1:8000"])
    assert (args.printer, args.language, args.server, args.device_id) == ("fake", "zh", "http://10.1.1.1:8000", "kiosk-1")
    monkeypatch.delenv("CLINICFLOW_CONFIG")
    assert parse_args([]).printer == "fake" and parse_args([]).broker is None  # no file: the defaults, as before


@pytest.mark.parametrize("edit, key", [
    (("idle_timeout_s = 60", "idle_timeout_s = 5"), "settings.idle_timeout_s"),
    (("usb_product = 0x0e28\n", ""), "hardware.printer"),
    (('role = "kiosk"', 'role = "hall_board"'), "settings.rooms"),  # not a kiosk file any more
    (('token_file = "', 'token_file = "/nonexistent'), "server.token_file"),
])
def test_a_bad_device_file_stops_the_kiosk_with_exit_2_naming_the_key(tmp_path, edit, key):
    path = provisioned(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    env = dict(os.environ, CLINICFLOW_CONFIG=str(path), KIVY_NO_ARGS="1", KIVY_HOME=str(tmp_path / "kivy"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "clinicflow", "kiosk"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr and "Fix:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_call_screens_file_is_refused_by_the_kiosk(tmp_path):
    path = provisioned(tmp_path, (EXAMPLES / "door_screen.toml").read_text())
    env = dict(os.environ, CLINICFLOW_CONFIG=str(path), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "clinicflow", "kiosk"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "device.role: this file is for a door_screen, not a kiosk" in proc.stderr, proc.stderr
