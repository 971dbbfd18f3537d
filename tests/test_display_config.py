"""``clinicflow display`` on a provisioned device: its options come from the device file.

The systemd unit runs ``clinicflow display`` with only ``CLINICFLOW_CONFIG`` set, so the
shipped example files must map to what a technician expects, flags must still win, a bad
file must stop the screen with the loader's message (exit 2), and a real run must come up
under the file's device id on the file's broker.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
from pathlib import Path

import pytest

from clinicflow.mqtt import PahoMessageBus
from config.loader import load_config
from display.cli import options_from_config, parse_args
from protocol import topics
from protocol.payloads import DeviceStatus

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config" / "examples"


def provisioned(example: str, tmp_path: Path) -> Path:
    """The shipped example, with its secrets in files under tmp_path (as `clinicflow provision` writes them)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "mqtt-password").write_text("s3cret/pw\n")
    (secrets / "api-token").write_text("tok-123\n")
    text = (EXAMPLES / example).read_text().replace("/etc/clinicflow/secrets/", f"{secrets}/")
    path = tmp_path / example
    path.write_text(text)
    return path


def test_hall_board_example_maps_to_a_hall_layout_with_its_rooms_and_speaker(tmp_path):
    options = options_from_config(load_config(provisioned("hall_board.toml", tmp_path)))
    assert options == {
        "device_id": "hall-2", "site": "demo", "layout": "hall", "rooms": ["r1", "r2"], "languages": ["zh", "en"],
        "repeats": 2, "size": (1920, 1080),
        # The password from its file, URL-quoted; the username defaults to what the file says.
        "broker": "mqtts://hall-2:s3cret%2Fpw@broker.hospital.local:8883", "ca_file": "/etc/clinicflow/ca.crt",
        "speaker": "espeak", "audio_device": "plughw:0,0", "fullscreen": True,  # a provisioned screen fills its panel
    }


def test_door_screen_example_is_a_portrait_door_layout_for_one_room(tmp_path):
    options = options_from_config(load_config(provisioned("door_screen.toml", tmp_path)))
    assert options["layout"] == "door" and options["rooms"] == ["r3"] and options["device_id"] == "door-r3"
    assert options["size"] == (1080, 1920)  # orientation = "portrait"
    assert options["repeats"] == 1 and options["speaker"] == "espeak" and options["audio_device"] is None


def test_config_comes_from_the_environment_and_flags_still_win(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICFLOW_CONFIG", str(provisioned("hall_board.toml", tmp_path)))
    args = parse_args([])
    assert (args.device_id, args.layout, args.rooms, args.repeats) == ("hall-2", "hall", ["r1", "r2"], 2)
    args = parse_args(["--rooms", "r4", "--repeats", "3", "--size", "800x480", "--speaker", "none"])
    assert (args.device_id, args.rooms, args.repeats, args.size, args.speaker) == ("hall-2", ["r4"], 3, (800, 480), "none")
    monkeypatch.delenv("CLINICFLOW_CONFIG")
    assert parse_args([]).device_id is None  # no file: the built-in defaults, as before


def run_display(env_config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CLINICFLOW_CONFIG=str(env_config), KIVY_NO_ARGS="1", KIVY_HOME=str(tmp_path / "kivy"),
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "clinicflow", "display"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("edit, key", [
    (("announce_repeat = 2", "announce_repeat = 9"), "settings.announce_repeat"),
    (('rooms = ["r1", "r2"]', "rooms = []"), "settings.rooms"),
    (('role = "hall_board"', 'role = "kiosk"'), "device.role"),
    (('password_file = "', 'password_file = "/nonexistent'), "broker.password_file"),
])
def test_a_bad_device_file_stops_the_screen_with_exit_2_naming_the_key(tmp_path, edit, key):
    path = provisioned("hall_board.toml", tmp_path)
    path.write_text(path.read_text().replace(*edit))
    proc = run_display(path, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr and "Fix:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_provisioned_display_comes_up_under_the_files_device_id(mosquitto, tmp_path):
    site = "cfgdisp"
    config = tmp_path / "device.toml"
    config.write_text(f"""
[device]
id = "door-cfg-1"
role = "door_screen"
site = "{site}"

[server]
url = "http://127.0.0.1:9"

[broker]
url = "{mosquitto.url}"

[settings]
rooms = ["r1"]
languages = ["en"]

[hardware.speaker]
adapter = "none"
""")
    statuses: queue.Queue[DeviceStatus] = queue.Queue()
    availability: queue.Queue[bytes] = queue.Queue()
    watcher = PahoMessageBus(mosquitto.url)
    watcher.subscribe_model(topics.device(site, "door-cfg-1", "status"), DeviceStatus, lambda t, m, r: statuses.put(m))
    watcher.subscribe(topics.device(site, "door-cfg-1", "availability"), lambda t, p, r: availability.put(p))
    shot = tmp_path / "door.png"
    env = dict(os.environ, CLINICFLOW_CONFIG=str(config), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1",
               KIVY_HOME=str(tmp_path / "kivy"), PYTHONPATH=str(ROOT))
    assert env.get("DISPLAY"), "Kivy windows need an X server: run the tests under xvfb-run"
    with watcher:
        assert watcher.wait_connected(5)
        proc = subprocess.Popen([sys.executable, "-m", "clinicflow", "display", "--screenshot", str(shot),
                                 "--screenshot-after", "2"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            status = statuses.get(timeout=20)
            assert status.device == "door-cfg-1" and status.role == "door_screen"
            assert status.details.get("rooms") == "r1"
            assert availability.get(timeout=5) == topics.ONLINE.encode()  # its birth message, retained
            assert proc.wait(30) == 0, proc.stdout.read().decode(errors="replace")[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert shot.exists() and shot.stat().st_size > 5000


def test_short_names_on_the_command_line_and_a_clear_error_for_a_bad_one(capsys):
    args = parse_args(["--layout", "hall", "--short-name", "r6:zh=耳鼻喉科 6 诊室", "--short-name", "r6:en=ENT 6"])
    assert args.short_name == [("r6", "zh", "耳鼻喉科 6 诊室"), ("r6", "en", "ENT 6")]
    with pytest.raises(SystemExit):
        parse_args(["--short-name", "r6=ENT"])
    assert "must look like r6:zh=" in capsys.readouterr().err
