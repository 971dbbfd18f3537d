"""A private CUPS scheduler for report-printing tests: own config, spool, socket and port.

``cups_server`` starts ``cupsd -f`` with every directory in a temp folder, listening on a
Unix socket and a free loopback port, so it neither needs nor touches a system cupsd.
Its backend directory holds ``cups-pdf`` and ``cfsim``, a wrapper that plays a real
printer's paper sensor: while the test has "taken the paper out" it reports
``STATE: +media-empty-error`` and exits with CUPS_BACKEND_STOP, exactly as a printer
backend does, so the scheduler really stops the queue; otherwise it hands the job to
cups-pdf, which writes the PDF into the fixture's ``out_dir``.

cups-pdf reads its configuration only from ``/etc/cups`` (compiled in), so the fixture
writes one instance file ``/etc/cups/cups-pdf-<instance>.conf`` with a unique name
(the system's own ``cups-pdf.conf`` is not touched) and removes it when it stops.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinicflow.broker import free_port

CUPS_LIB = Path("/usr/lib/cups")
CUPS_PDF_PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd")
CUPS_PDF_CONF_DIR = Path("/etc/cups")

_SIM_BACKEND = """#!/bin/sh
# cfsim: a printer with a paper sensor, in front of cups-pdf (clinicflow tests).
if [ $# -eq 0 ]; then echo 'direct cfsim "Unknown" "clinicflow simulated printer"'; exit 0; fi
if [ -e "{flag}" ]; then
  echo "STATE: +media-empty-error" >&2
  echo "ERROR: Out of paper" >&2
  exit 4
fi
echo "STATE: -media-empty-error" >&2
if [ -e "{slow}" ]; then sleep 30; fi
DEVICE_URI="cups-pdf:/{instance}" exec {cups_pdf} "$@"
"""


class PrivateCups:
    """A running private cupsd: ``.socket``, ``.port``, ``.out_dir``, ``.printer`` and ``.paper_out(bool)``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = str(root / "cups.sock")
        self.port = free_port()
        self.out_dir = root / "out"
        self.instance = f"cftest{uuid.uuid4().hex[:8]}"
        self.instance_conf = CUPS_PDF_CONF_DIR / f"cups-pdf-{self.instance}.conf"
        self.flag = root / "paper-out"
        self.slow_flag = root / "jammed"
        self.printer = "Reports"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- set-up ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        r = self.root
        for d in ("etc/ppd", "spool/tmp", "cache", "state/certs", "log", "tmp", "out", "lib/backend"):
            (r / d).mkdir(parents=True, exist_ok=True)
        # Filters run as user lp: everything they touch must be reachable by it.
        for d in [r, *(p for p in r.rglob("*") if p.is_dir())]:
            d.chmod(0o777 if d.name in ("tmp", "out") else 0o755)
        lib = r / "lib"
        for sub in ("filter", "daemon", "cgi-bin", "monitor", "notifier", "driver"):
            if (CUPS_LIB / sub).exists() and not (lib / sub).exists():
                (lib / sub).symlink_to(CUPS_LIB / sub)
        sim = lib / "backend" / "cfsim"
        sim.write_text(_SIM_BACKEND.format(flag=self.flag, slow=self.slow_flag, instance=self.instance,
                                           cups_pdf=CUPS_LIB / "backend" / "cups-pdf"))
        sim.chmod(0o700)  # mode 0700 + owner root: cupsd runs it as root, as cups-pdf needs
        (r / "cups-files.conf").write_text(f"""
ServerRoot {r}/etc
RequestRoot {r}/spool
CacheDir {r}/cache
StateDir {r}/state
TempDir {r}/tmp
ServerBin {lib}
AccessLog {r}/log/access_log
ErrorLog {r}/log/error_log
PageLog {r}/log/page_log
Printcap {r}/printcap
User lp
Group lp
SystemGroup root
FileDevice No
Sandboxing Relaxed
""")
        (r / "etc" / "cupsd.conf").write_text(f"""
Listen {self.socket}
Listen 127.0.0.1:{self.port}
LogLevel info
Browsing No
WebInterface No
DefaultAuthType None
ErrorPolicy stop-printer
JobRetryLimit 0
PreserveJobFiles No
<Location />
  Order allow,deny
  Allow localhost
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
""")
        self.instance_conf.write_text(f"Out {self.out_dir}\nAnonDirName {self.out_dir}\nLabel 0\nGrp root\nLog {r}/log/cups-pdf\n")

    def start(self) -> "PrivateCups":
        self._write_config()
        log = open(self.root / "log" / "cupsd.stderr", "ab")
        self.proc = subprocess.Popen(
            ["cupsd", "-f", "-c", str(self.root / "etc" / "cupsd.conf"), "-s", str(self.root / "cups-files.conf")],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private cupsd did not start: {self.error_log()}")
            time.sleep(0.02)
        self._add_printer()
        return self

    def connection(self):  # -> cups.Connection
        import cups

        return cups.Connection(host=self.socket)

    def _add_printer(self) -> None:
        conn = self.connection()
        conn.addPrinter(self.printer, filename=str(CUPS_PDF_PPD), device="cfsim:/")
        conn.setPrinterErrorPolicy(self.printer, "stop-printer")
        conn.enablePrinter(self.printer)
        conn.acceptJobs(self.printer)

    # -- what a test does ------------------------------------------------------------------
    def paper_out(self, out: bool = True) -> None:
        """Take the paper out of (or put it back into) the simulated printer."""
        if out:
            self.flag.touch()
        else:
            self.flag.unlink(missing_ok=True)

    def jam(self, jammed: bool = True) -> None:
        """Make the simulated printer take 30 s per job (a jam, a printer that never finishes)."""
        if jammed:
            self.slow_flag.touch()
        else:
            self.slow_flag.unlink(missing_ok=True)

    def pdfs(self) -> list[Path]:
        return sorted(self.out_dir.glob("*.pdf"))

    def error_log(self) -> str:
        parts = []
        for name in ("error_log", "cupsd.stderr"):
            p = self.root / "log" / name
            if p.exists():
                parts.append(p.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.instance_conf.unlink(missing_ok=True)


def _cups_available() -> str | None:
    if not shutil.which("cupsd"):
        return "cupsd is not installed (Debian cups)"
    if not (CUPS_LIB / "backend" / "cups-pdf").exists() or not CUPS_PDF_PPD.exists():
        return "cups-pdf is not installed (Debian printer-driver-cups-pdf)"
    if os.geteuid() != 0 or not os.access(CUPS_PDF_CONF_DIR, os.W_OK):
        return "a private cupsd with cups-pdf needs root (backends run as root, cups-pdf reads /etc/cups)"
    try:
        import cups  # noqa: F401
    except ImportError:
        return "pycups is not installed"
    return None


@pytest.fixture
def cups_server() -> Iterator[PrivateCups]:
    """A private cupsd with one queue ``Reports`` (cups-pdf behind a simulated paper sensor)."""
    reason = _cups_available()
    if reason:
        pytest.skip(reason)
    # Not pytest's tmp_path: that is mode 0700 under /tmp/pytest-of-root, which user lp cannot enter.
    root = Path(tempfile.mkdtemp(prefix="clinicflow-cups-"))
    server = PrivateCups(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
