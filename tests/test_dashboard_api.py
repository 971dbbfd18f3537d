"""The dashboard over HTTP on a real server process: manager token, JSON, plots, CSV, kiosk events, the page."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.clinic_day import ClinicDay
from tests.dashboard_day import end_day, expected, simulate

SH = ZoneInfo("Asia/Shanghai")
KIOSK_DAY = ([("check_in", "done", "", 35)] * 12 + [("registration", "done", "", 80)] * 6 + [("payment", "done", "", 95)] * 5
             + [("report", "done", "", 25)] * 4 + [("payment", "abandoned", "pay_method", 60)] * 3
             + [("registration", "abandoned", "department", 40)] * 2 + [("check_in", "abandoned", "appointment_no", 30)])


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Three past clinic days and one of today in the server's store, with the test's ledgers."""
    data_dir = tmp_path_factory.mktemp("dashboard-server")
    today = datetime.now(SH).date()
    ledgers: dict[str, list] = {}
    for i, day in enumerate([today - timedelta(days=8), today - timedelta(days=7), today - timedelta(days=1), today]):
        clinic = ClinicDay(tmp_path_factory.mktemp(f"his{i}"), day=day, db=str(data_dir / "queue.sqlite3"))
        visits = simulate(clinic, seed=10 + i, until="10:00")
        if day != today:
            end_day(clinic, visits)
        ledgers[day.isoformat()] = list(visits.values())
        clinic.close()
    return data_dir, ledgers


@pytest.fixture(scope="module")
def server(history, tmp_path_factory, request):
    from queueserver.process import QueueServerProcess

    mosquitto = request.getfixturevalue("mosquitto")
    proc = QueueServerProcess(Path(history[0]), mosquitto.url).start()
    kiosk = proc.client("kiosk")
    for i, (kind, outcome, screen, secs) in enumerate(KIOSK_DAY):
        kiosk.post("/api/v1/kiosk-events", json={"event_id": f"day-{i}", "kiosk": f"k{1 + i % 2}", "kind": kind,
                                                 "outcome": outcome, "screen": screen, "seconds": secs})
    yield proc
    proc.stop()


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_manager_reads_figures_that_match_the_ledgers_and_changes_nothing(server, history):
    _, ledgers = history
    days = sorted(ledgers)
    manager = server.client("manager")
    r = manager.get("/api/v1/dashboard/queue", params={"first": days[0], "last": days[-1]})
    assert r.status_code == 200, r.text
    body = r.json()
    everyone = [v for d in days for v in ledgers[d]]
    want = expected(everyone, long_wait_min=30)
    for key in ("arrivals", "served", "median_wait_min", "p90_wait_min", "long_waits", "no_shows", "recalls",
                "survey_count"):
        assert body["total"][key] == want[key], key
    by_day = {d["day"]: d for d in body["days"]}
    for d in days:
        assert by_day[d]["arrivals"] == len(ledgers[d]) and by_day[d]["p90_wait_min"] == expected(
            ledgers[d], long_wait_min=30)["p90_wait_min"]
    assert manager.post("/api/v1/rooms/r1/call-next").status_code == 403  # read-only
    assert manager.get("/api/v1/stats").status_code == 200
    assert server.client("kiosk").get("/api/v1/dashboard/queue", params={"first": days[0], "last": days[-1]}).status_code == 403
    bad = manager.get("/api/v1/dashboard/queue", params={"first": days[-1], "last": days[0]})
    assert bad.status_code == 400 and "before it starts" in bad.json()["detail"]


