"""The weekly PDF: written by the scheduler for last week in zh and en, A4, its figures those of the ledger."""
from __future__ import annotations

import re
import subprocess
from datetime import date, datetime, time

from PIL import Image
from sqlalchemy import select

from queueserver.dashboard.queries import Dashboard
from queueserver.dashboard.report import list_reports
from queueserver.dashboard.scheduler import DashboardScheduler
from queueserver.dashboard.tables import stats_days
from tests.clinic_day import SH, ClinicDay
from tests.dashboard_day import end_day, expected, simulate


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v % 1 else f"{v:.0f}"


def test_a_week_nobody_used_gets_no_report_until_the_manager_asks(tmp_path):
    """A new install (nothing happened last week) writes no empty PDFs on its own; the button still works."""
    clinic = ClinicDay(tmp_path / "d", day=date(2026, 3, 3))
    svc = clinic.service
    board = Dashboard(hospital=svc.hospital, read=clinic.store.read, today=svc.today)
    now = datetime.combine(date(2026, 3, 10), time(1, 0), SH)
    scheduler = DashboardScheduler(board, clinic.store, reports_dir=tmp_path / "reports", clock=lambda: now)
    assert [d for d in scheduler.run_once() if d.startswith("report")] == []
    assert list_reports(clinic.store) == [] and not (tmp_path / "reports").exists()
    made = scheduler.write_report(date(2026, 3, 2), "en")
    assert made["note"] == "0 arrivals"
    assert [r["name"] for r in list_reports(clinic.store)] == ["clinicflow-week-2026-03-02-en.pdf"]
    clinic.close()


def test_scheduler_closes_the_days_and_writes_last_weeks_report(tmp_path, artifacts_dir):
    week: list = []
    for i, day in enumerate([date(2026, 2, 24), date(2026, 3, 2), date(2026, 3, 3)]):  # a day of the week before, two of the week
        clinic = ClinicDay(tmp_path / f"d{i}", day=day, db=str(tmp_path / "queue.sqlite3"))
        visits = simulate(clinic, seed=30 + i, until="10:30")
        end_day(clinic, visits)
        if day >= date(2026, 3, 2):
            week += visits.values()
        if i < 2:
            clinic.close()
    svc = clinic.service
    board = Dashboard(hospital=svc.hospital, read=clinic.store.read, today=svc.today)
    now = datetime.combine(date(2026, 3, 10), time(1, 0), SH)  # the Tuesday after
    scheduler = DashboardScheduler(board, clinic.store, reports_dir=tmp_path / "reports", clock=lambda: now)
    done = scheduler.run_once()
    assert done == ["closed 2026-02-24", "closed 2026-03-02", "closed 2026-03-03",
                    "report 2026-03-02 en", "report 2026-03-02 zh"]
    assert scheduler.run_once() == []  # nothing twice
    with clinic.store.read() as conn:
        assert set(conn.execute(select(stats_days.c.day)).scalars()) == {"2026-02-24", "2026-03-02", "2026-03-03"}
    assert [r["name"] for r in list_reports(clinic.store)] == ["clinicflow-week-2026-03-02-en.pdf",
                                                               "clinicflow-week-2026-03-02-zh.pdf"]
    want = expected(week, long_wait_min=svc.rules.long_wait_alert_min)
    for lang, labels in (("en", ("Arrivals", "Median wait (min)", "p90 wait (min)", "Waits over 30 min")),
                         ("zh", ("到达人数", "等候中位数（分钟）", "90%等候（分钟）", "等候超过30分钟"))):
        pdf = tmp_path / "reports" / f"clinicflow-week-2026-03-02-{lang}.pdf"
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"^Pages:\s+2$", info, re.M) and "595.44 x 841.68 pts (A4)" in info
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        lines = text.splitlines()
        for label, key in zip(labels, ("arrivals", "median_wait_min", "p90_wait_min", "long_waits")):
            row = next(line for line in lines if line.strip().startswith(label))
            assert row.split()[-2] == _fmt(want[key]), (label, row)  # this week, then the previous week
        prefix = artifacts_dir / f"dashboard-report-{lang}"
        subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf), str(prefix)], check=True)
        page1 = Image.open(f"{prefix}-1.png").convert("L")
        dark = sum(1 for px in page1.getdata() if px < 128)
        assert dark > 5000  # plots and tables were drawn, not an empty page
    clinic.close()
