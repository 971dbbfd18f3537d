"""Report printing through a real (private) CUPS scheduler and cups-pdf: the PDF that comes out,
a printer that runs out of paper, an operator who refills it, a printer that never finishes."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hardware.report_printer import (
    CupsReportPrinter,
    FakeReportPrinter,
    PrintTimeoutError,
    QueueStoppedError,
    ReportPaperOutError,
    ReportPrinter,
    ReportPrinterError,
)
from hardware.testpage import write_test_page
from hardware.ticket_printer import PaperOutError, PaperState


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _wait_for_pdfs(cups_server, count: int, timeout: float = 10.0) -> list[Path]:
    # cups-pdf writes the file before the backend exits, so after a completed job this returns at once.
    deadline = time.monotonic() + timeout
    while len(cups_server.pdfs()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return cups_server.pdfs()


@pytest.fixture
def report_pdf(tmp_path: Path) -> Path:
    return write_test_page(tmp_path / "report-123.pdf", ["Lab report 123", "Haemoglobin 132 g/L", "Patient Z**"])


def test_report_printer_prints_the_pdf_through_cups(cups_server, report_pdf: Path, artifacts_dir: Path):
    printer = CupsReportPrinter(queue=cups_server.printer, server=cups_server.socket, timeout=30)
    assert isinstance(printer, ReportPrinter)
    result = printer.print_pdf(report_pdf, title="report-123")
    assert result.job_id > 0
    [out] = _wait_for_pdfs(cups_server, 1)
    assert "report-123" in out.name
    text = _pdf_text(out)
    assert "Lab report 123" in text and "Haemoglobin 132 g/L" in text
    shutil.copy(out, artifacts_dir / "report-printed-by-cups.pdf")
    status = printer.status()
    assert status.ok and status.paper is PaperState.OK


def test_report_printer_out_of_paper_stops_queue_cancels_job_and_operator_resumes(cups_server, report_pdf: Path):
    printer = CupsReportPrinter(queue=cups_server.printer, server=cups_server.socket, timeout=30)
    cups_server.paper_out()
    with pytest.raises(ReportPaperOutError, match="out of paper") as err:
        printer.print_pdf(report_pdf, title="report-123")
    assert isinstance(err.value, PaperOutError)  # the kiosk handles both printers' paper-out alike
    assert "media-empty-error" in err.value.reasons
    status = printer.status()
    assert status.state == "stopped" and status.paper is PaperState.OUT and not status.ok
    # The patient's report is not left waiting in the stopped queue to print into an empty kiosk later.
    assert cups_server.connection().getJobs(which_jobs="not-completed") == {}
    with pytest.raises(ReportPaperOutError, match="nothing was sent"):
        printer.print_pdf(report_pdf, title="report-123")
    # The technician refills the tray and resumes the queue.
    cups_server.paper_out(False)
    printer.resume()
    assert printer.status().ok
    printer.print_pdf(report_pdf, title="report-after-refill")
    pdfs = _wait_for_pdfs(cups_server, 1)
    assert [p.name.startswith("report-after-refill") for p in pdfs] == [True]


def test_report_printer_operator_paused_queue_is_reported(cups_server, report_pdf: Path):
    printer = CupsReportPrinter(queue=cups_server.printer, server=cups_server.socket, timeout=30)
    cups_server.connection().disablePrinter(cups_server.printer, reason="maintenance")
    status = printer.status()
    assert status.state == "stopped" and status.message == "maintenance"
    with pytest.raises(QueueStoppedError, match="maintenance") as err:
        printer.print_pdf(report_pdf, title="report-123")
    assert not isinstance(err.value, PaperOutError)
    printer.resume()
    printer.print_pdf(report_pdf, title="report-123")


def test_report_printer_job_that_never_finishes_times_out_and_is_cancelled(cups_server, report_pdf: Path):
    printer = CupsReportPrinter(queue=cups_server.printer, server=cups_server.socket, poll_interval=0.1)
    cups_server.jam()
    started = time.monotonic()
    with pytest.raises(PrintTimeoutError, match="cancelled"):
        printer.print_pdf(report_pdf, title="report-123", timeout=1.0)
    assert time.monotonic() - started < 5
    assert cups_server.connection().getJobs(which_jobs="not-completed") == {}
    cups_server.jam(False)
    printer.print_pdf(report_pdf, title="report-again", timeout=30)  # no stuck state
    assert [p.name.startswith("report-again") for p in _wait_for_pdfs(cups_server, 1)] == [True]


def test_report_printer_unknown_queue_and_unreachable_server_are_clear_errors(cups_server, report_pdf: Path, tmp_path):
    with pytest.raises(ReportPrinterError, match="not available"):
        CupsReportPrinter(queue="NoSuchQueue", server=cups_server.socket).print_pdf(report_pdf, title="x")
    gone = CupsReportPrinter(queue="Reports", server=str(tmp_path / "no-cups.sock"))
    status = gone.status()
    assert status.state == "unreachable" and status.paper is PaperState.UNKNOWN
    with pytest.raises(ReportPrinterError):
        gone.print_pdf(report_pdf, title="x")


def test_report_printer_refuses_a_file_that_is_not_a_pdf(tmp_path: Path):
    not_pdf = tmp_path / "report.pdf"
    not_pdf.write_text("<html>report</html>")
    with pytest.raises(ValueError, match="not a PDF"):
        CupsReportPrinter(queue="Reports").print_pdf(not_pdf, title="x")


def test_fake_report_printer_models_a_queue_with_a_paper_tray(report_pdf: Path):
    fake = FakeReportPrinter()
    assert isinstance(fake, ReportPrinter)
    fake.print_pdf(report_pdf, title="r1")
    assert fake.jobs[0].title == "r1" and fake.jobs[0].data.startswith(b"%PDF-")
    fake.simulate_paper_out()
    with pytest.raises(ReportPaperOutError):
        fake.print_pdf(report_pdf, title="r2")
    assert fake.status().paper is PaperState.OUT
    fake.refill_paper()
    with pytest.raises(QueueStoppedError):  # still stopped until the operator resumes it
        fake.print_pdf(report_pdf, title="r2")
    fake.resume()
    fake.print_pdf(report_pdf, title="r2")
    fake.simulate_hang()
    with pytest.raises(PrintTimeoutError):
        fake.print_pdf(report_pdf, title="r3")
    assert [j.title for j in fake.jobs] == ["r1", "r2"]
