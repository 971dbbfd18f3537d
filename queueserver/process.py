"""Run a real ``clinicflow server`` as a subprocess: the test fixture, the demo and the benchmarks use this.

``QueueServerProcess(data_dir, broker_url).start()`` waits until HTTP answers and MQTT is
connected, then reads the role tokens from ``data_dir/tokens.json``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clinicflow.broker import free_port

ROOT = Path(__file__).resolve().parent.parent


class QueueServerProcess:
    """One ``clinicflow server`` subprocess (see the module docstring)."""

    def __init__(self, data_dir: Path, broker_url: str, *, site: str = "demo", hospital: str | Path | None = None,
                 db: str | None = None, extra_args: list[str] | None = None, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.broker_url = broker_url
        self.site = site
        self.hospital = hospital
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.db_path = self.data_dir / "queue.sqlite3"
        self.db = db or str(self.db_path)
        self.extra_args = list(extra_args or [])
        self.log_path = self.data_dir / "server.log"
        self.tokens: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line: nothing secret in it (the broker URL and database URL go in ``environment``)."""
        cmd = [sys.executable, "-m", "clinicflow", "server", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--site", self.site, "--log-level", "warning"]
        if self.hospital:
            cmd += ["--hospital", str(self.hospital)]
        return cmd + self.extra_args

    def start(self, timeout: float = 20.0) -> "QueueServerProcess":
        """Start (or restart after kill/stop) and wait until HTTP answers and MQTT is connected."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2) as http:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"clinicflow server exited with {self._proc.returncode}:\n{self.log_tail()}")
                try:
                    health = http.get("/api/v1/health").json()
                    if health.get("mqtt_connected") or self.broker_url == "none":
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"clinicflow server not ready in {timeout} s:\n{self.log_tail()}")
                time.sleep(0.05)
        entries = json.loads((self.data_dir / "tokens.json").read_text())
        self.tokens = {name: e["token"] for name, e in entries.items()}
        return self

    def environment(self) -> dict[str, str]:
        """The server's environment: the broker and database URLs (which may hold passwords) are here,
        readable only by the server's own user, not on its command line (``/proc/PID/cmdline``)."""
        return dict(os.environ, PYTHONUNBUFFERED="1", CLINICFLOW_BROKER=self.broker_url, CLINICFLOW_DB=self.db)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as in a crash or power cut: no shutdown code runs."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown: MQTT says offline)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def client(self, token_name: str | None = "kiosk", **kwargs: object) -> httpx.Client:
        """An httpx client for this server with ``token_name``'s bearer token (None: no token)."""
        headers = {"Authorization": f"Bearer {self.tokens[token_name]}"} if token_name else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)
