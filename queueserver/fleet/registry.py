"""``FleetRegistry``: the server's live view of every device of a site, from MQTT alone.

Fed by the retained ``availability`` (birth/will) and ``status`` (``DeviceStatus``)
topics of ``clinicflow/v1/{site}/devices/+``, it knows for each device: online or
offline and since when, last seen, software version, ticket printer (paper ok / low /
out, cover open), report printer (CUPS state), speech output, power (under-voltage),
disk free, SD-card errors, temperature, last screen refresh, the commands it answers,
and whether its last config push was refused or needs a restart. ``known`` (the
provisioning registry, ``devices.json``) adds every registered device, so one that never
connected is listed as "never connected" rather than missing. A value nobody could check
is "unknown", never "ok".

Alerts (``protocol.Alert`` on the site's alerts topic, and kept for the fleet page as a
history: each is marked ``resolved_at`` when the device recovers):
- ``device_offline`` when a device has been offline for ``offline_grace`` seconds while
  the site is open (a reboot that comes back within the grace raises nothing);
- ``paper_out`` when a kiosk's printer runs out of paper.

It also sends commands and config pushes and collects the answers by transaction. The
retained ``config`` topic always holds the last config the device accepted: when a
device refuses a push (at once, or later when it comes back online), the registry
publishes the previous accepted one again (or clears the topic when there was none).
The last ``screenshot`` answer of each device is kept as PNG bytes.

With a ``history`` (``queueserver.fleet.history.FleetHistory``, the queue store) the alert
history and each device's last accepted config survive a restart of the server: they are
loaded at start and written through when they change. An alert already open (before the
restart, or raised by another server process on the same database) is not raised again.
Callbacks arrive on the MQTT network thread; everything shared is under one lock (store
writes happen outside it).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol import topics
from protocol.errors import ProtocolError
from protocol.payloads import Alert, DeviceCommand, DeviceResponse, DeviceStatus, decode_payload

if TYPE_CHECKING:
    from queueserver.fleet.history import FleetHistory

log = logging.getLogger(__name__)

PAPER_STATES = ("ok", "low", "out", "unknown")
REFRESH_DETAILS = ("last_render", "last_refresh", "last_heartbeat")


@dataclass
class DeviceHealth:
    """What the fleet page shows for one device."""

    device: str
    role: str | None = None
    name: str = ""
    registered: bool = False  # in the provisioning registry (devices.json)
    online: bool | None = None
    since: datetime | None = None  # when ``online`` last changed
    last_seen: datetime | None = None
    version: str | None = None
    uptime_s: float | None = None
    printer_paper: str | None = None  # ok | low | out | unknown | None (no printer)
    printer_detail: str | None = None
    report_printer: str | None = None  # idle | processing | stopped | unreachable | None (none fitted)
    report_printer_ok: bool | None = None
    report_printer_detail: str | None = None
    speech: str | None = None  # ok | failing | unknown | None (no speaker)
    under_voltage: bool | None = None
    last_refresh: str | None = None
    config_ok: bool | None = None
    config_error: str | None = None
    restart_needed: list[str] = field(default_factory=list)
    reboot_pending: bool = False
    commands: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    offline_alerted: bool = False
    screenshot_at: datetime | None = None
    update_state: str | None = None  # idle | downloading | installing | trial | ok | rolled_back | failed
    update_detail: str | None = None

    @property
    def speech_ok(self) -> bool | None:
        return {"ok": True, "failing": False}.get(self.speech or "")

    def problems(self, now: datetime, stale_after: timedelta, tz: tzinfo = timezone.utc) -> list[str]:
        """Plain sentences for what needs a technician, worst first (times in ``tz``)."""
        found = []
        if self.online is None and self.last_seen is None and self.registered:
            found.append("never connected: check its power, network and broker credentials")
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
        if self.checks.get("ticket_printer") is False and self.printer_paper != "out":
            found.append(f"ticket printer: {self.printer_detail or 'not ready'}")
        if self.report_printer_ok is False:
            found.append(f"report printer: {self.report_printer_detail or self.report_printer or 'not ready'}")
        if self.speech == "failing":
            found.append("speech not working" + (f": {self.details['speech_output_detail']}"
                                                 if self.details.get("speech_output_detail") else ""))
        for name, sentence in (("free_disk", "disk nearly full"), ("filesystem_errors", "SD card errors"),
                               ("cpu_temperature", "too hot")):
            if self.checks.get(name) is False:
                found.append(f"{sentence}: {self.details.get(name + '_detail') or self.details.get(name)}")
        if self.config_ok is False:
            found.append(f"config refused: {self.config_error or 'see the device'}")
        if self.restart_needed:
            found.append(f"restart needed to apply: {', '.join(self.restart_needed)}")
        shown = ("speech", "speech_output", "printer_paper", "config", "ticket_printer", "report_printer",
                 "under_voltage", "free_disk", "filesystem_errors", "cpu_temperature")
        failed = sorted(k for k, ok in self.checks.items() if not ok and k not in shown)
        if failed:
            found.append(f"failed checks: {', '.join(failed)}")
        if self.reboot_pending:
            found.append("reboot pending (waiting for a patient to finish)")
        if self.update_state in ("rolled_back", "failed"):
            found.append(f"update {self.update_state.replace('_', ' ')}: {self.update_detail or 'see the device'}")
        return found

    def state(self, problems: list[str]) -> str:
        if self.online is None:
            return "never connected" if self.last_seen is None and self.registered else "unknown"
        if self.online is False:
            return "offline"
        return "warning" if problems else "ok"

    def to_json(self, now: datetime, stale_after: timedelta, tz: tzinfo = timezone.utc) -> dict[str, Any]:
        problems = self.problems(now, stale_after, tz)
        return {
            "device": self.device, "role": self.role, "name": self.name, "registered": self.registered,
            "state": self.state(problems), "online": self.online,
            "since": _iso(self.since), "last_seen": _iso(self.last_seen), "version": self.version,
            "uptime_s": self.uptime_s, "printer_paper": self.printer_paper, "printer_detail": self.printer_detail,
            "report_printer": self.report_printer, "report_printer_ok": self.report_printer_ok,
            "report_printer_detail": self.report_printer_detail,
            "speech": self.speech, "speech_ok": self.speech_ok,
            "under_voltage": self.under_voltage, "free_disk_mb": _number(self.details.get("free_disk")),
            "filesystem_errors": _number(self.details.get("filesystem_errors")),
            "cpu_temperature": _number(self.details.get("cpu_temperature")),
            "last_refresh": self.last_refresh, "config_ok": self.config_ok,
            "config_error": self.config_error, "restart_needed": list(self.restart_needed),
            "reboot_pending": self.reboot_pending, "problems": problems, "commands": list(self.commands),
            "checks": dict(self.checks), "unknown": list(self.unknown), "details": dict(self.details),
            "screenshot_at": _iso(self.screenshot_at),
            "update_state": self.update_state, "update_detail": self.update_detail,
        }


@dataclass
class AlertRecord:
    """One fleet alert as the page keeps it: the alert, and when the device recovered (None: still open)."""

    alert: Alert
    resolved_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.alert.model_dump(mode="json"), "resolved_at": _iso(self.resolved_at),
                "resolved": self.resolved_at is not None}


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
        certificates: Sequence[Path] = (),
        known: Callable[[], list[Any]] | None = None,
        history: "FleetHistory | None" = None,
    ) -> None:
        self.site = topics.validate_id(site, "site")
        self.certificates = list(certificates)  # broker certificates to warn about 30 days before they end
        self._certificate_alerted: set[str] = set()
        self._next_certificate_check = 0.0
        self.is_open = is_open
        self.offline_grace = timedelta(seconds=offline_grace)
        self.stale_after = timedelta(seconds=stale_after)
        self.check_interval = check_interval
        self.clock = clock
        self.tz = tz  # times in messages and problems are the site's local time
        self.bus: Any = None
        self.known = known  # -> records with .id, .role, .site, .name (config.registry.DeviceRegistry.all)
        self._devices: dict[str, DeviceHealth] = {}
        self._alerts: list[AlertRecord] = []
        self._config_payloads: dict[str, dict[str, bytes]] = {}  # device -> revision -> payload seen retained
        self._accepted_config: dict[str, bytes] = {}  # device -> the last payload it accepted
        self._screenshots: dict[str, bytes] = {}
        self._max_alerts = max_alerts
        self.history = history
        if history is not None:  # what the page showed before a restart
            self._alerts = history.alerts()[-max_alerts:]
            self._accepted_config = history.accepted_configs()
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
        bus.subscribe(topics.all_devices(self.site, "config"), self._on_config)
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
                if time.monotonic() >= self._next_certificate_check:
                    self._next_certificate_check = time.monotonic() + 3600
                    self.check_certificates()
            except Exception:
                log.exception("fleet offline check failed")

    # -------------------------------------------------------------- reading
    def _merge_known(self) -> None:
        """Add every registered device of this site (a device that never connected is listed too)."""
        if self.known is None:
            return
        try:
            records = [r for r in self.known() if r.site == self.site]
        except Exception:  # an unreadable devices.json must not take the page down
            log.exception("could not read the device registry")
            return
        with self._lock:
            for record in records:
                health = self._entry(record.id)
                health.registered = True
                health.name = record.name or health.name
                health.role = health.role or record.role

    def devices(self) -> list[dict[str, Any]]:
        self._merge_known()
        now = self.clock()
        with self._lock:
            return [self._json(d, now) for d in sorted(self._devices.values(), key=lambda d: d.device)]

    def device(self, device_id: str) -> dict[str, Any] | None:
        self._merge_known()
        with self._lock:
            health = self._devices.get(device_id)
            return self._json(health, self.clock()) if health else None

    def _json(self, health: DeviceHealth, now: datetime) -> dict[str, Any]:
        """The device's entry, with the config it last accepted: ``accepted_config`` {revision, settings} or None."""
        entry = health.to_json(now, self.stale_after, self.tz)
        payload = self._accepted_config.get(health.device)
        try:
            settings = json.loads(payload) if payload else None
        except (UnicodeDecodeError, ValueError):
            settings = None
        if isinstance(settings, dict):
            entry["accepted_config"] = {"revision": _text(settings.pop("revision", None)), "settings": settings}
        else:
            entry["accepted_config"] = None
        return entry

    def alerts(self) -> list[dict[str, Any]]:
        """Every kept alert, newest first, each with ``resolved_at`` (None while it is still open)."""
        with self._lock:
            return [a.to_json() for a in reversed(self._alerts)]

    def screenshot(self, device_id: str) -> bytes | None:
        """The PNG of the device's last ``screenshot`` answer, or None."""
        with self._lock:
            return self._screenshots.get(device_id)

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
        if not payload:  # retained availability cleared: the device was removed (a registered one stays listed)
            with self._lock:
                self._devices.pop(match.device, None)
            return
        text = payload.decode("utf-8", "replace").strip()
        if text not in (topics.ONLINE, topics.OFFLINE):
            log.warning("dropped availability %r on %s", text[:40], topic)
            return
        now = self.clock()
        resolved: list[AlertRecord] = []
        with self._lock:
            health = self._entry(match.device)
            online = text == topics.ONLINE
            if health.online != online:
                health.since = now
                health.offline_alerted = False
            health.online = online
            if online:
                health.last_seen = now
                resolved = self._resolve(match.device, "device_offline", now)
        self._keep_resolved(resolved)
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
        resolved: list[AlertRecord] = []
        accepted_now: bytes | None = None
        with self._lock:
            health = self._entry(match.device)
            before = health.printer_paper
            health.role = status.role
            health.version = status.version
            health.uptime_s = status.uptime_s
            health.last_seen = status.ts if retained else self.clock()
            health.checks = dict(status.checks)
            health.details = dict(status.details)
            health.unknown = [u for u in str(status.details.get("unknown_checks") or "").split(",") if u]
            health.printer_paper = _paper(status, health.unknown)
            health.printer_detail = _text(status.details.get("ticket_printer_detail"))
            report = _text(status.details.get("report_printer"))
            health.report_printer = None if report == "none" else report
            health.report_printer_ok = status.checks.get("report_printer")
            health.report_printer_detail = _text(status.details.get("report_printer_detail"))
            health.speech = _speech(status, health.unknown)
            health.commands = [c for c in str(status.details.get("commands") or "").split(",") if c]
            health.restart_needed = [k for k in str(status.details.get("restart_needed") or "").split(",") if k]
            health.update_state = _text(status.details.get("update_state"))
            health.update_detail = _text(status.details.get("update_detail"))
            uv = status.details.get("under_voltage")
            health.under_voltage = uv if isinstance(uv, bool) else None
            health.last_refresh = next((_when(status.details[k]) for k in REFRESH_DETAILS if status.details.get(k)), None)
            health.config_ok = status.checks.get("config")
            error = status.details.get("config_error")
            health.config_error = str(error) if health.config_ok is False and error is not None else None
            health.reboot_pending = bool(status.details.get("reboot_pending"))
            if health.printer_paper == "out" and before != "out" and not retained:
                paper_alert = self._alert("paper_out", match.device, f"{_label(health)}: the ticket printer is out of paper")
            elif health.printer_paper != "out":
                resolved = self._resolve(match.device, "paper_out", self.clock())
            accepted = status.details.get("config_revision")
            if accepted is not None and health.config_ok is not False:
                seen = self._config_payloads.get(match.device, {}).get(str(accepted))
                if seen is not None and self._accepted_config.get(match.device) != seen:
                    self._accepted_config[match.device] = accepted_now = seen
        self._keep_resolved(resolved)
        if accepted_now is not None:
            self._keep_accepted(match.device, accepted_now)
        if paper_alert and self._keep_alert(paper_alert):
            self._publish_alert(paper_alert)

    def _on_response(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload:
            return
        try:
            response = decode_payload(DeviceResponse, payload)
        except ProtocolError as exc:
            log.warning("dropped response on %s: %s", topic, exc)
            return
        match = topics.parse(topic)
        device = match.device if match is not None and match.device else response.device
        if response.command == "config":
            self._config_answered(device, response)
        if response.command == "screenshot" and response.status == "ok":
            response = self._keep_screenshot(device, response)
        if response.transaction:
            with self._lock:
                self._responses[response.transaction] = response
                if len(self._responses) > 500:  # answers nobody asked for must not pile up
                    self._responses.pop(next(iter(self._responses)))
                self._lock.notify_all()

    # --------------------------------------------------- config retention
    def _on_config(self, topic: str, payload: bytes, retained: bool) -> None:
        match = topics.parse(topic)
        if match is None or match.device is None:
            return
        revision = _revision_of(payload)
        with self._lock:
            if not payload:
                self._config_payloads.pop(match.device, None)
                return
            if revision is not None:
                seen = self._config_payloads.setdefault(match.device, {})
                seen[revision] = payload
                while len(seen) > 20:
                    seen.pop(next(iter(seen)))

    def _config_answered(self, device: str, response: DeviceResponse) -> None:
        """Keep the retained config the last accepted one: a refusal puts the previous accepted payload back."""
        revision = response.transaction
        changed = False
        with self._lock:
            payload = self._config_payloads.get(device, {}).get(revision or "")
            if response.status == "ok":
                changed = payload is not None and self._accepted_config.get(device) != payload
                if payload is not None:
                    self._accepted_config[device] = payload
            previous = self._accepted_config.get(device)
        if response.status == "ok":
            if changed and payload is not None:
                self._keep_accepted(device, payload)
            return
        if self.bus is None or payload is None:
            return  # not a push this registry has seen retained: nothing of ours to undo
        log.warning("device %s refused config %s; the retained config goes back to %s", device, revision,
                    _revision_of(previous) if previous else "none (the device's file)")
        try:
            self.bus.publish(topics.device(self.site, device, "config"), previous or b"", retain=True, qos=1)
        except Exception:
            log.exception("could not restore %s's accepted config", device)

    def _keep_screenshot(self, device: str, response: DeviceResponse) -> DeviceResponse:
        encoded = response.data.get("png_base64")
        if not isinstance(encoded, str):
            return response
        try:
            png = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            log.warning("dropped a screenshot from %s: not base64", device)
            return response
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            log.warning("dropped a screenshot from %s: not a PNG", device)
            return response
        with self._lock:
            self._screenshots[device] = png
            self._entry(device).screenshot_at = self.clock()
        data = {k: v for k, v in response.data.items() if k != "png_base64"}
        return response.model_copy(update={"data": {**data, "png_bytes": len(png)}})

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
                    alert = self._alert("device_offline", health.device,
                                        f"{_label(health)} went offline at {health.since.astimezone(self.tz):%H:%M}")
                    if alert is not None:
                        raised.append(alert)
        raised = [alert for alert in raised if self._keep_alert(alert)]
        for alert in raised:
            self._publish_alert(alert)
        return raised

    def check_certificates(self) -> list[Alert]:
        """Raise ``certificate_expiring`` once per certificate that ends within 30 days."""
        from config.tls import expiry_warning

        raised = []
        for path in self.certificates:
            try:
                message = expiry_warning(path, now=self.clock())
            except (OSError, ValueError) as exc:
                message = f"cannot read the broker certificate {path}: {exc}"
            if message and message not in self._certificate_alerted:
                self._certificate_alerted.add(message)
                with self._lock:
                    alert = self._alert("certificate_expiring", "broker", message)
                if alert is not None:
                    raised.append(alert)
        raised = [alert for alert in raised if self._keep_alert(alert)]
        for alert in raised:
            self._publish_alert(alert)
        return raised

    def _alert(self, kind: str, device: str, message: str) -> Alert | None:
        """A new alert in the history (called under the lock); None when one is open already (kept from
        before a restart): one alert per outage."""
        message = message[:200]
        for record in self._alerts:
            if record.resolved_at is None and record.alert.device == device and record.alert.kind == kind \
                    and (kind != "certificate_expiring" or record.alert.message == message):
                return None
        alert = Alert(id=f"{kind.split('_')[0]}-{uuid.uuid4().hex[:12]}", ts=self.clock(), kind=kind,  # type: ignore[arg-type]
                      device=device, message=message)
        self._alerts.append(AlertRecord(alert))
        del self._alerts[:-self._max_alerts]
        log.warning("fleet alert: %s", alert.message)
        return alert

    def _resolve(self, device: str, kind: str, when: datetime) -> list[AlertRecord]:
        """Mark the device's open alerts of ``kind`` resolved (called under the lock); returns them."""
        resolved = []
        for record in self._alerts:
            if record.resolved_at is None and record.alert.device == device and record.alert.kind == kind:
                record.resolved_at = when
                resolved.append(record)
        return resolved

    # ------------------------------------------------------ kept in the store
    def _keep_alert(self, alert: Alert) -> bool:
        """Store a new alert; False when another server process had stored it already (its record replaces ours)."""
        if self.history is None:
            return True
        try:
            existing = self.history.add_alert(alert)
        except Exception:  # the page still shows it; the next restart will not
            log.exception("could not keep fleet alert %s in the store", alert.id)
            return True
        if existing is None:
            return True
        with self._lock:
            self._alerts = [existing if r.alert.id == alert.id else r for r in self._alerts
                            if r.alert.id != existing.alert.id or r.alert.id == alert.id]
        return False

    def _keep_resolved(self, records: list[AlertRecord]) -> None:
        if self.history is not None and records:
            try:
                self.history.resolve(records)
            except Exception:
                log.exception("could not keep the resolution of fleet alerts in the store")

    def _keep_accepted(self, device: str, payload: bytes) -> None:
        if self.history is not None:
            try:
                self.history.accept_config(device, payload, self.clock())
            except Exception:
                log.exception("could not keep %s's accepted config in the store", device)

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


def _paper(status: DeviceStatus, unknown: list[str]) -> str | None:
    """ok | low | out | unknown, or None when the device has no ticket printer."""
    for key in ("ticket_printer", "printer_paper"):
        detail = status.details.get(key)
        if isinstance(detail, str) and detail in PAPER_STATES:
            return detail
        if detail == "none":
            return None
    if "printer_paper" in unknown or "ticket_printer" in unknown:
        return "unknown"
    check = status.checks.get("printer_paper")
    if check is None:
        return "unknown" if status.role == "kiosk" else None
    return "ok" if check else "out"


def _speech(status: DeviceStatus, unknown: list[str]) -> str | None:
    """ok | failing | unknown, or None for a device without a speaker."""
    if "speech" in unknown:
        return "unknown"
    check = status.checks.get("speech")
    if check is None:
        return None
    return "ok" if check else "failing"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _revision_of(payload: bytes | None) -> str | None:
    try:
        data = json.loads(payload or b"")
    except (UnicodeDecodeError, ValueError):
        return None
    revision = data.get("revision") if isinstance(data, dict) else None
    return str(revision) if revision is not None else None


def _when(value: Any) -> str:
    """A refresh time as ISO text: devices send ISO strings or Unix seconds (``time.time()``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1e9:
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return str(value)


def _label(health: DeviceHealth) -> str:
    role = (health.role or "device").replace("_", " ")
    return f"{role.capitalize()} {health.device}"
