"""Real headless Kivy windows (in child processes: Kivy allows one Window per process).

Both layouts, Mandarin and English, 1920x1080 and 800x480 (plus portrait 480x800): every text
present and fitting its widget; screenshots saved to ``artifacts_dir`` for review. Then the
real ``clinicflow display`` command over real Mosquitto: it shows a call and says so in its status.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinicflow.mqtt import PahoMessageBus
from display import samples
from display.driver import DEFAULT_CASES
from protocol import topics
from protocol.payloads import DeviceStatus

ROOT = Path(__file__).resolve().parent.parent


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_HOME=str(tmp_path / "kivy"),
               PYTHONPATH=str(ROOT))
    assert env.get("DISPLAY"), "Kivy windows need an X server: run the tests under xvfb-run (scripts/run-tests.sh)"
    return env


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, artifacts_dir):
    out = tmp_path_factory.mktemp("screens")
    proc = subprocess.run([sys.executable, "-m", "display.driver", "--out", str(out)], cwd=ROOT,
                          env=child_env(out), capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    report = json.loads((out / "report.json").read_text())
    target = artifacts_dir / "call-screens"
    target.mkdir(exist_ok=True)
    for case in report["cases"]:
        shutil.copy(case["screenshot"], target / Path(case["screenshot"]).name)
    return {c["name"]: c for c in report["cases"]}


def test_every_layout_language_and_size_was_rendered(rendered):
    assert len(rendered) == len(DEFAULT_CASES)
    for case in rendered.values():
        w, h = (int(v) for v in case["requested"].split("x"))
        assert case["size"] == [w, h], f"{case['name']}: window was not resized"
        png = Path(case["screenshot"])
        assert png.stat().st_size > 5000, f"{case['name']}: screenshot looks empty"


@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_every_text_fits_its_widget_and_the_window(rendered, case):
    layout, langs, size = case.split(":")
    found = rendered[f"{layout}-{langs.replace(',', '+')}-{size}"]
    assert found["unfit"] == [], f"clipped texts: {found['unfit']}"
    assert found["outside"] == [], f"texts outside the window: {found['outside']}"
    assert found["outside_tile"] == [], f"texts drawn into a neighbouring tile: {found['outside_tile']}"
    assert found["min_font"] >= found["legible_min"], f"smallest texts: {found['smallest']}"


@pytest.mark.parametrize("size", ["1920x1080", "800x480"])
def test_a_hall_board_of_twenty_rooms_is_legible_in_mandarin_and_english(rendered, size):
    board = rendered[f"board20-zh+en-{size}"]
    texts = board["texts"]
    assert board["legible_min"] == {"1920x1080": 24, "800x480": 14}[size] and board["min_font"] >= board["legible_min"]
    titles = [t for t in texts if t.endswith(" 诊室") and t[0] not in "A-Z"]
    numbers = [int(t.split()[-2]) for t in titles][:20]
    assert numbers == list(range(1, 21)), "rooms in natural order (2 before 10)"
    # 耳鼻咽喉头颈外科 6 诊室 cannot fit a tile legibly: the configured short name is shown instead.
    assert "耳鼻喉科 6 诊室" in texts and "ENT 6" in texts


def test_door_screen_texts_in_mandarin_and_english(rendered):
    zh = rendered["door-zh+en-1920x1080"]["texts"]
    for text in ["A012", "张*丰", "1 诊室", "room 1", "当前就诊", "候诊", "等候 7 人", "09:41"]:
        assert text in zh
    assert any("李医生" in t for t in zh)
    en = rendered["door-en-800x480"]["texts"]
    for text in ["A012", "张*丰", "room 1", "Now serving", "Next", "7 waiting"]:
        assert text in en
    assert not any("张三丰" in t for c in rendered.values() for t in c["texts"]), "a full name reached the screen"


def test_a_door_screen_with_nobody_waiting_says_so(rendered):
    texts = rendered["door-empty-zh+en-1920x1080"]["texts"]
    assert "暂无候诊" in texts and "—" in texts


def test_hall_board_texts_in_mandarin_and_english(rendered):
    zh = rendered["hall-zh+en-1920x1080"]["texts"]
    for text in ["候诊叫号", "A012", "A010", "J*** S.", "B004", "暂停叫号", "已停诊", "最近呼叫",
                 "1 诊室 · 再次呼叫", "叫号服务器离线"]:
        assert text in zh, text
    en = rendered["hall-en-800x480"]["texts"]
    for text in ["Waiting room", "emergency room 9", "Paused", "Closed", "Latest calls", "room 1 · Recall",
                 "queue server offline"]:
        assert text in en, text


def shown(case: dict) -> dict[str, float]:
    """Each text drawn and its font size, as written (display.widgets.cjk_breaks only moves where lines break)."""
    return {t.replace("\u00a0", " ").replace("， ", "，"): f for t, f in case["fonts"].items()}


@pytest.mark.parametrize("layout", ["door", "hall"])
def test_the_called_room_says_where_it_is_large_enough_to_read_across_the_room(rendered, layout):
    """The hospital file's location of the room (building, floor, the way there) is on screen with the call:
    on the door screen under the number, on the hall board on the call card over the board; at least twice
    the legible minimum in the main language, at every size."""
    zh, en = samples.DEMO_WHERE["r1"]["zh"], samples.DEMO_WHERE["r1"]["en"]
    for name, case in rendered.items():
        if not name.startswith(layout + "-") or name.startswith("door-empty"):
            continue
        main, second = (zh, en) if case["languages"][0] == "zh" else (en, zh)
        fonts = shown(case)
        assert main in fonts, f"{name}: where the room is not shown"
        assert fonts[main] >= 2 * case["legible_min"], f"{name}: {main!r} at {fonts[main]} px"
        if len(case["languages"]) > 1:
            assert any(second in t for t in fonts), f"{name}: no second-language location"
    card = shown(rendered["hall-zh+en-1920x1080"])
    assert "A012" in card and "再次呼叫 · 请到 1 诊室" in card and "Please go to room 1 · " + en in card
    board = shown(rendered["board20-zh+en-800x480"])  # a long location still fits, wrapped
    assert any(t.startswith("门诊医技综合楼") for t in board) and any("blue line" in t for t in board)


def test_clinicflow_display_command_shows_a_call_and_reports_it(mosquitto, tmp_path, artifacts_dir):
    site = "wincli"
    server = PahoMessageBus(mosquitto.url)
    statuses: queue.Queue[DeviceStatus] = queue.Queue()
    server.subscribe_model(topics.device(site, "door-r1", "status"), DeviceStatus, lambda t, m, r: statuses.put(m))
    shot = artifacts_dir / "call-screens" / "cli-door-800x480.png"
    shot.parent.mkdir(exist_ok=True)
    with server:
        assert server.wait_connected(5)
        server.publish(topics.room_state(site, "r1"), samples.room_state("r1", 1, "A012", site=site,
                       next_tickets=("A013",)), retain=True).wait_for_publish(5)
        proc = subprocess.Popen(
            [sys.executable, "-m", "clinicflow", "display", "--broker", mosquitto.url, "--site", site, "--rooms", "r1",
             "--size", "800x480", "--device-id", "door-r1", "--speaker", "espeak", "--audio-device", "null",
             "--speech-cache", str(tmp_path / "speech"), "--screenshot", str(shot), "--screenshot-after", "2.5"],
            cwd=ROOT, env=child_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            first = statuses.get(timeout=20)  # published on connect: the screen is subscribed
            assert first.role == "door_screen"
            call = samples.call_event("r1", 2, "A013", site=site)
            server.publish(topics.room_state(site, "r1"), samples.room_state("r1", 2, "A013", site=site), retain=True)
            server.publish(topics.calls(site), call).wait_for_publish(5)
            while True:
                status = statuses.get(timeout=10)
                if status.details.get("last_call_id") == call.id:
                    break
            assert status.checks["speech"] is True, status.details
            assert proc.wait(30) == 0, proc.stdout.read().decode(errors="replace")[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert shot.exists() and shot.stat().st_size > 5000
