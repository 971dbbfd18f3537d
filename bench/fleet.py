"""Fleet figures on a private Mosquitto: status-to-registry latency with many devices, config push and command round trips.

    .venv/bin/python -m bench.fleet [--devices 100] [--rounds 5] [--pushes 200]
    .venv/bin/python -m bench.fleet --update     # A/B update: build, sign, download + verify + install a release

Prints p50/p99 in milliseconds beside the raw MQTT publish-to-receive time on the same broker.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

from clinicflow.agent import DeviceAgent
from clinicflow.broker import MosquittoBroker
from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from queueserver.fleet import FleetRegistry

SITE = "bench"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--update", action="store_true", help="time the steps of an A/B update instead")
    args = parser.parse_args(argv)
    if args.update:
        return update_figures()
    with MosquittoBroker() as broker:
        server = PahoMessageBus(broker.url)
        registry = FleetRegistry(SITE, check_interval=0)
        registry.attach(server)
        sent: dict[str, float] = {}
        latencies: list[float] = []
        done = threading.Condition()

        def after_registry(topic: str, payload: bytes, retained: bool) -> None:
            # Subscribed after the registry on the same bus: runs once the registry has handled the status.
            match = topics.parse(topic)
            if match and match.device in sent and not retained:
                with done:
                    latencies.append(time.perf_counter() - sent.pop(match.device))
                    done.notify_all()

        server.subscribe(topics.all_devices(SITE, "status"), after_registry)
        server.start()
        server.wait_connected(5)

        agents = []
        for i in range(args.devices):
            device = f"screen-{i:03d}"
            bus = PahoMessageBus(broker.url, availability_topic=topics.device(SITE, device, "availability"))
            agent = DeviceAgent(bus, site=SITE, device_id=device, role="hall_board", status_interval=3600,
                                settings={"rooms": ["r1"]}, reboot=lambda: None)
            agent.on_config(lambda settings: None)
            agent.start()
            bus.start()
            agents.append((device, agent, bus))
        for _, _, bus in agents:
            bus.wait_connected(10)
        t0 = time.perf_counter()
        while len(registry.devices()) < args.devices or not all(d["online"] for d in registry.devices()):
            time.sleep(0.01)
        print(f"{args.devices} devices online in the registry {time.perf_counter() - t0:.2f} s after all connected")

        for _ in range(args.rounds):
            with done:
                for device, agent, _ in agents:
                    sent[device] = time.perf_counter()
                    agent.publish_status_now()
                done.wait_for(lambda: not sent, 30)
        print(f"status -> registry ({len(latencies)} statuses, bursts of {args.devices}): "
              f"p50 {pct(latencies, 50):.2f} ms, p99 {pct(latencies, 99):.2f} ms")

        device = agents[0][0]
        pushes = []
        for i in range(args.pushes):
            start = time.perf_counter()
            revision, answer = registry.push_config(device, {"volume": i % 100}, wait=5)
            assert answer is not None and answer.status == "ok", answer
            pushes.append(time.perf_counter() - start)
        commands = []
        for _ in range(args.pushes):
            start = time.perf_counter()
            _, answer = registry.send_command(device, "reload", wait=5)
            assert answer is not None and answer.status == "ok"
            commands.append(time.perf_counter() - start)
        print(f"config push -> applied -> answer ({args.pushes}): p50 {pct(pushes, 50):.2f} ms, p99 {pct(pushes, 99):.2f} ms")
        print(f"command reload -> answer ({args.pushes}): p50 {pct(commands, 50):.2f} ms, p99 {pct(commands, 99):.2f} ms")

        raw: list[float] = []
        got = threading.Event()
        probe = PahoMessageBus(broker.url)
        probe.subscribe("bench/raw", lambda t, p, r: got.set())
        probe.start()
        probe.wait_connected(5)
        probe.publish("bench/raw", b"warm").wait_for_publish(5)
        got.wait(5)
        for _ in range(args.pushes):
            got.clear()
            start = time.perf_counter()
            probe.publish("bench/raw", b"x", qos=1)
            got.wait(5)
            raw.append(time.perf_counter() - start)
        print(f"raw MQTT publish -> receive, same broker ({args.pushes}): p50 {pct(raw, 50):.2f} ms, "
              f"p99 {pct(raw, 99):.2f} ms")
        print(f"config push round trip / raw one-way: {statistics.median(pushes) / statistics.median(raw):.1f}x")
        probe.stop()
        for _, agent, bus in agents:
            agent.stop()
            bus.stop()
        registry.stop()
        server.stop()
    return 0


def update_figures() -> int:
    """Seconds per step of an A/B update of this tree, on this machine (reusing this venv's packages)."""
    import shutil
    import subprocess
    import sys
    import sysconfig
    import tempfile
    from pathlib import Path

    from clinicflow.update import Updater, ensure_signing_key, publish_release

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="clinicflow-bench-update-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "wheels"), str(root)],
                       check=True, capture_output=True)
        wheel = next((tmp / "wheels").glob("clinicflow-*.whl"))
        t1 = time.perf_counter()
        key, pub, _ = ensure_signing_key(tmp / "broker")
        release = publish_release(wheel, releases_dir=tmp / "releases", key_file=key)
        t2 = time.perf_counter()
        app = tmp / "app"
        Updater.init_root(app, "0.0.0")
        shutil.copy(pub, app / pub.name)
        updater = Updater(app, reuse_site_packages=[sysconfig.get_paths()["purelib"]])
        updater.install(release.as_uri() + "/", release.name)
        t3 = time.perf_counter()
    print(f"build wheel (pip wheel --no-deps): {t1 - t0:.2f} s")
    print(f"sign and publish: {(t2 - t1) * 1000:.0f} ms")
    print(f"download + verify + fresh venv + install --no-deps (reused site-packages): {t3 - t2:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
