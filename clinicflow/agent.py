"""``DeviceAgent``: what makes a kiosk, call screen or button box manageable from afar.

Every device app creates one agent over its ``PahoMessageBus`` (whose birth/will is
the device's ``availability`` topic) and registers what it knows about itself::

    agent = DeviceAgent(bus, site="demo", device_id="hall-2", role="hall_board",
                        settings=device_config.settings_dict())
    agent.add_check("speech", lambda: speaker.healthy)   # True | False | None (nobody could tell)
    agent.add_detail("last_render", lambda: view_model.last_render_iso)
    agent.on_config(apply_settings_live, live={"rooms", "languages"})   # raise ValueError to refuse
    agent.on_command("test_announcement", lambda args: announce_test(args))
    agent.set_busy(lambda: session.active)        # a reboot waits while this is true
    agent.start()

The agent then
- publishes a retained ``DeviceStatus`` every ``status_interval`` seconds, on every
  (re)connect and on ``publish_status_now()``; a check that answers None (the part could
  not be asked) is left out of ``checks`` and named in the detail ``unknown_checks``, so
  nobody reads "ok" for something nobody checked; the detail ``commands`` lists the
  commands this device answers (the fleet page offers only those);
- listens on the retained ``config`` topic: a push is a JSON object of ``[settings]``
  keys merged over the file's settings, validated (``config.schema.validate_settings``)
  and handed to every ``on_config`` callback; a bad push is refused, the old settings
  stay, and the refusal is reported on ``response`` and in the status (check ``config``).
  Keys a push changes that no callback applies live are answered as ``restart_needed``
  (response data and status detail): the device uses them after its next start (the
  accepted settings are kept in ``state_file`` and read back at start, also by the app
  through ``settings_in_force``); keys the app declared ``unused`` are answered ``not_used``;
- answers ``DeviceCommand``s on ``response`` with ``{status: ok|error, data, error,
  transaction}`` through a dispatch table. Built-ins: ``self_test`` (runs every check
  afresh, or the hook registered under that name), ``reload``, ``reboot`` (waits while
  ``set_busy``'s predicate is true) and ``status``; apps add ``test_announcement``,
  ``screenshot``...; ``update`` (A/B release with automatic rollback, ``clinicflow.update``)
  when the device runs from an app root.

Threading: MQTT callbacks arrive on paho's thread and are handed to one worker thread,
so config pushes and commands run one at a time, in order, and a slow self-test never
stalls the network loop. Callbacks that touch a UI must hop to its thread themselves
(Kivy: ``Clock.schedule_once``). ``reboot`` waits in its own thread.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from clinicflow import __version__
from config.schema import ConfigError, validate_settings
from protocol import topics
from protocol.errors import ProtocolError
from protocol.payloads import DeviceCommand, DeviceResponse, DeviceStatus, decode_payload

log = logging.getLogger(__name__)

Scalar = str | int | float | bool | None
CommandHandler = Callable[[dict[str, Any]], dict[str, Any] | None]
"""Takes the command's ``args``; returns the response ``data``; raises to answer ``status: error``."""

# Well-known names the fleet registry reads (docs/technicians.md lists them).
CHECK_CONFIG = "config"
CHECK_SPEECH = "speech"
CHECK_PRINTER_PAPER = "printer_paper"
DETAIL_UNDER_VOLTAGE = "under_voltage"
DETAIL_LAST_RENDER = "last_render"
DETAIL_PRINTER_PAPER = "printer_paper"

BUILTIN_COMMANDS = ("self_test", "reload", "reboot", "status")
DETAIL_UNKNOWN_CHECKS = "unknown_checks"
DETAIL_COMMANDS = "commands"
DETAIL_RESTART_NEEDED = "restart_needed"
Check = Callable[[], "bool | None"]


class MessageBus(Protocol):
    """The part of ``PahoMessageBus`` the agent uses."""

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes, bool], None], *, qos: int = 1) -> None: ...
    def publish(self, topic: str, payload: Any, *, retain: bool = False, qos: int = 1) -> Any: ...
    def add_connection_listener(self, listener: Callable[[bool], None]) -> None: ...


def notify_systemd(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``...) to systemd when run as a notify unit; False otherwise."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", state, exc)
        return False


