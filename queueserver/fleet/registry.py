"""``FleetRegistry``: the server's live view of every device of a site, from MQTT alone.

Fed by the retained ``availability`` (birth/will) and ``status`` (``DeviceStatus``)
topics of ``clinicflow/v1/{site}/devices/+``, it knows for each device: online or
offline and since when, last seen, software version, printer paper, speech, power
(under-voltage), last screen refresh, and whether its last config push was refused.

Alerts (``protocol.Alert`` on the site's alerts topic, and kept for the fleet page):
- ``device_offline`` when a device has been offline for ``offline_grace`` seconds while
  the site is open (a reboot that comes back within the grace raises nothing);
- ``paper_out`` when a kiosk's printer runs out of paper.

It also sends commands and config pushes and collects the answers by transaction.
Callbacks arrive on the MQTT network thread; everything shared is under one lock.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from protocol import topics
from protocol.errors import ProtocolError
from protocol.payloads import Alert, DeviceCommand, DeviceResponse, DeviceStatus, decode_payload

log = logging.getLogger(__name__)

PAPER_STATES = ("ok", "low", "out")
REFRESH_DETAILS = ("last_render", "last_refresh", "last_heartbeat")


@dataclass
class DeviceHealth:
    """What the fleet page shows for one device."""

    device: str
    role: str | None = None
    online: bool | None = None
    since: datetime | None = None  # when ``online`` last changed
    last_seen: datetime | None = None
    version: str | None = None
    uptime_s: float | None = None
    printer_paper: str | None = None  # ok | low | out | None (no printer)
    speech_ok: bool | None = None
    under_voltage: bool | None = None
    last_refresh: str | None = None
    config_ok: bool | None = None
    config_error: str | None = None
    reboot_pending: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    offline_alerted: bool = False

    def problems(self, now: datetime, stale_after: timedelta, tz: tzinfo = timezone.utc) -> list[str]:
        """Plain sentences for what needs a technician, worst first (times in ``tz``)."""
        found = []
        if self.online is False:
            found.append(f"offline since {self.since.astimezone(tz):%H:%M}" if self.since else "offline")
        elif self.last_seen and now - self.last_seen > stale_after:
            found.append(f"no status for {int((now - self.last_seen).total_seconds() // 60)} min")
        if self.under_voltage:
            found.append("under-voltage: check the power supply")
        if self.printer_paper == "out":
            found.append("printer out of paper")
        elif self.printer_paper == "low":
            found.append("printer paper low")
        if self.speech_ok is False:
            found.append("speech not working")
        if self.config_ok is False:
            found.append(f"config refused: {self.config_error or 'see the device'}")
        failed = sorted(k for k, ok in self.checks.items() if not ok and k not in ("speech", "printer_paper", "config"))
        if failed:
            found.append(f"failed checks: {', '.join(failed)}")
        if self.reboot_pending:
            found.append("reboot pending (waiting for a patient to finish)")
        return found

    def to_json(self, now: datetime, stale_after: timedelta, tz: tzinfo = timezone.utc) -> dict[str, Any]:
        problems = self.problems(now, stale_after, tz)
        state = "offline" if self.online is False else ("unknown" if self.online is None else
                                                         ("warning" if problems else "ok"))
        return {
            "device": self.device, "role": self.role, "state": state, "online": self.online,
            "since": _iso(self.since), "last_seen": _iso(self.last_seen), "version": self.version,
            "uptime_s": self.uptime_s, "printer_paper": self.printer_paper, "speech_ok": self.speech_ok,
            "under_voltage": self.under_voltage, "last_refresh": self.last_refresh, "config_ok": self.config_ok,
            "config_error": self.config_error, "reboot_pending": self.reboot_pending, "problems": problems,
            "checks": dict(self.checks), "details": dict(self.details),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FleetRegistry:
    """Every device of ``site``, as its MQTT messages describe it (see the module docstring)."""

    def __init__(
        self,
        site: str,
        *,
        is_open: Callable[[datetime], bool] = lambda now: True,
        offline_grace: float = 60.0,
        stale_after: float = 180.0,
        check_interval: float = 5.0,
        clock: Callable[[], datetime] = _now,
        max_alerts: int = 200,
        tz: tzinfo = timezone.utc,
    ) -> None:
        self.site = topics.validate_id(site, "site")
        self.is_open = is_open
        self.offline_grace = timedelta(seconds=offline_grace)
        self.stale_after = timedelta(seconds=stale_after)
        self.check_interval = check_interval
        self.clock = clock
        self.tz = tz  # times in messages and problems are the site's local time
        self.bus: Any = None
        self._devices: dict[str, DeviceHealth] = {}
        self._alerts: list[Alert] = []
        self._max_alerts = max_alerts
        self._responses: dict[str, DeviceResponse] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------- lifecycle
    def attach(self, bus: Any) -> None:
        """Subscribe on ``bus`` (a ``PahoMessageBus``, started or not) and start the offline checker."""
        self.bus = bus
        bus.subscribe(topics.all_devices(self.site, "availability"), self._on_availability)
        bus.subscribe(topics.all_devices(self.site, "status"), self._on_status)
        bus.subscribe(topics.all_devices(self.site, "response"), self._on_response)
        if self.check_interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._check_loop, name="fleet-offline-check", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _check_loop(self) -> None:
        while not self._stop.wait(self.check_interval):
            try:
                self.check_offline()
            except Exception:
                log.exception("fleet offline check failed")

    # -------------------------------------------------------------- reading
    def devices(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            return [d.to_json(now, self.stale_after, self.tz) for d in sorted(self._devices.values(), key=lambda d: d.device)]

    def device(self, device_id: str) -> dict[str, Any] | None:
        with self._lock:
            health = self._devices.get(device_id)
            return health.to_json(self.clock(), self.stale_after, self.tz) if health else None

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.model_dump(mode="json") for a in reversed(self._alerts)]

    # ------------------------------------------------------------ messages
    def _entry(self, device_id: str) -> DeviceHealth:
        health = self._devices.get(device_id)
        if health is None:
            health = self._devices[device_id] = DeviceHealth(device_id)
        return health

    def _on_availability(self, topic: str, payload: bytes, retained: bool) -> None:
        match = topics.parse(topic)
        if match is None or match.device is None:
            return
        if not payload:  # retained availability cleared: the device was removed
            with self._lock:
                self._devices.pop(match.device, None)
            return
        text = payload.decode("utf-8", "replace").strip()
        if text not in (topics.ONLINE, topics.OFFLINE):
            log.warning("dropped availability %r on %s", text[:40], topic)
            return
        now = self.clock()
        with self._lock:
            health = self._entry(match.device)
            online = text == topics.ONLINE
            if health.online != online:
                health.since = now
                health.offline_alerted = False
            health.online = online
            if online:
                health.last_seen = now
        if text == topics.OFFLINE and not retained:
            self.check_offline()

    def _on_status(self, topic: str, payload: bytes, retained: bool) -> None:
        match = topics.parse(topic)
        if match is None or match.device is None or not payload:
            return
        try:
            status = decode_payload(DeviceStatus, payload)
        except ProtocolError as exc:
            log.warning("dropped status on %s: %s", topic, exc)
            return
        if status.device != match.device:
            log.warning("dropped status on %s: it names device %s", topic, status.device)
            return
        paper_alert = None
        with self._lock:
            health = self._entry(match.device)
            before = health.printer_paper
            health.role = status.role
            health.version = status.version
            health.uptime_s = status.uptime_s
            health.last_seen = status.ts if retained else self.clock()
            health.checks = dict(status.checks)
            health.details = dict(status.details)
            health.printer_paper = _paper(status)
            health.speech_ok = status.checks.get("speech")
            uv = status.details.get("under_voltage")
            health.under_voltage = uv if isinstance(uv, bool) else None
            health.last_refresh = next((_when(status.details[k]) for k in REFRESH_DETAILS if status.details.get(k)), None)
            health.config_ok = status.checks.get("config")
            error = status.details.get("config_error")
            health.config_error = str(error) if health.config_ok is False and error is not None else None
            health.reboot_pending = bool(status.details.get("reboot_pending"))
            if health.printer_paper == "out" and before != "out" and not retained:
                paper_alert = self._alert("paper_out", match.device, f"{_label(health)}: the ticket printer is out of paper")
        if paper_alert:
            self._publish_alert(paper_alert)

    def _on_response(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload:
            return
        try:
            response = decode_payload(DeviceResponse, payload)
        except ProtocolError as exc:
            log.warning("dropped response on %s: %s", topic, exc)
            return
        if response.transaction:
            with self._lock:
                self._responses[response.transaction] = response
                if len(self._responses) > 500:  # answers nobody asked for must not pile up
                    self._responses.pop(next(iter(self._responses)))
                self._lock.notify_all()

    # --------------------------------------------------------------- alerts
    def check_offline(self) -> list[Alert]:
        """Raise ``device_offline`` for devices offline past the grace while the site is open."""
        now = self.clock()
        raised = []
        with self._lock:
            if not self.is_open(now):
                return []
            for health in self._devices.values():
                if health.online is False and not health.offline_alerted and health.since is not None \
                        and now - health.since >= self.offline_grace:
                    health.offline_alerted = True
                    raised.append(self._alert("device_offline", health.device,
                                              f"{_label(health)} went offline at {health.since.astimezone(self.tz):%H:%M}"))
        for alert in raised:
            self._publish_alert(alert)
        return raised

    def _alert(self, kind: str, device: str, message: str) -> Alert:
        alert = Alert(id=f"{kind.split('_')[0]}-{uuid.uuid4().hex[:12]}", ts=self.clock(), kind=kind,  # type: ignore[arg-type]
                      device=device, message=message[:200])
        self._alerts.append(alert)
        del self._alerts[:-self._max_alerts]
        log.warning("fleet alert: %s", alert.message)
        return alert

    def _publish_alert(self, alert: Alert) -> None:
        if self.bus is not None:
            try:
                self.bus.publish(topics.alerts(self.site), alert, qos=1)
            except Exception:
                log.exception("could not publish fleet alert")

    # ---------------------------------------------------- commands, config
    def send_command(self, device_id: str, command: str, args: dict[str, Any] | None = None,
                     *, wait: float = 10.0) -> tuple[str, DeviceResponse | None]:
        """Send a command; return its transaction and the answer, or None if none came within ``wait``."""
        transaction = uuid.uuid4().hex[:16]
        message = DeviceCommand(command=command, transaction=transaction, args=args or {})
        self._require_bus().publish(topics.device(self.site, device_id, "command"), message, qos=1)
        return transaction, self.wait_response(transaction, wait)

    def push_config(self, device_id: str, settings: dict[str, Any], *, wait: float = 10.0) -> tuple[str, DeviceResponse | None]:
        """Publish ``settings`` (retained) as the device's config override, stamped with a new revision."""
        revision = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
        payload = json.dumps({**settings, "revision": revision}).encode()
        self._require_bus().publish(topics.device(self.site, device_id, "config"), payload, retain=True, qos=1)
        return revision, self.wait_response(revision, wait)

    def wait_response(self, transaction: str, timeout: float) -> DeviceResponse | None:
        with self._lock:
            self._lock.wait_for(lambda: transaction in self._responses, timeout)
            return self._responses.get(transaction)

    def _require_bus(self) -> Any:
        if self.bus is None:
            raise RuntimeError("the fleet registry is not connected to MQTT")
        return self.bus


def _paper(status: DeviceStatus) -> str | None:
    detail = status.details.get("printer_paper")
    if isinstance(detail, str) and detail in PAPER_STATES:
        return detail
    check = status.checks.get("printer_paper")
    if check is None:
        return None
    return "ok" if check else "out"


def _when(value: Any) -> str:
    """A refresh time as ISO text: devices send ISO strings or Unix seconds (``time.time()``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1e9:
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return str(value)


def _label(health: DeviceHealth) -> str:
    role = (health.role or "device").replace("_", " ")
    return f"{role.capitalize()} {health.device}"