def test_each_plot_has_its_numbers_as_csv_in_both_languages(server, history):
    _, ledgers = history
    days = sorted(ledgers)
    manager = server.client("manager")
    q = {"first": days[0], "last": days[-1]}
    internal = expected([v for d in days for v in ledgers[d] if v.department == "internal"], long_wait_min=30)
    for lang, head, name in (("en", "Median wait (min)", "Internal medicine"), ("zh", "等候中位数（分钟）", "内科")):
        svg = manager.get("/api/v1/dashboard/plots/departments.svg", params={**q, "lang": lang})
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content
        rows = rows_of(manager.get("/api/v1/dashboard/tables/departments.csv", params={**q, "lang": lang}).text)
        row = next(r for r in rows if name in r.values())
        assert float(row[head]) == internal["median_wait_min"]
    days_rows = rows_of(manager.get("/api/v1/dashboard/tables/days.csv", params={**q, "lang": "en"}).text)
    assert [int(r["Arrivals"]) for r in days_rows if r["Day"] in ledgers] == [len(ledgers[d]) for d in days]
    unknown = manager.get("/api/v1/dashboard/plots/nothing.svg", params=q)
    assert unknown.status_code == 404 and "departments" in unknown.json()["detail"]


def test_kiosk_sessions_reported_by_a_kiosk_show_up_with_where_patients_gave_up(server):
    kiosk, manager = server.client("kiosk"), server.client("manager")
    today = datetime.now(SH).date().isoformat()
    sent = [("check_in", "done", "", 40), ("check_in", "done", "", 50), ("payment", "abandoned", "pay_method", 90),
            ("payment", "abandoned", "pay_method", 30), ("registration", "abandoned", "department", 20)]
    for kind, outcome, screen, secs in sent:
        ev = {"event_id": uuid.uuid4().hex, "kiosk": "k1", "kind": kind, "outcome": outcome, "screen": screen,
              "seconds": secs}
        assert kiosk.post("/api/v1/kiosk-events", json=ev).json() == {"stored": True}
    assert kiosk.post("/api/v1/kiosk-events", json=ev).json() == {"stored": False}  # a retry is stored once
    bad = kiosk.post("/api/v1/kiosk-events", json={**ev, "event_id": "x1", "kind": "coffee"})
    assert bad.status_code == 422
    body = manager.get("/api/v1/dashboard/kiosk", params={"first": today, "last": today}).json()
    kinds = {k["kind"]: k for k in body["by_kind"]}
    # the fixture's day plus this test's sessions, all on kiosks k1 and k2
    assert kinds["check_in"]["done"] == 12 + 2 and kinds["check_in"]["avg_seconds"] == round((12 * 35 + 90) / 14, 1)
    assert kinds["payment"]["abandoned"] == 3 + 2 and kinds["payment"]["abandon_rate"] == round(5 / 10, 3)
    assert body["abandoned_at"][0] == {"kind": "payment", "screen": "pay_method", "sessions": 5}
    assert body["advice"]["kiosks"] == 2 and body["advice"]["rule_of_thumb"] == 500
    rows = rows_of(manager.get("/api/v1/dashboard/tables/abandoned.csv",
                               params={"first": today, "last": today, "lang": "en"}).text)
    assert rows[0] == {"Transaction": "Payment", "Screen left": "Choose payment method", "Sessions": "5"}
    zh = rows_of(manager.get("/api/v1/dashboard/tables/abandoned.csv",
                             params={"first": today, "last": today, "lang": "zh"}).text)
    assert list(zh[0].values())[:2] == ["缴费", "选择支付方式"]  # screen names a manager reads, not the kiosk's ids


def test_weekly_report_on_demand_is_a_listed_a4_pdf(server, history, tmp_path):
    manager = server.client("manager", timeout=60)
    r = manager.post("/api/v1/dashboard/reports", json={"language": "en"})
    assert r.status_code == 201, r.text
    made = r.json()
    week = date.fromisoformat(made["first_day"])
    assert week.weekday() == 0 and week <= datetime.now(SH).date() - timedelta(days=7)
    listed = manager.get("/api/v1/dashboard/reports").json()
    assert made["name"] in [x["name"] for x in listed]
    pdf = manager.get(made["url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert manager.get("/api/v1/dashboard/reports/..%2Ftokens.json").status_code == 404
