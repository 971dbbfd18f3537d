"""Health probes a Raspberry Pi in a hospital needs, for the device status and ``clinicflow selftest``.

Each probe returns a ``Probe``: ``ok`` True/False, or None with a detail saying it is
"unavailable on this machine" (a laptop, a container, CI): a probe never raises.

* ``under_voltage``: the firmware's throttling flags (``vcgencmd get_throttled``, or the
  same word in sysfs): bit 16 "under-voltage has occurred since boot", bit 0 "now". A Pi
  with a weak power supply corrupts its SD card; once since boot is worth a technician's visit.
* ``filesystem_errors``: the ext4 error counter of the root filesystem
  (``/sys/fs/ext4/<dev>/errors_count``) and whether the kernel remounted it read-only.
* ``cpu_temperature``: ``/sys/class/thermal`` (the ``cpu-thermal`` zone when there is one);
  ok below 80 °C (the Pi starts throttling at 80-85 °C).
* ``free_disk``: ok with at least 500 MB and 5 % free (logs and the phrase cache grow).
* ``printer_paper``: a ``TicketPrinter``'s or ``ReportPrinter``'s paper.
* ``ticket_printer`` / ``report_printer``: the ESC/POS real-time status (paper near-end,
  paper out, cover open) and the CUPS queue's state, as the fleet page shows them.

``PeriodicProbe`` runs a probe at start and then every ``interval`` seconds in its own
thread, so the device status (built every 30 s and on every event) reads a fresh value
without waiting on a printer or a sound card; ``refresh()`` asks again at once (remote
self-test). ``attach_to_agent`` reports a probe that cannot tell as *unknown*, never ok.

Roots and commands are parameters so the probes can be tested against a recorded sysfs tree.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable on this machine"
TEMP_LIMIT_C = 80.0
MIN_FREE_BYTES = 500 * 1024 * 1024
MIN_FREE_FRACTION = 0.05

# get_throttled bits (Raspberry Pi firmware)
_UV_NOW, _THROTTLED_NOW, _UV_SINCE_BOOT, _THROTTLED_SINCE_BOOT = 1 << 0, 1 << 2, 1 << 16, 1 << 18


@dataclass(frozen=True)
class Probe:
    """One health check: ``ok`` None means the machine cannot tell (see ``detail``)."""

    name: str
    ok: bool | None
    value: str | int | float | bool | None = None
    detail: str = ""

    @property
    def available(self) -> bool:
        return self.ok is not None


def _run_vcgencmd(*args: str) -> str | None:
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def under_voltage(*, vcgencmd: Callable[..., str | None] = _run_vcgencmd,
                  sys_root: Path = Path("/sys")) -> Probe:
    """Has the supply dropped below 4.63 V since boot (the firmware's sticky flag)?"""
    word: int | None = None
    out = vcgencmd("get_throttled")
    if out and "=" in out:
        try:
            word = int(out.split("=", 1)[1], 16)
        except ValueError:
            word = None
    if word is None:
        firmware = sys_root / "devices/platform/soc/soc:firmware/get_throttled"
        try:
            word = int(firmware.read_text().strip(), 16)
        except (OSError, ValueError):
            word = None
    if word is None:
        try:  # newer kernels: the rpi_volt hwmon alarm (only "now", not "since boot")
            for hwmon in (sys_root / "class/hwmon").iterdir():
                if (hwmon / "name").read_text().strip() == "rpi_volt":
                    alarm = (hwmon / "in0_lcrit_alarm").read_text().strip() == "1"
                    return Probe("under_voltage", not alarm, alarm,
                                 "under-voltage now" if alarm else "supply ok now (history not available)")
        except OSError:
            pass
        return Probe("under_voltage", None, None, UNAVAILABLE)
    since_boot = bool(word & _UV_SINCE_BOOT)
    detail = "under-voltage now" if word & _UV_NOW else ("under-voltage occurred since boot: check the power supply"
                                                         if since_boot else "supply ok since boot")
    return Probe("under_voltage", not (since_boot or word & _UV_NOW), since_boot, detail)


def _root_device(proc_root: Path) -> tuple[str, str, list[str]] | None:
    """(device name, fs type, mount options) of "/" from mountinfo."""
    try:
        lines = (proc_root / "self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 6 and fields[4] == "/":
            fstype, source = right.split()[:2]
            return Path(source).name, fstype, fields[5].split(",")
    return None


def filesystem_errors(*, proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> Probe:
    """Errors the kernel counted on the root filesystem (a failing SD card shows here first)."""
    root = _root_device(proc_root)
    if root is None:
        return Probe("filesystem_errors", None, None, UNAVAILABLE)
    dev, fstype, options = root
    if "ro" in options:
        return Probe("filesystem_errors", False, None, "the root filesystem is read-only (remounted after errors?)")
    if fstype != "ext4":
        return Probe("filesystem_errors", None, None, f"{UNAVAILABLE} (root is {fstype}, not ext4)")
    try:
        count = int((sys_root / "fs/ext4" / dev / "errors_count").read_text().strip())
    except (OSError, ValueError):
        return Probe("filesystem_errors", None, None, f"{UNAVAILABLE} (no error counter for {dev})")
    return Probe("filesystem_errors", count == 0, count,
                 "no filesystem errors" if count == 0 else f"{count} filesystem errors: replace the SD card soon")


def cpu_temperature(*, sys_root: Path = Path("/sys"), limit_c: float = TEMP_LIMIT_C) -> Probe:
    """The CPU's temperature in °C."""
    zones = sorted((sys_root / "class/thermal").glob("thermal_zone*")) if (sys_root / "class/thermal").exists() else []
    chosen = None
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip()
        except OSError:
            continue
        if kind in ("cpu-thermal", "cpu_thermal", "x86_pkg_temp") or chosen is None:
            chosen = zone
            if kind.startswith("cpu"):
                break
    if chosen is None:
        return Probe("cpu_temperature", None, None, UNAVAILABLE)
    try:
        celsius = int((chosen / "temp").read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return Probe("cpu_temperature", None, None, UNAVAILABLE)
    ok = celsius < limit_c
    return Probe("cpu_temperature", ok, round(celsius, 1),
                 f"{celsius:.1f} °C" + ("" if ok else f" (over {limit_c:.0f} °C: check ventilation)"))


def free_disk(path: str | os.PathLike[str] = "/", *, min_bytes: int = MIN_FREE_BYTES,
              min_fraction: float = MIN_FREE_FRACTION) -> Probe:
    """Free space where clinicflow writes."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return Probe("free_disk", None, None, UNAVAILABLE)
    free_mb = usage.free // (1024 * 1024)
    ok = usage.free >= min_bytes and usage.free >= usage.total * min_fraction
    return Probe("free_disk", ok, free_mb, f"{free_mb} MB free ({usage.free * 100 // max(1, usage.total)} %)")


def printer_paper(printer: Any | None) -> Probe:
    """Paper in a ticket or report printer (anything with ``status()`` returning ``.paper``)."""
    if printer is None:
        return Probe("printer_paper", None, None, "no printer configured")
    try:
        status = printer.status()
    except Exception as exc:  # a port's status() should not raise, but a probe never does
        return Probe("printer_paper", False, None, f"printer status failed: {exc}")
    paper = getattr(status.paper, "value", str(status.paper))
    if paper == "unknown":
        return Probe("printer_paper", None if getattr(status, "online", True) else False, paper,
                     status.detail or "this printer cannot report its paper")
    ok = paper != "out" and bool(getattr(status, "online", True))
    return Probe("printer_paper", ok, paper, {"ok": "paper ok", "low": "paper low: refill soon",
                                              "out": "out of paper"}.get(paper, paper))


def _ask_status(name: str, part: Any | None, what: str, failed_value: str) -> Any:
    """``part.status()``, or the Probe to report instead (no such part, or asking it failed)."""
    if part is None:
        return Probe(name, None, "none", f"no {what} configured")
    try:
        return part.status()
    except Exception as exc:  # a port's status() should not raise, but a probe never does
        return Probe(name, False, failed_value, f"{what} status failed: {exc}")


def ticket_printer(printer: Any | None) -> Probe:
    """A receipt printer's real-time status: ``value`` is the paper (ok/low/out/unknown), ok False when it cannot print."""
    status = _ask_status("ticket_printer", printer, "ticket printer", "unknown")
    if isinstance(status, Probe):
        return status
    paper = getattr(status.paper, "value", str(status.paper))
    if not status.online:
        return Probe("ticket_printer", False, paper, status.detail or "printer offline")
    if paper == "unknown":
        return Probe("ticket_printer", None, paper, status.detail or "this printer cannot report its status")
    return Probe("ticket_printer", paper != "out", paper,
                 {"ok": "ready", "low": "paper near its end: refill soon", "out": "out of paper"}.get(paper, paper))


def report_printer(printer: Any | None) -> Probe:
    """A CUPS report printer: ``value`` is the queue state (idle/processing/stopped/unreachable)."""
    status = _ask_status("report_printer", printer, "report printer", "unreachable")
    if isinstance(status, Probe):
        return status
    paper = getattr(status.paper, "value", str(status.paper))
    why = status.message or ", ".join(status.reasons) or ("" if status.accepting else "not accepting jobs")
    detail = f"{status.state}" + (f", paper {paper}" if paper not in ("ok", "unknown") else "") + (f": {why}" if why else "")
    return Probe("report_printer", bool(status.ok), status.state, detail)


class PeriodicProbe:
    """A probe run at start and every ``interval`` s in a thread; ``latest`` is the last result (see the module docstring)."""

    def __init__(self, probe: Callable[[], Probe], *, interval: float = 60.0, name: str = "probe") -> None:
        self._probe = probe
        self.interval = interval
        self._lock = threading.Lock()
        self._latest = self._run()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(target=self._loop, name=f"probe-{name}", daemon=True)
            self._thread.start()

    def _run(self) -> Probe:
        try:
            return self._probe()
        except Exception as exc:  # a probe never raises; a buggy one is a failed one
            log.exception("probe failed")
            return Probe("probe", False, None, f"probe failed: {exc}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def refresh(self) -> Probe:
        """Probe again now (blocks for the probe's own time) and keep the result."""
        result = self._run()
        with self._lock:
            self._latest = result
        return result

    @property
    def latest(self) -> Probe:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._stop.set()


def all_probes(*, printer: Any | None = None, disk_path: str = "/") -> list[Probe]:
    """Every probe, in the order a technician reads them."""
    return [under_voltage(), filesystem_errors(), cpu_temperature(), free_disk(disk_path), printer_paper(printer)]


def attach_to_agent(agent: Any, *, printer: Any | None = None, disk_path: str = "/") -> None:
    """Report the probes in a ``clinicflow.agent.DeviceAgent``'s status: a check each (None = unknown), a detail each.

    Also ``<name>_detail`` with the probe's sentence, for the fleet page.
    """
    probes: dict[str, Callable[[], Probe]] = {
        "under_voltage": under_voltage,
        "filesystem_errors": filesystem_errors,
        "cpu_temperature": cpu_temperature,
        "free_disk": lambda: free_disk(disk_path),
    }
    if printer is not None:
        probes["printer_paper"] = lambda: printer_paper(printer)
    for name, probe in probes.items():
        attach_probe(agent, name, probe)


def attach_probe(agent: Any, name: str, probe: Callable[[], Probe]) -> None:
    """One probe as check ``name`` (its ``ok``), detail ``name`` (its value) and ``name_detail`` (its sentence)."""
    agent.add_check(name, lambda: probe().ok)
    agent.add_detail(name, lambda: probe().value)
    agent.add_detail(f"{name}_detail", lambda: probe().detail or None)
