"""Call latency (issue 2): call-next over HTTP to a call screen's view-model showing it, beside raw Mosquitto.

    .venv/bin/python bench/call_latency.py [--calls 500] [--rooms r1,r2,r3,r4]

In one run, on one private Mosquitto (stopped by PID at the end, also on errors):
1. a real ``clinicflow server`` process (``QueueServerProcess``, demo hospital, temp SQLite) with
   ``--calls`` walk-in tickets queued through the API as the kiosk, spread over ``--rooms``;
2. one headless call screen (``display.runtime.CallScreen``, ``FakeSpeaker`` so speech costs nothing)
   on those rooms: a door screen for one room, a hall board for several;
3. per call, round-robin over the rooms: ``time.monotonic()`` just before ``POST /rooms/{room}/call-next``
   (clinician token) to the screen's own ``shown_at[call_id]`` (also ``time.monotonic()``, set on the
   UI thread right after the view-model took the call); one call at a time;
4. raw paho QoS 1 publish -> receive on the same broker, one message at a time (``--raw``, default = ``--calls``).
Prints n, p50, p99 and max for both, and the ratios. Figures only, nothing asserted.
"""
from __future__ import annotations

import argparse
import os
import queue
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KIVY_NO_CONFIG", "1")  # no config.ini to write or upgrade in a throwaway KIVY_HOME

# Importing bench.display_latency also sets KIVY_NO_ARGS / KIVY_HOME / quiet Kivy logs before Kivy loads.
from bench.display_latency import pct, raw_round_trip  # noqa: E402
from clinicflow.broker import MosquittoBroker  # noqa: E402
from display.runtime import CallScreen  # noqa: E402
from hardware.speech import FakeSpeaker  # noqa: E402
from queueserver.process import QueueServerProcess  # noqa: E402


def row(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{name:<34} {len(ms):>5} {pct(ms, 50):>9.2f} {pct(ms, 99):>9.2f} {max(ms):>9.2f}"


def raw_once_subscribed(url: str, n: int, tries: int = 3) -> list[float]:
    """``raw_round_trip``, again if its warm-up message beat the subscription to the broker (it does not wait for SUBACK)."""
    for attempt in range(tries):
        try:
            return raw_round_trip(url, n)
        except queue.Empty:
            if attempt == tries - 1:
                raise
    return []


def queue_walk_ins(server: QueueServerProcess, rooms: list[str], calls: int) -> None:
    """As the kiosk, queue one walk-in per call that will be made, in the department each room serves."""
    with server.client("kiosk") as kiosk:
        departments = [kiosk.get(f"/api/v1/rooms/{room}/state").raise_for_status().json()["department"] for room in rooms]
        for i in range(calls):
            kiosk.post("/api/v1/walkins", json={"department": departments[i % len(rooms)]}).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500, help="timed calls (default 500)")
    ap.add_argument("--rooms", default="r1,r2,r3,r4", help="rooms called in turn, comma-separated (default r1,r2,r3,r4)")
    ap.add_argument("--raw", type=int, help="raw MQTT messages (default: as many as --calls)")
    args = ap.parse_args(argv)
    rooms = [r.strip() for r in args.rooms.split(",") if r.strip()]
    print("command:", shlex.join(sys.orig_argv))
    # SIGTERM unwinds like Ctrl-C, so the finally blocks below stop the screen, server and broker by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t_run = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clinicflow-call-latency-") as tmp, MosquittoBroker(workdir=Path(tmp)) as broker:
        server = QueueServerProcess(Path(tmp) / "server", broker.url)
        screen = None
        try:
            server.start()
            t0 = time.monotonic()
            queue_walk_ins(server, rooms, args.calls + len(rooms))  # + one warm-up call per room
            queued_s = time.monotonic() - t0

            screen = CallScreen(broker.url, server.site, rooms, speaker=FakeSpeaker(),
                                layout="door" if len(rooms) == 1 else "hall", status_interval=3600,
                                device_id="bench-call-latency").start()
            # The server's retained snapshots arriving prove the screen's subscriptions are in place.
            if not screen.wait_until(lambda vm: vm.last_update is not None, 10):
                raise RuntimeError("the call screen got no room snapshot in 10 s")

            calls, request = [], []
            with server.client("clinician") as clinician:
                for i in range(len(rooms) + args.calls):
                    room = rooms[i % len(rooms)]
                    t0 = time.monotonic()
                    r = clinician.post(f"/api/v1/rooms/{room}/call-next", params={"confirm": "true"}).raise_for_status()
                    t1 = time.monotonic()
                    call_id = r.json()["call_id"]
                    if not screen.wait_for_call(call_id=call_id, timeout=10):
                        raise RuntimeError(f"call {call_id} in {room} not shown within 10 s")
                    if i >= len(rooms):  # the first call per room warms up connections and caches
                        calls.append(screen.shown_at[call_id] - t0)
                        request.append(t1 - t0)
        finally:
            if screen is not None:
                screen.stop()
            server.stop()
        raw = raw_once_subscribed(broker.url, args.raw or args.calls)

    print(f"call latency: one {'door screen' if len(rooms) == 1 else 'hall board'} on rooms {','.join(rooms)}, "
          f"{args.calls + len(rooms)} walk-ins queued in {queued_s:.1f} s, run took {time.monotonic() - t_run:.1f} s")
    print(f"{'':<34} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print(row("call-next -> view-model shows it", calls))
    print(row("  of which the HTTP request", request))
    print(row("raw Mosquitto QoS 1 pub -> recv", raw))
    print(f"ratio call/raw: p50 {pct(calls, 50) / pct(raw, 50):.1f}x   p99 {pct(calls, 99) / pct(raw, 99):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
