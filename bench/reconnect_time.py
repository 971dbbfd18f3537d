"""Time from a restarted broker listening to call screens showing the right room again (issue 13), printed.

    .venv/bin/python bench/reconnect_time.py [--restarts 10] [--screens 3] [--down 1.0]

One private Mosquitto without persistence (a restart loses every retained message), a real
``clinicflow server`` on SQLite, and ``--screens`` headless door screens for room r1
(``display.runtime.CallScreen``). Each round stops the broker, calls the next patient over HTTP
while it is down (the screens cannot know), starts the broker again and measures, per screen,
the time from the broker accepting TCP connections to the screen's view-model showing the
patient called during the outage: screen reconnect + server reconnect + republished snapshot.
Prints p50/p99/max over all screens and rounds; the goal is p99 <= 1 s.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
os.environ.setdefault("KIVY_HOME", tempfile.mkdtemp(prefix="kivy-bench-"))

from clinicflow.broker import MosquittoBroker  # noqa: E402
from display.runtime import CallScreen  # noqa: E402
from hardware.speech import FakeSpeaker  # noqa: E402
from queueserver.process import QueueServerProcess  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def wait_listening(host: str, port: int, timeout: float = 10.0) -> float:
    """Poll every 2 ms; the monotonic time the broker first accepted a TCP connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return time.monotonic()
        except OSError:
            time.sleep(0.002)
    raise RuntimeError("the broker did not come back")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--screens", type=int, default=3)
    parser.add_argument("--down", type=float, default=1.0, help="seconds the broker stays down each round")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # each round's "lost broker" warnings are expected

    work = Path(tempfile.mkdtemp(prefix="clinicflow-reconnect-"))
    (work / "mosquitto").mkdir()
    broker = MosquittoBroker(workdir=work / "mosquitto").start()
    hospital = work / "hospital.toml"
    hospital.write_text((ROOT / "queueserver" / "demo_hospital.toml").read_text())
    for png in (ROOT / "queueserver").glob("demo_floor*.png"):  # its floor maps, beside it
        shutil.copy(png, work / png.name)
    server = QueueServerProcess(work / "server", broker.url, site="bench", hospital=hospital).start()
    screens = [CallScreen(broker.url, "bench", ["r1"], speaker=FakeSpeaker(), device_id=f"door-{i}").start()
               for i in range(args.screens)]
    times: list[float] = []
    try:
        with server.client("kiosk") as kiosk:
            for _ in range(args.restarts + 1):
                kiosk.post("/api/v1/walkins", json={"department": "internal"}).raise_for_status()
        for screen in screens:
            assert screen.wait_until(lambda vm: vm.room_title == "1 诊室", 10)
        with server.client("admin") as admin:
            for round_no in range(1, args.restarts + 1):
                broker.stop()
                for screen in screens:
                    screen.wait_until(lambda vm: not vm.connected, 5)
                ticket = admin.post("/api/v1/rooms/r1/call-next").json()["ticket"]["number"]
                time.sleep(args.down)
                shown: dict[int, float] = {}

                def watch(i: int, screen: CallScreen) -> None:
                    if screen.wait_until(lambda vm: vm.connected and vm.ticket_text == ticket, 15):
                        shown[i] = time.monotonic()

                watchers = [threading.Thread(target=watch, args=(i, s)) for i, s in enumerate(screens)]
                for w in watchers:
                    w.start()
                starter = threading.Thread(target=broker.start)
                starter.start()
                listening = wait_listening(broker.host, broker.port)
                starter.join()
                for w in watchers:
                    w.join()
                if len(shown) != len(screens):
                    print(f"round {round_no}: {len(screens) - len(shown)} screen(s) never showed {ticket}")
                round_times = [t - listening for t in shown.values()]
                times += round_times
                print(f"round {round_no:2d}: {ticket} shown {min(round_times):.3f}-{max(round_times):.3f} s "
                      f"after the broker listened", flush=True)
    finally:
        for screen in screens:
            screen.stop()
        server.stop()
        broker.stop()
    print(f"\nbroker restarts: {args.restarts}, screens: {args.screens}, samples: {len(times)}")
    print(f"time to the right state after the broker listens: p50 {percentile(times, 0.5):.3f} s, "
          f"p99 {percentile(times, 0.99):.3f} s, max {max(times):.3f} s, mean {statistics.mean(times):.3f} s "
          f"(goal: p99 <= 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
