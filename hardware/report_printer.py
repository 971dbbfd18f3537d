"""A4 report printing: the ``ReportPrinter`` port, the CUPS adapter (pycups) and the fake.

    printer = CupsReportPrinter(queue="Reports")                  # server=None: this machine's CUPS
    result = printer.print_pdf("/var/cache/report-123.pdf", title="report-123", timeout=90)
    printer.status()   # ReportPrinterStatus(state=idle|processing|stopped|unreachable, paper=..., reasons=...)
    printer.resume()   # the operator refilled the tray: restart the queue

Out of paper, a CUPS backend reports ``media-empty-error`` and the scheduler stops the
queue (error policy ``stop-printer``); the job waits. A kiosk must not leave a medical
report waiting in a stopped queue (it would print later into an unattended tray), so a
job that cannot finish (queue stopped, or not done within the timeout) is cancelled
before the error is raised. ``print_pdf`` therefore either returns after the job
completed or raises with nothing left queued.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from protocol.errors import DeviceError

from hardware.ticket_printer import PaperOutError, PaperState

__all__ = [
    "ReportPrinter", "ReportPrinterStatus", "PrintResult", "ReportPrinterError", "QueueStoppedError",
    "ReportPaperOutError", "PrintTimeoutError", "CupsReportPrinter", "FakeReportPrinter", "ReportJob",
]

log = logging.getLogger(__name__)

# IPP enums (RFC 8011) as pycups returns them.
_PRINTER_IDLE, _PRINTER_PROCESSING, _PRINTER_STOPPED = 3, 4, 5
_JOB_CANCELED, _JOB_ABORTED, _JOB_COMPLETED = 7, 8, 9
_JOB_STATE_NAMES = {3: "pending", 4: "held", 5: "processing", 6: "stopped", 7: "canceled", 8: "aborted", 9: "completed"}
_PAPER_OUT_REASONS = ("media-empty", "media-needed")
_PAPER_LOW_REASONS = ("media-low",)


class ReportPrinterError(DeviceError):
    """The report printer could not print the document (queue missing, CUPS unreachable, job aborted)."""


class QueueStoppedError(ReportPrinterError):
    """The print queue is stopped (paused by an operator or by a printer fault); the job was cancelled."""

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class ReportPaperOutError(QueueStoppedError, PaperOutError):
    """The printer is out of paper; the job was cancelled. Also a ``PaperOutError``."""


class PrintTimeoutError(ReportPrinterError, TimeoutError):
    """The job did not finish within the timeout; it was cancelled."""


@dataclass(frozen=True)
class ReportPrinterStatus:
    """A print queue as an operator would describe it; ``ok`` means a report can be printed now."""

    state: Literal["idle", "processing", "stopped", "unreachable"]
    paper: PaperState
    accepting: bool
    reasons: tuple[str, ...] = ()
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("idle", "processing") and self.accepting and self.paper is not PaperState.OUT


@dataclass(frozen=True)
class PrintResult:
    job_id: int
    seconds: float


@runtime_checkable
class ReportPrinter(Protocol):
    """Port: an A4 printer for lab reports and documents."""

    def print_pdf(self, pdf: str | Path, *, title: str, copies: int = 1, timeout: float | None = None) -> PrintResult:
        """Print a PDF and wait until the printer has finished it; raise ReportPrinterError subclasses."""

    def status(self) -> ReportPrinterStatus:
        """The queue's state, paper and reasons; never raises."""

    def resume(self) -> None:
        """Restart a stopped queue and let it accept jobs (after the operator fixed the printer)."""

    def close(self) -> None:
        """Release resources; idempotent."""


def _check_pdf(pdf: str | Path) -> Path:
    path = Path(pdf)
    try:
        with path.open("rb") as fh:
            head = fh.read(5)
    except OSError as exc:
        raise ValueError(f"cannot read the document to print: {exc}") from None
    if head != b"%PDF-":
        raise ValueError(f"{path.name} is not a PDF file")
    return path


