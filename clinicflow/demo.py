"""``clinicflow demo``: the whole stack on the embedded defaults, the composition root of the demo.

Starts a broker (Mosquitto if installed, else embedded amqtt), the queue server on SQLite with
the seeded demo hospital, one kiosk and one call screen (hall board). With a screen it leaves
them running until Ctrl-C. Without one (no ``$DISPLAY``, or ``--headless``) it starts a private
Xvfb, walks demo patient AP1001 through check-in by touches on the real kiosk window, calls the
next patient from room 1 as the clinician would, waits until the call screen reports the call,
and saves PNG screenshots of both, printing where they are.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clinicflow.broker import start_demo_broker
from clinicflow.logs import setup_logging
from clinicflow.mqtt import PahoMessageBus
from protocol import CallEvent, DeviceStatus, topics

log = logging.getLogger("clinicflow.demo")
SITE = "demo"
DEMO_APPOINTMENT = "AP1001"
DISPLAY_ID = "demo-hall"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinicflow demo", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="var/demo", help="where the demo keeps its databases, tokens and screenshots")
    p.add_argument("--port", type=int, default=8000, help="queue server HTTP port")
    p.add_argument("--headless", action="store_true", help="walk one patient through and save screenshots, even with a screen")
    p.add_argument("--fresh", action="store_true", help="start from an empty data dir (a new demo day)")
    return p.parse_args(argv)


def _start_xvfb() -> subprocess.Popen[bytes]:
    """A private X server for headless runs; sets $DISPLAY for the apps we start."""
    if not shutil.which("Xvfb"):
        raise SystemExit("clinicflow demo: no screen and no Xvfb; run scripts/setup.sh (installs xvfb)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    os.environ["DISPLAY"] = f":{number}"
    log.info("headless: private Xvfb on display :%s", number)
    return xvfb


def _app(*args: str) -> list[str]:
    return [sys.executable, "-m", "clinicflow", *args]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # The apps it starts say only what went wrong; the demo itself tells the story (a short account).
    os.environ.setdefault("CLINICFLOW_LOG", "WARNING")
    setup_logging()
    from queueserver.process import QueueServerProcess  # the server's own launcher, shared with the tests

    data_dir = Path(args.data_dir).resolve()
    if args.fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    shots = data_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    headless = args.headless or not os.environ.get("DISPLAY")
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_HOME", str(data_dir / "kivy"))

    started: list[subprocess.Popen[bytes]] = []
    broker = start_demo_broker()
    server = QueueServerProcess(data_dir / "server", broker.url, site=SITE, port=args.port)
    try:
        server.start()
        log.warning("queue server at %s (clinician page: %s/console/r1#token=%s)", server.base_url, server.base_url,
                    server.tokens["clinician"])
        if headless:
            started.append(_start_xvfb())
        kiosk = _app("kiosk", "--server", server.base_url, "--token-file", str(server.data_dir / "tokens.json"),
                     "--printer", f"dummy-file:{data_dir / 'receipts.escpos'}", "--broker", broker.url, "--site", SITE,
                     "--journal", str(data_dir / "kiosk-journal.sqlite3"), "--size", "1280x800")
        display = _app("display", "--broker", broker.url, "--site", SITE, "--layout", "hall", "--languages", "zh,en",
                       "--device-id", DISPLAY_ID, "--size", "1280x720")
        if not headless:
            started += [subprocess.Popen(display), subprocess.Popen(kiosk)]
            log.warning("kiosk and call screen are up; Ctrl-C stops the demo")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            return 0
        return _walk_one_patient(server, broker.url, kiosk, display, shots, started)
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server.stop()
        broker.stop()


def _walk_one_patient(server, broker_url: str, kiosk: list[str], display: list[str], shots: Path,
                      started: list[subprocess.Popen[bytes]]) -> int:
    """Headless demo: check AP1001 in by touches, call it to a room, screenshot kiosk and call screen."""
    calls: queue.Queue[CallEvent] = queue.Queue()
    shown: queue.Queue[str] = queue.Queue()
    watcher = PahoMessageBus(broker_url)
    watcher.subscribe_model(topics.calls(SITE), CallEvent, lambda t, m, r: calls.put(m))
    watcher.subscribe_model(topics.device(SITE, DISPLAY_ID, "status"), DeviceStatus,
                            lambda t, m, r: shown.put(str(m.details.get("last_call_id") or "")))
    watcher.start()
    watcher.wait_connected(10)
    screen_png = shots / "call-screen.png"
    # No sound card on a headless machine: speech is still synthesised by espeak-ng, played to ALSA's null device.
    screen = subprocess.Popen(display + ["--screenshot", str(screen_png), "--screenshot-after", "15",
                                         "--audio-device", "null"])
    started.append(screen)

    log.warning("kiosk: patient %s checks in on the touch keypad", DEMO_APPOINTMENT)
    subprocess.run(kiosk + ["--walkthrough", DEMO_APPOINTMENT, "--screenshot-dir", str(shots / "kiosk")],
                   check=True, timeout=180)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.tokens['clinician']}"},
                      timeout=10) as http:
        reply = http.post("/api/v1/rooms/r1/call-next", headers={"Idempotency-Key": f"demo-{time.time_ns()}"})
        if reply.status_code != 200:
            log.error("call-next failed: %s %s", reply.status_code, reply.text)
            return 1
        call = reply.json()
    log.warning("clinician in room r1 called %s (%s)", call["ticket"]["number"], call["reason"])
    event = calls.get(timeout=10)
    log.warning("call screen announces: %s / %s", event.announce.get("zh"), event.announce.get("en"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if shown.get(timeout=1) == event.id:
                log.warning("call screen shows %s", event.ticket)
                break
        except queue.Empty:
            continue
    screen.wait(timeout=60)
    watcher.stop()
    print("\nclinicflow demo (headless) finished:")
    print(f"  kiosk screenshots:  {shots / 'kiosk'}")
    print(f"  call screen:        {sorted(shots.glob('call-screen*.png'))[-1] if list(shots.glob('call-screen*.png')) else screen_png}")
    walk = json.loads((shots / "kiosk" / "walkthrough.json").read_text())
    print(f"  ticket {walk['ticket_number']} printed: {walk['ticket_printed']}")
    print(f"  server log:         {server.log_path}")
    return 0
