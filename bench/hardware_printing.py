"""Receipt and report printing timings, printed as figures, never asserted.

    .venv/bin/python bench/hardware_printing.py [--tickets 50] [--reports 10]

1. composing a queue ticket's ESC/POS bytes per receipt profile (native GB18030 text vs
   Chinese rendered as images with the WQY font; native QR vs raster QR), and the bytes each
   sends down the cable (at 9600 baud a byte takes about 1 ms);
2. a ticket through the serial adapter on a pseudo-terminal, with the two real-time status
   requests before the job (a simulated printer answers at once);
3. an A4 PDF through a private cupsd with cups-pdf (needs root; skipped otherwise): from
   ``print_pdf`` to the job completed.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.ticket_printer import PROFILES, EscposTicketPrinter, TicketSlip, render_escpos  # noqa: E402
from hardware.receipt_layout import ticket_lines  # noqa: E402

SLIP = TicketSlip("A012", {"zh": "内科", "en": "Internal medicine"}, {"zh": "1 诊室", "en": "room 1"},
                  "http://127.0.0.1:8000/status/7f3a9c2e", datetime(2026, 11, 23, 9, 30), 3, 15, "zh")


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"


def bench_compose(n: int) -> None:
    print(f"1. composing a ticket ({n} each)")
    for name, profile in PROFILES.items():
        render_escpos(ticket_lines(SLIP), profile)  # font load, imports
        times, size = [], 0
        for _ in range(n):
            t = time.perf_counter()
            size = len(render_escpos(ticket_lines(SLIP), profile))
            times.append(time.perf_counter() - t)
        print(f"   {name:<11} chinese={profile.chinese:<6} native_qr={profile.native_qr!s:<5} "
              f"{_ms(times)}  {size:6d} bytes (~{size * 10 / 9600:5.1f} s at 9600 baud)")


def bench_serial(n: int) -> None:
    from tests.hardware_sims import PtyDevice

    print(f"2. a ticket through the serial adapter on a pty, status requests included ({n})")
    device = PtyDevice(lambda chunk: b"\x12" * chunk.count(b"\x10\x04"))
    try:
        printer = EscposTicketPrinter(device=f"serial://{device.path}?baudrate=115200", profile="cn-58", timeout=1)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            printer.print_ticket(SLIP)
            times.append(time.perf_counter() - t)
        printer.close()
        print(f"   cn-58 over pty: {_ms(times)}")
    finally:
        device.close()


def bench_cups(n: int) -> None:
    print(f"3. an A4 report through a private cupsd + cups-pdf ({n})")
    from tests.fixtures_cups import PrivateCups, _cups_available

    reason = _cups_available()
    if reason:
        print(f"   skipped: {reason}")
        return
    from hardware.report_printer import CupsReportPrinter
    from hardware.testpage import write_test_page

    root = Path(tempfile.mkdtemp(prefix="clinicflow-cups-"))
    server = PrivateCups(root)
    try:
        server.start()
        pdf = write_test_page(root / "tmp" / "report.pdf", ["Lab report 123", "Haemoglobin 132 g/L"])
        printer = CupsReportPrinter(queue=server.printer, server=server.socket, poll_interval=0.02)
        times = []
        for i in range(n):
            t = time.perf_counter()
            printer.print_pdf(pdf, title=f"report-{i}")
            times.append(time.perf_counter() - t)
        print(f"   submit -> completed: {_ms(times)}  ({len(server.pdfs())} PDFs written)")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tickets", type=int, default=50)
    p.add_argument("--reports", type=int, default=10)
    args = p.parse_args()
    bench_compose(args.tickets)
    bench_serial(args.tickets)
    bench_cups(args.reports)


if __name__ == "__main__":
    main()