def _paper_from_reasons(reasons: tuple[str, ...], stopped: bool) -> PaperState:
    # CUPS keeps a backend's last media-empty reason until the next job clears it; once the
    # operator resumed the queue we trust them, so "out" needs a stopped queue as well.
    if stopped and any(r.startswith(_PAPER_OUT_REASONS) for r in reasons):
        return PaperState.OUT
    if any(r.startswith(_PAPER_LOW_REASONS) for r in reasons):
        return PaperState.LOW
    return PaperState.OK


class CupsReportPrinter:
    """``ReportPrinter`` on a CUPS queue through pycups.

    ``server`` is the path of a CUPS Unix socket (None: this machine's default,
    ``/run/cups/cups.sock`` or ``$CUPS_SERVER``). A printer elsewhere on the network is
    reached through a local queue whose device URI points at it (``ipp://host/...``):
    the local scheduler then buffers, retries and reports its state like any other. The job's progress is polled every
    ``poll_interval`` seconds (pycups has no blocking wait for job events). One connection
    per call: pycups connections are not thread-safe and reconnecting over the local
    socket costs well under a millisecond.
    """

    def __init__(self, *, queue: str, server: str | None = None,
                 timeout: float = 120.0, poll_interval: float = 0.2) -> None:
        self.queue = queue
        self.server = server
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import cups

        kwargs: dict[str, Any] = {}
        if self.server:
            kwargs["host"] = self.server
        try:
            return cups.Connection(**kwargs)
        except RuntimeError as exc:
            raise ReportPrinterError(f"cannot reach the CUPS print server: {exc}") from None

    def _printer_attrs(self, conn: Any) -> dict[str, Any]:
        import cups

        try:
            return conn.getPrinterAttributes(self.queue, requested_attributes=[
                "printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs"])
        except cups.IPPError as exc:
            raise ReportPrinterError(f"print queue {self.queue!r} is not available: {exc.args[-1]}") from None

    @staticmethod
    def _status_from(attrs: dict[str, Any]) -> ReportPrinterStatus:
        reasons = tuple(r for r in attrs.get("printer-state-reasons", ()) if r != "none")
        code = attrs.get("printer-state", _PRINTER_STOPPED)
        state = {_PRINTER_IDLE: "idle", _PRINTER_PROCESSING: "processing"}.get(code, "stopped")
        return ReportPrinterStatus(
            state=state,  # type: ignore[arg-type]
            paper=_paper_from_reasons(reasons, code == _PRINTER_STOPPED),
            accepting=bool(attrs.get("printer-is-accepting-jobs", False)),
            reasons=reasons,
            message=attrs.get("printer-state-message", "") or "",
        )

    def status(self) -> ReportPrinterStatus:
        try:
            return self._status_from(self._printer_attrs(self._connect()))
        except ReportPrinterError as exc:
            return ReportPrinterStatus("unreachable", PaperState.UNKNOWN, False, (), str(exc))

    @staticmethod
    def _stopped_error(status: ReportPrinterStatus, what: str) -> QueueStoppedError:
        detail = status.message or ", ".join(status.reasons) or "stopped"
        if any(r.startswith(_PAPER_OUT_REASONS) for r in status.reasons):
            return ReportPaperOutError(f"the report printer is out of paper ({detail}); {what}", status.reasons)
        return QueueStoppedError(f"the report printer's queue is stopped ({detail}); {what}", status.reasons)

    def print_pdf(self, pdf: str | Path, *, title: str, copies: int = 1, timeout: float | None = None) -> PrintResult:
        import cups

        path = _check_pdf(pdf)
        if not 1 <= copies <= 10:
            raise ValueError("copies must be between 1 and 10")
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            conn = self._connect()
            before = self._status_from(self._printer_attrs(conn))
            if before.state == "stopped":
                raise self._stopped_error(before, "nothing was sent")
            if not before.accepting:
                raise QueueStoppedError(f"the report printer's queue is not accepting jobs ({before.message}); "
                                        "nothing was sent", before.reasons)
            started = time.monotonic()
            try:
                job_id = conn.printFile(self.queue, str(path), title[:100] or "report",
                                        {"copies": str(copies), "media": "A4"})
            except cups.IPPError as exc:
                raise ReportPrinterError(f"CUPS refused the job: {exc.args[-1]}") from None
            log.info("report %s submitted to %s as job %d", title, self.queue, job_id)
            try:
                self._wait(conn, job_id, started + limit)
            except BaseException:
                self._cancel(conn, job_id)
                raise
            return PrintResult(job_id, time.monotonic() - started)

    def _wait(self, conn: Any, job_id: int, deadline: float) -> None:
        import cups

        while True:
            try:
                job = conn.getJobAttributes(job_id, requested_attributes=["job-state", "job-printer-state-message"])
            except cups.IPPError as exc:
                raise ReportPrinterError(f"lost track of print job {job_id}: {exc.args[-1]}") from None
            state = job.get("job-state")
            if state == _JOB_COMPLETED:
                return
            if state in (_JOB_CANCELED, _JOB_ABORTED):
                raise ReportPrinterError(f"print job {job_id} was {_JOB_STATE_NAMES[state]}: "
                                         f"{job.get('job-printer-state-message', '')}".rstrip(": "))
            status = self._status_from(self._printer_attrs(conn))
            if status.state == "stopped":
                raise self._stopped_error(status, "the job was cancelled")
            if time.monotonic() >= deadline:
                raise PrintTimeoutError(f"print job {job_id} did not finish in time "
                                        f"({_JOB_STATE_NAMES.get(state, state)}); it was cancelled")
            time.sleep(self.poll_interval)

    def _cancel(self, conn: Any, job_id: int) -> None:
        try:
            conn.cancelJob(job_id, purge_job=True)
        except Exception:  # already finished or gone: nothing left to cancel
            log.debug("cancelling job %d failed", job_id, exc_info=True)

    def resume(self) -> None:
        import cups

        conn = self._connect()
        try:
            conn.enablePrinter(self.queue)
            conn.acceptJobs(self.queue)
        except cups.IPPError as exc:
            raise ReportPrinterError(f"cannot resume print queue {self.queue!r}: {exc.args[-1]}") from None
        log.info("print queue %s resumed by the operator", self.queue)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ReportJob:
    """One document a ``FakeReportPrinter`` printed: its title, copies and bytes."""

    title: str
    copies: int
    data: bytes