def read_under_voltage(hwmon_root: Path = Path("/sys/class/hwmon")) -> bool | None:
    """True while a Raspberry Pi reports under-voltage (the ``rpi_volt`` hwmon alarm); None where there is none."""
    try:
        for hwmon in hwmon_root.iterdir():
            name = hwmon / "name"
            if name.exists() and name.read_text().strip() == "rpi_volt":
                return (hwmon / "in0_lcrit_alarm").read_text().strip() == "1"
    except OSError:
        return None
    return None


STATE_ENV = "CLINICFLOW_STATE_DIR"


def state_file_for(device_id: str) -> Path | None:
    """Where a device keeps its last accepted config push: ``$CLINICFLOW_STATE_DIR``, else
    ``./clinicflow-state`` on a provisioned device (``$CLINICFLOW_CONFIG`` set: the unit's
    writable working directory), else nowhere (a developer's run)."""
    directory = os.environ.get(STATE_ENV) or ("clinicflow-state" if os.environ.get("CLINICFLOW_CONFIG") else None)
    return Path(directory) / f"{device_id}-config.json" if directory else None


def settings_in_force(config: Any) -> Any:
    """A device file's ``Settings`` with its last accepted push merged over them (what the app starts with).

    Keys a push changed that the app cannot apply live (``restart_needed``) take effect here.
    """
    path = state_file_for(config.device.id)
    if path is None or not path.exists():
        return config.settings
    try:
        pushed = json.loads(path.read_text(encoding="utf-8"))["settings"]
        return validate_settings(config.device.role, {**config.settings_dict(), **pushed})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignored the saved config %s: %s", path, exc)
        return config.settings


def _systemctl_reboot() -> None:
    # The clinicflow user may reboot through the polkit rule installed by `clinicflow provision`.
    subprocess.run(["systemctl", "reboot"], check=False, timeout=30)


