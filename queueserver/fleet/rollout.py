"""``Rollout``: an application release sent to a device group in waves, halted at the first device that fails.

    rollout = Rollout(registry, version="0.2.0", url=".../releases/0.2.0/", devices=["kiosk-1", "kiosk-2", "kiosk-3"],
                      first=1, health_timeout=120).start()
    rollout.to_json()     # state running | done | halted, and each device's result

Wave one is the first ``first`` devices (one kiosk); the rest follow only once every device
of the wave runs the new version and has confirmed it healthy (update state ``ok``). A device
that refuses the release, fails to install it, or rolls it back halts the rollout: the rest
keep the release they run. ``first=0`` sends to everybody at once.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

ANSWER_WAIT = 300.0  # seconds a device may take to download and install before it answers


class Rollout:
    """One release's way through a device group (see the module docstring)."""

    def __init__(self, registry: Any, *, version: str, url: str, devices: list[str], first: int = 1,
                 health_timeout: float = 120.0, poll: float = 0.5) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.registry = registry
        self.version, self.url = version, url
        self.health_timeout = health_timeout
        self.poll = poll
        self.waves = [devices[:first], devices[first:]] if 0 < first < len(devices) else [list(devices)]
        self.state = "running"
        self.reason: str | None = None
        self.results: dict[str, str] = {d: "waiting" for d in devices}
        self.started = datetime.now(timezone.utc)
        self.finished: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"rollout-{version}", daemon=True)

    def start(self) -> "Rollout":
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "state": self.state, "reason": self.reason,
                "waves": [list(w) for w in self.waves], "devices": dict(self.results),
                "started": self.started.isoformat(), "finished": self.finished.isoformat() if self.finished else None}

    # ------------------------------------------------------------------ the waves
    def _run(self) -> None:
        try:
            for wave in self.waves:
                if not self._wave(wave):
                    return
            self._finish("done", None)
        except Exception as exc:  # the rollout thread must say why it stopped, not just vanish
            log.exception("rollout of %s failed", self.version)
            self._finish("halted", f"the rollout itself failed: {exc}")

    def _wave(self, wave: list[str]) -> bool:
        sent = {}
        for device in wave:
            self.results[device] = "sent"
            sent[device] = self.registry.send_command(
                device, "update", {"version": self.version, "url": self.url, "health_timeout": self.health_timeout},
                wait=0)[0]
        for device, transaction in sent.items():
            answer = self.registry.wait_response(transaction, ANSWER_WAIT)
            if answer is None or answer.status != "ok":
                why = "no answer" if answer is None else answer.error
                self.results[device] = f"failed: {why}"
                self._finish("halted", f"{device} did not install {self.version}: {why}")
                return False
            self.results[device] = "running already" if answer.data.get("already_running") else "on trial"
        deadline = time.monotonic() + self.health_timeout + 60  # the trial plus a restart
        pending = set(wave)
        while pending:
            for device in sorted(pending):
                found = self.registry.device(device) or {}
                if found.get("version") == self.version and found.get("update_state") in ("ok", "idle", None) \
                        and self.results[device] == "running already":
                    pending.discard(device)
                elif found.get("version") == self.version and found.get("update_state") == "ok":
                    self.results[device] = "updated"
                    pending.discard(device)
                elif found.get("update_state") in ("rolled_back", "failed"):
                    self.results[device] = f"{found['update_state'].replace('_', ' ')}: {found.get('update_detail')}"
                    self._finish("halted", f"{device} did not take {self.version} "
                                           f"({found.get('update_detail') or found['update_state']}); the rest keep theirs")
                    return False
            if pending and time.monotonic() > deadline:
                for device in pending:
                    self.results[device] = "no confirmation"
                self._finish("halted", f"{', '.join(sorted(pending))} never confirmed {self.version}")
                return False
            time.sleep(self.poll)
        return True

    def _finish(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason
        self.finished = datetime.now(timezone.utc)
        for device, result in self.results.items():
            if result == "waiting" and state == "halted":
                self.results[device] = "not sent (rollout halted)"
        (log.warning if state == "halted" else log.info)("rollout of %s %s%s", self.version, state,
                                                         f": {reason}" if reason else "")