@dataclass
class FakeReportPrinter:
    """A ``ReportPrinter`` with no CUPS, modelling a queue with a paper tray.

    ``simulate_paper_out()``: the next job stops the queue (reason ``media-empty-error``)
    and raises ``ReportPaperOutError``; the queue stays stopped after ``refill_paper()``
    until ``resume()``, as a real CUPS queue does. ``simulate_hang()``: jobs never finish
    and raise ``PrintTimeoutError`` (immediately: a fake does not make tests wait).
    Printed documents are in ``jobs``.
    """

    jobs: list[ReportJob] = field(default_factory=list)
    stopped: bool = False
    paper_present: bool = True
    hang: bool = False
    reasons: tuple[str, ...] = ()

    def print_pdf(self, pdf: str | Path, *, title: str, copies: int = 1, timeout: float | None = None) -> PrintResult:
        path = _check_pdf(pdf)
        if self.stopped:
            raise CupsReportPrinter._stopped_error(self.status(), "nothing was sent")
        if not self.paper_present:
            self.stopped, self.reasons = True, ("media-empty-error", "paused")
            raise CupsReportPrinter._stopped_error(self.status(), "the job was cancelled")
        if self.hang:
            raise PrintTimeoutError("print job did not finish in time; it was cancelled")
        self.jobs.append(ReportJob(title, copies, path.read_bytes()))
        return PrintResult(len(self.jobs), 0.0)

    def status(self) -> ReportPrinterStatus:
        return ReportPrinterStatus("stopped" if self.stopped else "idle",
                                   _paper_from_reasons(self.reasons, self.stopped), True, self.reasons,
                                   "Out of paper" if self.stopped and not self.paper_present else "")

    def simulate_paper_out(self) -> None:
        self.paper_present = False

    def refill_paper(self) -> None:
        self.paper_present = True

    def simulate_hang(self, hang: bool = True) -> None:
        self.hang = hang

    def resume(self) -> None:
        self.stopped, self.reasons = False, ()

    def close(self) -> None:
        pass
