"""A site's fleet as real processes: a queue server, kiosks and call screens started by a test.

    def test_x(fleet):
        fleet.start_kiosk("kiosk-a", "--printer", f"dummy-status:{fleet.printer_state}")
        fleet.wait("kiosk-a", lambda d: d["online"])        # the server's /api/v1/fleet entry
        fleet.command("kiosk-a", "self_test")               # the device's answer

The server runs on the session's Mosquitto with a site of its own and a ``devices.json``
that registers the button box ``box-r1`` (which never connects). Kiosks are real
``clinicflow kiosk`` processes (Kivy windows under xvfb), call screens real ``clinicflow
display`` processes; each keeps its state (accepted config) in its own temp folder and
finds the private cupsd through ``CUPS_SERVER``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.registry import DeviceRecord, DeviceRegistry, token_hash
from queueserver.process import QueueServerProcess

ROOT = Path(__file__).resolve().parent.parent


def until(fetch: Callable[[], dict], predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found and predicate(found):
            return found
        assert time.monotonic() < deadline, f"never matched; last: {found}"
        time.sleep(0.1)


class Fleet:
    """The server, its admin client and the device processes of this module."""

    def __init__(self, server: QueueServerProcess, tmp: Path, mosquitto, cups) -> None:
        self.server, self.tmp, self.mosquitto, self.cups = server, tmp, mosquitto, cups
        self.admin = server.client("admin")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cmds: dict[str, list[str]] = {}
        self.paths: dict[str, Path | None] = {}
        self.printer_state = tmp / "printer-state"
        self.printer_state.write_text("paper=low\n")

    def env(self, name: str) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(ROOT), CUPS_SERVER=self.cups.socket, KIVY_NO_ARGS="1",
                    KIVY_HOME=str(self.tmp / f"kivy-{name}"), CLINICFLOW_STATE_DIR=str(self.tmp / f"state-{name}"),
                    CLINICFLOW_KIOSK_JOURNAL=str(self.tmp / f"journal-{name}.sqlite3"))

    def start_kiosk(self, device: str, *extra: str) -> None:
        cmd = [sys.executable, "-m", "clinicflow", "kiosk", "--server", self.server.base_url,
               "--token-file", str(self.server.data_dir / "tokens.json"), "--broker", self.mosquitto.url,
               "--site", self.server.site, "--device-id", device, "--terminal", "none", "--size", "800x500", *extra]
        self._spawn(device, cmd)

    def start_display(self, device: str, *extra: str, path: Path | None = None) -> None:
        """A door screen for r1 with a fake speaker; ``extra`` flags win (``--speaker espeak``), ``path`` goes
        first on its PATH (an ``aplay`` stand-in)."""
        cmd = [sys.executable, "-m", "clinicflow", "display", "--broker", self.mosquitto.url, "--site", self.server.site,
               "--rooms", "r1", "--layout", "door", "--device-id", device, "--speaker", "fake", "--size", "640x400",
               "--watchdog", "0", *extra]
        self._spawn(device, cmd, path)

    def _spawn(self, device: str, cmd: list[str], path: Path | None = None) -> None:
        self.cmds[device] = cmd
        self.paths[device] = path
        env = self.env(device)
        if path is not None:
            env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
        log = open(self.tmp / f"{device}.log", "ab")
        self.procs[device] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def log(self, device: str) -> str:
        return (self.tmp / f"{device}.log").read_text(errors="replace")[-3000:]

    def entry(self, device: str) -> dict:
        r = self.admin.get(f"/api/v1/fleet/{device}")
        return r.json() if r.status_code == 200 else {}

    def wait(self, device: str, predicate: Callable[[dict], bool], timeout: float = 20.0) -> dict:
        try:
            return until(lambda: self.entry(device), predicate, timeout)
        except AssertionError:
            raise AssertionError(f"{device}: {self.entry(device)}\n--- log ---\n{self.log(device)}") from None

    def command(self, device: str, command: str, **args) -> dict:
        r = self.admin.post(f"/api/v1/fleet/{device}/commands", json={"command": command, "args": args, "wait": 15})
        assert r.status_code == 200, r.text
        return r.json()["response"]

    def kill(self, device: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(device)
        os.killpg(proc.pid, sig)
        proc.wait(10)

    def restart(self, device: str) -> None:
        """Stop the device's process (SIGTERM, as systemd does) and start it again with the same command."""
        self.kill(device, signal.SIGTERM)
        self.start_again(device)

    def start_again(self, device: str) -> None:
        """Start a stopped or killed device with the command it had (same state folder)."""
        self._spawn(device, self.cmds[device], self.paths[device])

    def restart_server(self) -> None:
        """Stop the queue server (SIGTERM) and start it again on the same data, port and broker."""
        self.admin.close()
        self.server.stop()
        self.server.start()
        self.admin = self.server.client("admin")

    def publish(self, device: str, kind: str, payload: bytes, *, retain: bool = True) -> None:
        """Publish on one of the device's topics as anyone with broker access could (``b""`` retained: clear it)."""
        from clinicflow.mqtt import PahoMessageBus
        from protocol import topics

        with PahoMessageBus(self.mosquitto.url) as bus:
            assert bus.wait_connected(5)
            bus.publish(topics.device(self.server.site, device, kind), payload, retain=retain, qos=1).wait_for_publish(5)

    def retained_config(self, device: str, timeout: float = 2.0) -> dict | None:
        """What the broker holds retained on the device's config topic (None: nothing)."""
        import json
        import queue

        from clinicflow.mqtt import PahoMessageBus
        from protocol import topics

        got: queue.Queue[bytes] = queue.Queue()
        with PahoMessageBus(self.mosquitto.url) as bus:
            bus.subscribe(topics.device(self.server.site, device, "config"), lambda t, p, r: r and got.put(p))
            assert bus.wait_connected(5)
            try:
                payload = got.get(timeout=timeout)
            except queue.Empty:
                return None
        return json.loads(payload) if payload else None

    def stop(self) -> None:
        for device in list(self.procs):
            proc = self.procs.pop(device)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.admin.close()


@pytest.fixture
def fleet(tmp_path, mosquitto, cups_server, monkeypatch) -> Iterator[Fleet]:
    site = f"fleet{os.getpid() % 10000}{int(time.time() * 1000) % 100000}"
    data = tmp_path / "server"
    data.mkdir()
    DeviceRegistry(data / "devices.json").add(DeviceRecord(
        id="box-r1", role="button_box", site=site, rooms=("r1",), name="Room 1 desk buttons",
        token_sha256=token_hash("never-used")))
    monkeypatch.setenv("CLINICFLOW_FLEET_OFFLINE_GRACE", "0")  # page at once: the test kills a screen
    server = QueueServerProcess(data, mosquitto.url, site=site).start()
    fleet = Fleet(server, tmp_path, mosquitto, cups_server)
    try:
        yield fleet
    finally:
        fleet.stop()
        server.stop()


