"""The screen's health report: retained ``DeviceStatus`` plus availability birth and will.

Uses ``clinicflow.agent.DeviceAgent`` (the fleet helper's agent, which also takes remote config
and commands) when it is installed; otherwise ``StatusPublisher`` below publishes the same
``DeviceStatus`` so a screen is never unmonitored. Both share one interface: ``add_check``,
``add_detail``, ``publish_status_now``, ``start``, ``stop``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from protocol import topics
from protocol.payloads import DeviceStatus

log = logging.getLogger(__name__)

Scalar = str | int | float | bool | None


class StatusPublisher:
    """Publishes retained ``DeviceStatus`` on the device's status topic, now and every ``interval`` s."""

    def __init__(self, bus: Any, *, site: str, device_id: str, role: str, version: str, status_interval: float = 30.0) -> None:
        self.bus, self.site, self.device_id, self.role, self.version = bus, site, device_id, role, version
        self.interval = status_interval
        self.topic = topics.device(site, device_id, "status")
        self._checks: dict[str, Callable[[], bool]] = {}
        self._details: dict[str, Callable[[], Scalar]] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_check(self, name: str, fn: Callable[[], bool]) -> None:
        self._checks[name] = fn

    def add_detail(self, name: str, fn: Callable[[], Scalar]) -> None:
        self._details[name] = fn

    def status(self) -> DeviceStatus:
        def safe(fn: Callable[[], Any], default: Any) -> Any:
            try:
                return fn()
            except Exception:  # a probe's bug shows as a failed check, not a dead reporter
                log.exception("status probe failed")
                return default

        return DeviceStatus(
            ts=datetime.now(timezone.utc), device=self.device_id, role=self.role, version=self.version,
            uptime_s=round(time.monotonic() - self._started, 1),
            checks={n: bool(safe(f, False)) for n, f in self._checks.items()},
            details={n: safe(f, None) for n, f in self._details.items()},
        )

    def publish_status_now(self) -> None:
        if self.bus.connected:
            self.bus.publish(self.topic, self.status(), retain=True)

    def start(self) -> None:
        # Publish on every (re)connect: a restarted broker without persistence lost the retained status.
        self.bus.add_connection_listener(lambda up: up and self.publish_status_now())
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish_status_now()


def make_status_reporter(bus: Any, *, site: str, device_id: str, role: str, version: str,
                         status_interval: float = 30.0, settings: dict[str, Any] | None = None) -> Any:
    """``DeviceAgent`` when the fleet agent exists, else ``StatusPublisher`` (same methods)."""
    try:
        from clinicflow.agent import DeviceAgent
    except ImportError:
        log.info("clinicflow.agent not available: publishing status with display.health.StatusPublisher")
        return StatusPublisher(bus, site=site, device_id=device_id, role=role, version=version,
                               status_interval=status_interval)
    return DeviceAgent(bus, site=site, device_id=device_id, role=role, version=version, status_interval=status_interval,
                       settings=settings)