class DeviceAgent:
    """Status, remote configuration and commands for one device over MQTT (see the module docstring)."""

    def __init__(
        self,
        bus: MessageBus,
        *,
        site: str,
        device_id: str,
        role: str,
        version: str = __version__,
        status_interval: float = 30.0,
        settings: dict[str, Any] | None = None,
        reboot: Callable[[], None] = _systemctl_reboot,
        reboot_max_wait: float = 900.0,
        busy_poll: float = 0.5,
        hwmon_root: Path = Path("/sys/class/hwmon"),
        state_file: Path | None | Literal["auto"] = "auto",
        updater: Any = "auto",
    ) -> None:
        self.bus = bus
        self.site = topics.validate_id(site, "site")
        self.device_id = topics.validate_id(device_id, "device")
        self.role = role
        self.version = version
        self.status_interval = status_interval
        self._base_settings = dict(settings or {})
        # The file's settings are the starting point; a file that does not validate is the app's
        # start-up problem (config.loader reports it), so keep it as given rather than refuse here.
        try:
            self._settings: dict[str, Any] = validate_settings(role, self._base_settings).model_dump(mode="json")
        except ConfigError:
            self._settings = dict(self._base_settings)
        self._config_revision: Scalar = None
        self._config_error: str | None = None
        self._pushed_keys: frozenset[str] = frozenset()
        self._state_file = state_file_for(self.device_id) if state_file == "auto" else (Path(state_file) if state_file else None)
        self._load_state()
        self._live_keys: set[str] = set()
        self._pushed_here = False  # a push was applied by this process (not only loaded from state_file)
        self._unused_keys: set[str] = set()
        self._restart_needed: set[str] = set()
        self._checks: dict[str, Check] = {}
        self._details: dict[str, Callable[[], Any]] = {}
        self._config_callbacks: list[Callable[[dict[str, Any]], None]] = []
        self._refreshers: list[Callable[[], None]] = []
        self._commands: dict[str, CommandHandler] = {
            "self_test": self._self_test,
            "reload": self._reload,
            "reboot": self._reboot_refused_here,  # replaced by the threaded path in _dispatch
            "status": self._status_command,
        }
        self._busy: Callable[[], bool] = lambda: False
        self._reboot_action = reboot
        self._reboot_max_wait = reboot_max_wait
        self._busy_poll = busy_poll
        self._reboot_pending = False
        self._hwmon_root = hwmon_root
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"agent-{device_id}")
        self._status_thread: threading.Thread | None = None
        self._app_heartbeat = False
        self._last_heartbeat: str | None = None
        self._started = False
        # A/B updates when the device runs from an app root ($CLINICFLOW_APP_ROOT): clinicflow.update.
        if updater == "auto":
            from clinicflow.update import Updater

            updater = Updater.from_environment()
        self.updater = updater

    # ----------------------------------------------------------- registration
    def add_check(self, name: str, fn: Check) -> None:
        """A health check shown as ok/failed in the status (``speech``, ``printer_paper``...); None = unknown."""
        self._checks[topics.validate_id(name, "check name")] = fn

    def add_detail(self, name: str, fn: Callable[[], Any]) -> None:
        """A value shown in the status (``last_render``, ``last_call_id``...); non-scalars are sent as text."""
        self._details[topics.validate_id(name, "detail name")] = fn

    def on_config(self, apply: Callable[[dict[str, Any]], None], *, live: set[str] | frozenset[str] = frozenset(),
                  unused: set[str] | frozenset[str] = frozenset()) -> None:
        """Register a callback that applies validated settings live; raise ValueError to refuse them.

        ``live``: the settings keys this callback applies at once; ``unused``: keys this kind of
        device has no use for (answered as ``not_used``). A push that changes any other key is
        accepted and answered with ``restart_needed`` for it (the app reads it at its next start
        through ``settings_in_force``).
        """
        self._config_callbacks.append(apply)
        self._live_keys |= set(live)
        self._unused_keys |= set(unused)

    def on_command(self, name: str, handler: CommandHandler) -> None:
        """Answer command ``name`` with ``handler(args) -> data``; replaces a built-in of that name."""
        self._commands[topics.validate_id(name, "command name")] = handler

    def set_busy(self, predicate: Callable[[], bool]) -> None:
        """While ``predicate()`` is true (a patient mid-session), a ``reboot`` command waits."""
        self._busy = predicate

    @property
    def settings(self) -> dict[str, Any]:
        """The settings in force: the file's, or the last accepted push merged over them."""
        with self._lock:
            return dict(self._settings)

    @property
    def pushed_keys(self) -> frozenset[str]:
        """The settings keys the push in force named (the rest come from the file or the schema's defaults).

        A callback that must not apply a default the file never asked for (``volume``) checks this.
        """
        return self._pushed_keys

    @property
    def named_keys(self) -> frozenset[str]:
        """The settings keys the device file or the push in force named (pushes merge over the file):
        a setting like ``volume`` applies when one of them asked for it, never as the schema's default."""
        return frozenset(self._base_settings) | self._pushed_keys

    def asked_for(self, settings: dict[str, Any], key: str, otherwise: Any) -> Any:
        """``settings[key]`` when the file or the push in force named it, else ``otherwise`` (not the schema's default)."""
        return settings[key] if key in self.named_keys else otherwise

    @property
    def restart_needed(self) -> list[str]:
        """Accepted settings keys that take effect only after the app restarts."""
        return sorted(self._restart_needed)

    @property
    def config_error(self) -> str | None:
        """Why the last config push was refused, or None if it was accepted (or none came)."""
        return self._config_error

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Subscribe to config and commands and start publishing status. The bus may be started before or after."""
        if self._started:
            return
        self._started = True
        if self.updater is not None:
            self.updater.attach(self)
        self.bus.subscribe(topics.device(self.site, self.device_id, "config"), self._on_config_message)
        self.bus.subscribe(topics.device(self.site, self.device_id, "command"), self._on_command_message)
        self.bus.add_connection_listener(self._on_connection)
        if getattr(self.bus, "connected", False):  # the bus connected before we listened: say hello now
            self._submit(self._publish_when_subscribed)
        self._status_thread = threading.Thread(target=self._status_loop, name=f"status-{self.device_id}", daemon=True)
        self._status_thread.start()
        notify_systemd("READY=1")

    def stop(self) -> None:
        """Stop the status loop and the worker (pending work is dropped). Idempotent; does not stop the bus."""
        self._stop.set()
        if self._status_thread and self._status_thread is not threading.current_thread():
            self._status_thread.join(5)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def heartbeat(self) -> None:
        """Call from the app's main loop (e.g. a Kivy Clock interval): pings systemd's watchdog and records the time.

        Until the app calls this once, the agent's own loop pings the watchdog, so a unit
        with ``WatchdogSec=`` still runs; once the app calls it, a stalled main loop stops
        the pings and systemd restarts the process.
        """
        self._app_heartbeat = True
        self._last_heartbeat = _now().isoformat()
        notify_systemd("WATCHDOG=1")

    # ----------------------------------------------------------------- status
    def build_status(self) -> DeviceStatus:
        """The status as it would be published now (runs every check and detail)."""
        checks: dict[str, bool] = {}
        unknown: list[str] = []
        for name, fn in list(self._checks.items()):
            try:
                result = fn()
            except Exception:  # a broken check is a failed check, never a dead agent
                log.exception("check %s failed", name)
                result = False
            if result is None:
                unknown.append(name)
            else:
                checks[name] = bool(result)
        checks[CHECK_CONFIG] = self._config_error is None
        details: dict[str, Scalar] = {}
        for name, fn in list(self._details.items()):
            try:
                details[name] = _scalar(fn())
            except Exception:
                log.exception("detail %s failed", name)
                details[name] = None
        under_voltage = read_under_voltage(self._hwmon_root)
        if under_voltage is not None:
            details.setdefault(DETAIL_UNDER_VOLTAGE, under_voltage)
        details["config_revision"] = self._config_revision
        details["config_error"] = self._config_error[:200] if self._config_error else None
        details["reboot_pending"] = self._reboot_pending
        details[DETAIL_UNKNOWN_CHECKS] = ",".join(sorted(unknown)) or None
        details[DETAIL_COMMANDS] = ",".join(sorted(self._commands))
        details[DETAIL_RESTART_NEEDED] = ",".join(self.restart_needed) or None
        if self._last_heartbeat:
            details.setdefault("last_heartbeat", self._last_heartbeat)
        return DeviceStatus(ts=_now(), device=self.device_id, role=self.role, version=self.version,
                            uptime_s=round(time.monotonic() - self._started_at, 1), checks=checks, details=details)

    def publish_status_now(self) -> DeviceStatus:
        """Publish the retained status at once (e.g. right after the printer ran out of paper)."""
        with self._publish_lock:  # build and send as one: from two threads, an older status must not land last
            status = self.build_status()
            self.bus.publish(topics.device(self.site, self.device_id, "status"), status, retain=True, qos=1)
        return status

    def _status_loop(self) -> None:
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        tick = min(self.status_interval, watchdog_usec / 2e6) if watchdog_usec else self.status_interval
        next_status = time.monotonic() + self.status_interval
        while not self._stop.wait(tick):
            if watchdog_usec and not self._app_heartbeat:
                notify_systemd("WATCHDOG=1")
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + self.status_interval
                self._safely(self.publish_status_now)

    def _on_connection(self, connected: bool) -> None:
        if connected and not self._stop.is_set():
            self._submit(self._publish_when_subscribed)

    def _publish_when_subscribed(self) -> None:
        # The link is up before the broker acknowledged our subscriptions; checks such as
        # "broker" read the bus's connected flag, so wait for it rather than report a false failure.
        wait = getattr(self.bus, "wait_connected", None)
        if callable(wait):
            wait(5)
        self.publish_status_now()

    # ----------------------------------------------------------------- config
    def _on_config_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload:  # the retained config was cleared: keep what we have
            return
        self._submit(self._handle_config, payload)

    def _handle_config(self, payload: bytes) -> None:
        revision: Scalar = None
        try:
            try:
                data = json.loads(payload)
            except (UnicodeDecodeError, ValueError) as exc:
                raise ConfigError(f"config is not JSON ({exc}). Fix: publish a JSON object of settings keys") from None
            if not isinstance(data, dict):
                raise ConfigError("config must be a JSON object of settings keys, e.g. {\"rooms\": [\"r3\"]}")
            revision = _scalar(data.pop("revision", None))
            if self._pushed_here and revision is not None and revision == self._config_revision:
                # The server put back the config we already run after we refused a newer one
                # (see FleetRegistry): nothing to apply, and the refusal stays shown until the next push.
                return
            merged = {**self._base_settings, **data}
            settings = validate_settings(self.role, merged).model_dump(mode="json")
            before, before_keys = self.settings, self._pushed_keys
            self._pushed_keys = frozenset(data)  # what callbacks see as "named by the push" while they run
            try:
                self._apply(settings)
            except (ValueError, ConfigError):
                self._pushed_keys = before_keys
                raise
        except (ValueError, ConfigError) as exc:
            self._config_error = str(exc)
            log.warning("refused config push (revision %s): %s", revision, exc)
            self._respond("config", str(revision) if revision is not None else None, error=str(exc),
                          data={"revision": revision, "kept": self.settings})
            self.publish_status_now()  # the fleet page shows the refusal now, not at the next periodic status
        else:
            changed = {k for k in settings if settings.get(k) != before.get(k)}
            with self._lock:
                self._settings = settings
                self._restart_needed |= changed - self._live_keys - self._unused_keys
            self._config_error = None
            self._config_revision = revision
            self._pushed_here = True
            self._save_state(data)
            log.info("applied config revision %s", revision)
            self._respond("config", str(revision) if revision is not None else None,
                          data={"revision": revision, "settings": settings, "restart_needed": self.restart_needed,
                                "not_used": sorted(changed & self._unused_keys)})
        self._safely(self.publish_status_now)

    def _load_state(self) -> None:
        """Start from the last accepted push (kept by ``_save_state``) when it still validates over the file."""
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            saved = json.loads(self._state_file.read_text(encoding="utf-8"))
            merged = {**self._base_settings, **saved["settings"]}
            self._settings = validate_settings(self.role, merged).model_dump(mode="json")
            self._config_revision = _scalar(saved.get("revision"))
            self._pushed_keys = frozenset(saved["settings"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignored the saved config %s: %s", self._state_file, exc)

    def _save_state(self, pushed: dict[str, Any]) -> None:
        if self._state_file is None:
            return
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_file.with_name(self._state_file.name + ".tmp")
            tmp.write_text(json.dumps({"revision": self._config_revision, "settings": pushed}), encoding="utf-8")
            os.replace(tmp, self._state_file)
        except OSError as exc:
            log.warning("could not keep the accepted config in %s: %s", self._state_file, exc)

    def _apply(self, settings: dict[str, Any]) -> None:
        """Hand settings to every callback; if one refuses, give the earlier ones the old settings back."""
        old = self.settings
        done: list[Callable[[dict[str, Any]], None]] = []
        for callback in self._config_callbacks:
            try:
                callback(dict(settings))
            except Exception as exc:
                for applied in done:
                    self._safely(applied, dict(old))
                if isinstance(exc, ValueError):
                    raise
                log.exception("config callback failed")
                raise ValueError(f"the device could not apply it: {exc}") from None
            done.append(callback)

    # --------------------------------------------------------------- commands
    def _on_command_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload:  # someone cleared a retained command: nothing to do
            return
        if retained:  # a stale retained command (someone published with retain) must not reboot us at boot
            log.warning("ignored a retained command on %s", topic)
            return
        try:
            command = decode_payload(DeviceCommand, payload)
        except ProtocolError as exc:
            transaction = _transaction_of(payload)
            log.warning("dropped malformed command on %s: %s", topic, exc)
            if transaction is not None:
                self._respond("unknown", transaction, error=f"malformed command: {exc}")
            return
        if command.command == "reboot" and self._commands.get("reboot") == self._reboot_refused_here:
            self._start_reboot(command)  # waits in its own thread so other commands still get answers
            return
        self._submit(self._run_command, command)

    def _run_command(self, command: DeviceCommand) -> None:
        handler = self._commands.get(command.command)
        if handler is None:
            known = ", ".join(sorted(self._commands))
            self._respond(command.command, command.transaction, error=f"unknown command {command.command!r}; this device knows {known}")
            return
        try:
            data = handler(dict(command.args)) or {}
        except Exception as exc:
            log.warning("command %s (%s) failed: %s", command.command, command.transaction, exc)
            self._respond(command.command, command.transaction, error=str(exc) or type(exc).__name__,
                          data=getattr(exc, "data", {}) or {})
            return
        self._respond(command.command, command.transaction, data=data)

    def _self_test(self, args: dict[str, Any]) -> dict[str, Any]:
        for refresh in list(self._refreshers):  # probes that cache between statuses ask the hardware again
            self._safely(refresh)
        status = self.publish_status_now()  # the fleet page shows what the self-test found
        failed = sorted(name for name, ok in status.checks.items() if not ok)
        unknown = sorted(filter(None, str(status.details.get(DETAIL_UNKNOWN_CHECKS) or "").split(",")))
        data = {"checks": status.checks, "unknown": unknown, "details": status.details}
        if failed:
            raise CommandFailed(f"failed checks: {', '.join(failed)}", data=data)
        return data

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Something ``self_test`` runs before the checks (e.g. ``hardware.health.PeriodicProbe.refresh``)."""
        self._refreshers.append(refresh)

    def _reload(self, args: dict[str, Any]) -> dict[str, Any]:
        settings = self.settings
        self._apply(settings)
        self._safely(self.publish_status_now)
        return {"settings": settings}

    def _reboot_refused_here(self, args: dict[str, Any]) -> dict[str, Any]:
        raise CommandFailed("reboot is handled by the agent's reboot thread")

    def _status_command(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.publish_status_now().model_dump(mode="json")

    def _start_reboot(self, command: DeviceCommand) -> None:
        with self._lock:
            if self._reboot_pending:
                self._respond("reboot", command.transaction, error="a reboot is already pending")
                return
            self._reboot_pending = True
        threading.Thread(target=self._reboot_when_idle, args=(command,), name=f"reboot-{self.device_id}",
                         daemon=True).start()

    def _reboot_when_idle(self, command: DeviceCommand) -> None:
        started = time.monotonic()
        force = bool(command.args.get("force", False))
        waited_for_session = False
        self._safely(self.publish_status_now)
        while not force and self._is_busy():
            waited_for_session = True
            if time.monotonic() - started > self._reboot_max_wait:
                log.warning("reboot: still busy after %.0f s; rebooting anyway", self._reboot_max_wait)
                break
            if self._stop.wait(self._busy_poll):
                self._reboot_pending = False
                return
        waited = round(time.monotonic() - started, 2)
        log.warning("rebooting on command %s after waiting %.1f s", command.transaction, waited)
        info = self._respond("reboot", command.transaction,
                             data={"waited_s": waited, "waited_for_session": waited_for_session})
        try:
            if info is not None and hasattr(info, "wait_for_publish"):
                info.wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        try:
            self._reboot_action()
        finally:
            self._reboot_pending = False

    def _is_busy(self) -> bool:
        try:
            return bool(self._busy())
        except Exception:  # a broken predicate must not block a reboot forever; the max wait still applies
            log.exception("busy predicate failed")
            return True

    # ---------------------------------------------------------------- helpers
    def _respond(self, command: str, transaction: str | None, *, data: dict[str, Any] | None = None,
                 error: str | None = None) -> Any:
        response = DeviceResponse(ts=_now(), device=self.device_id, command=command if _is_ident(command) else "unknown",
                                  transaction=transaction, status="error" if error else "ok",
                                  data=_jsonable(data or {}), error=error[:1000] if error else None)
        return self._safely(self.bus.publish, topics.device(self.site, self.device_id, "response"), response, qos=1)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._stop.is_set():
            return
        try:
            self._worker.submit(self._safely, fn, *args)
        except RuntimeError:  # shut down meanwhile
            pass

    @staticmethod
    def _safely(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            log.exception("agent task %s failed", getattr(fn, "__name__", fn))
            return None


class CommandFailed(Exception):
    """Raise from a command handler to answer ``status: error`` with ``data`` alongside the message."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))


def _is_ident(value: str) -> bool:
    try:
        topics.validate_id(value)
        return True
    except ValueError:
        return False


def _transaction_of(payload: bytes) -> str | None:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    transaction = data.get("transaction") if isinstance(data, dict) else None
    return transaction if isinstance(transaction, str) and 0 < len(transaction) <= 64 else None
