"""Start an MQTT broker for the demo and the tests: a real Mosquitto where installed, else embedded amqtt."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Poll until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class MosquittoBroker:
    """A private Mosquitto on a loopback port with a generated config, stopped by PID.

    ``extra_config`` lines are appended (listeners with TLS, password and ACL files...);
    by default it allows anonymous clients on ``127.0.0.1:port`` and keeps nothing on disk.
    """

    def __init__(self, port: int | None = None, *, workdir: Path | None = None, extra_config: str | None = None,
                 default_listener: bool = True, binary: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clinicflow-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.pid_path = self.workdir / "mosquitto.pid"
        self.log_path = self.workdir / "mosquitto.log"
        self.default_listener = default_listener
        self.extra_config = extra_config or ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())

    def write_config(self) -> Path:
        lines = [f"pid_file {self.pid_path}", "persistence false", f"log_dest file {self.log_path}",
                 "log_type error", "log_type warning", "log_type notice", "per_listener_settings false",
                 "set_tcp_nodelay true"]  # else each small message can wait ~40 ms for a delayed ACK
        if os.geteuid() == 0:
            # As root Mosquitto drops to the 'mosquitto' user, which cannot write our private temp dir.
            lines.append("user root")
        if self.default_listener:
            lines += [f"listener {self.port} {self.host}", "allow_anonymous true"]
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config + "\n")
        return self.config_path

    def start(self, timeout: float = 10.0) -> "MosquittoBroker":
        self.write_config()
        # Run in the foreground under our own Popen so the PID is ours to stop, never the system broker's.
        self._process = subprocess.Popen([self.binary, "-c", str(self.config_path)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for_port(self.host, self.port, timeout):
            err = b""
            if self._process.poll() is not None and self._process.stderr:
                err = self._process.stderr.read()
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}: {err.decode(errors='replace')}"
                               f" {self.log_path.read_text() if self.log_path.exists() else ''}")
        log.info("started mosquitto pid %s on %s", self._process.pid, self.url)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        """Stop our broker by its PID (SIGTERM, then SIGKILL). Idempotent."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port (retained messages are lost: persistence is off)."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedBroker:
    """amqtt running in a background thread: the fallback where no Mosquitto is installed (MQTT 3.1.1 only)."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._thread: threading.Thread | None = None
        self._loop = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "EmbeddedBroker":
        import asyncio

        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._broker = Broker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or not wait_for_port(self.host, self.port, timeout):
            raise RuntimeError("embedded amqtt broker did not start")
        log.info("started embedded amqtt broker on %s", self.url)
        return self

    def stop(self) -> None:
        import asyncio

        if self._loop and self._broker:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:  # shutting down anyway
                log.debug("amqtt shutdown raised", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop = self._broker = None


def start_demo_broker(port: int | None = None) -> MosquittoBroker | EmbeddedBroker:
    """The demo's broker: Mosquitto if installed, else embedded amqtt; logs which one it used."""
    if MosquittoBroker.available():
        broker: MosquittoBroker | EmbeddedBroker = MosquittoBroker(port).start()
        log.warning("demo broker: mosquitto at %s", broker.url)
    else:
        broker = EmbeddedBroker(port).start()
        log.warning("demo broker: embedded amqtt at %s (mosquitto not installed)", broker.url)
    return broker
