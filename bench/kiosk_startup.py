"""Kiosk start-up to an interactive Home screen, screen-to-screen transition time, and memory.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m bench.kiosk_startup [--transitions 100]

Starts a real queue server (``clinicflow server``, no broker), then a kiosk window in a child
process that reports: seconds from process start to Home drawn and accepting input, the time
from a view-model navigation to the next frame drawn (p50/p95 over N transitions through
Home, Help, check-in keypad, identify and a 65+ patient's appointments), and VmRSS.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(server: str, token: str, transitions: int, out: str) -> None:
    t0 = time.perf_counter()
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.clock import Clock
    from kivy.core.window import Window

    from hardware.ticket_printer import FakeTicketPrinter
    from kiosk.clock import KivyScheduler
    from kiosk.server_client import KioskServerClient
    from kiosk.ui.app import KioskApp
    from kiosk.viewmodels import KioskViewModel

    vm = KioskViewModel(client=KioskServerClient(server, token=token), printer=FakeTicketPrinter(),
                        clock=KivyScheduler())
    app = KioskApp(vm)
    result: dict = {"rss_start_mb": None}
    times: list[float] = []
    route = [lambda: vm.go("help"), lambda: vm.go_home(), lambda: vm.home.choose("checkin"), lambda: vm.go_home(),
             lambda: vm.home.choose("payment"), lambda: vm.go_home()]
    state = {"i": 0, "t": 0.0}

    def on_flip(*_):
        if result["rss_start_mb"] is None:
            result["startup_s"] = time.perf_counter() - t0
            result["rss_start_mb"] = _rss_mb()
            Clock.schedule_once(step, 0.2)
        elif state["t"]:
            times.append(time.perf_counter() - state["t"])
            state["t"] = 0.0
            Clock.schedule_once(step, 0)

    def step(_dt):
        if state["i"] >= transitions:
            result["transition_ms"] = [t * 1000 for t in times]
            result["rss_end_mb"] = _rss_mb()
            # One identified patient (a real HTTP round trip) for comparison.
            t = time.perf_counter()
            vm.home.choose("checkin")
            vm.on_card("YB1002")
            result["identify_and_list_ms"] = (time.perf_counter() - t) * 1000
            Path(out).write_text(json.dumps(result))
            app.stop()
            return
        state["t"] = time.perf_counter()
        route[state["i"] % len(route)]()
        state["i"] += 1
        Window.canvas.ask_update()

    Window.bind(on_flip=on_flip)
    app.run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.kiosk_startup")
    p.add_argument("--transitions", type=int, default=60)
    p.add_argument("--child", nargs=4, metavar=("SERVER", "TOKEN", "N", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return 0
    from clinicflow.broker import free_port, wait_for_port

    data = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1",
               KIVY_HOME=str(data / "kivy"))
    server = subprocess.Popen([sys.executable, "-m", "clinicflow", "server", "--data-dir", str(data), "--port",
                               str(port), "--broker", "none", "--log-level", "warning"], env=env, cwd=ROOT)
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
        deadline = time.monotonic() + 10
        while not (data / "tokens.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        token = json.loads((data / "tokens.json").read_text())["kiosk"]["token"]
        out = data / "bench.json"
        runs = []
        for _ in range(3):
            subprocess.run([sys.executable, "-m", "bench.kiosk_startup", "--child", f"http://127.0.0.1:{port}", token,
                            str(args.transitions), str(out)], env=env, cwd=ROOT, check=True, timeout=300)
            runs.append(json.loads(out.read_text()))
    finally:
        server.terminate()
        server.wait(timeout=10)
    startup = [r["startup_s"] for r in runs]
    trans = sorted(t for r in runs for t in r["transition_ms"])
    print(f"kiosk start-up to interactive Home: {min(startup):.2f} s best, {statistics.median(startup):.2f} s median "
          f"of {len(runs)} cold starts")
    print(f"screen-to-screen transition (navigation to next frame drawn), n={len(trans)}: "
          f"p50 {statistics.median(trans):.1f} ms, p95 {trans[int(len(trans) * 0.95) - 1]:.1f} ms, max {trans[-1]:.1f} ms")
    print(f"identify by card + load appointments over HTTP: {statistics.median(r['identify_and_list_ms'] for r in runs):.1f} ms median")
    print(f"RSS: {statistics.median(r['rss_start_mb'] for r in runs):.0f} MB at Home, "
          f"{statistics.median(r['rss_end_mb'] for r in runs):.0f} MB after {args.transitions} transitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
