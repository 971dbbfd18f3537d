"""The dashboard's figures against a simulated clinic day whose expected numbers the test computes itself."""
from __future__ import annotations

import statistics
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import delete

from queueserver.dashboard.aggregate import close_day, close_past_days
from queueserver.dashboard.quantiles import from_counts, quantile
from queueserver.dashboard.queries import Dashboard, RangeError
from queueserver.store import tickets
from tests.clinic_day import ClinicDay
from tests.dashboard_day import end_day, expected, simulate

AVERAGES = ("avg_wait_min", "avg_service_min", "survey_avg")


def assert_figures(got: dict, want: dict) -> None:
    for key, value in want.items():
        if key in AVERAGES and value is not None:
            assert got[key] == pytest.approx(value, abs=0.051), (key, got, want)  # one rounding step apart at most
        else:
            assert got[key] == value, key


@pytest.fixture(params=["sqlite", "postgresql"])
def simulated(request, tmp_path):
    db = request.getfixturevalue("postgres_schema_url") if request.param == "postgresql" else None
    clinic = ClinicDay(tmp_path, db=db)
    visits = simulate(clinic)
    yield clinic, list(visits.values())
    clinic.close()


def dashboard_of(clinic: ClinicDay) -> Dashboard:
    return Dashboard(hospital=clinic.service.hospital, read=clinic.store.read, today=clinic.service.today)


def check_day(figures: dict, visits: list, long_wait: int) -> None:
    assert_figures(figures["total"], expected(visits, long_wait_min=long_wait))
    for dept in figures["departments"]:
        assert_figures(dept, expected([v for v in visits if v.department == dept["id"]], long_wait_min=long_wait))
    for room in figures["rooms"]:
        assert_figures(room, expected([v for v in visits if (v.room or "") == room["id"]], long_wait_min=long_wait))
    hours = {h["hour"]: h for h in figures["hours"]}
    assert sorted(hours) == sorted({v.issued.hour for v in visits})
    for hour, row in hours.items():
        assert_figures(row, expected([v for v in visits if v.issued.hour == hour], long_wait_min=long_wait))


def test_open_day_and_closed_day_show_what_happened_in_the_clinic(simulated):
    clinic, visits = simulated
    day = clinic.day.isoformat()
    board = dashboard_of(clinic)
    long_wait = clinic.service.rules.long_wait_alert_min
    live = board.queue_figures(day, day)
    assert live["total"]["arrivals"] > 80 and live["total"]["long_waits"] > 0  # the day is busy enough to test
    check_day(live, visits, long_wait)
    close_day(clinic.store, day, rules=clinic.service.rules, tz=clinic.service.tz, now=datetime.now(timezone.utc))
    with clinic.store.tx() as tx:  # a closed day is read from the aggregates alone
        tx.conn.execute(delete(tickets).where(tickets.c.day == day))
    closed = board.queue_figures(day, day)
    check_day(closed, visits, long_wait)
    assert closed["days"] == live["days"]
    one = board.queue_figures(day, day, department="surgery")
    assert [d["id"] for d in one["departments"]] == ["surgery"]
    assert_figures(one["total"], expected([v for v in visits if v.department == "surgery"], long_wait_min=long_wait))


def test_past_days_are_closed_once_and_a_range_adds_them_up(tmp_path):
    first = ClinicDay(tmp_path, day=date(2026, 3, 2))
    ledger = simulate(first, seed=1)
    end_day(first, ledger)
    a = list(ledger.values())
    first.close()
    second = ClinicDay(tmp_path, day=date(2026, 3, 3))  # the same store, the next day
    b = list(simulate(second, seed=2, until="10:30").values())
    svc = second.service
    closed = close_past_days(second.store, today="2026-03-03", rules=svc.rules, tz=svc.tz, now=second.now)
    assert closed == ["2026-03-02"]
    assert close_past_days(second.store, today="2026-03-03", rules=svc.rules, tz=svc.tz, now=second.now) == []
    board = dashboard_of(second)
    both = board.queue_figures("2026-03-02", "2026-03-03")
    assert_figures(both["total"], expected(a + b, long_wait_min=svc.rules.long_wait_alert_min))
    assert [d["arrivals"] for d in both["days"]] == [len(a), len(b)]
    cmp = board.compare(("2026-03-02", "2026-03-02"), ("2026-03-03", "2026-03-03"))
    total = cmp["rows"][0]
    assert total["scope"] == "total"
    assert total["before"]["median_wait_min"] == expected(a, long_wait_min=30)["median_wait_min"]
    assert total["after"]["median_wait_min"] == expected(b, long_wait_min=30)["median_wait_min"]
    assert total["change"]["median_wait_min"] == pytest.approx(
        total["after"]["median_wait_min"] - total["before"]["median_wait_min"])
    second.close()


def test_p90_is_the_inclusive_quantile_not_a_rounded_rank():
    waits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert quantile(waits, 0.9) == pytest.approx(9.1)  # a rounded rank said 9
    assert quantile(waits, 0.9) == statistics.quantiles(waits, n=10, method="inclusive")[8]
    assert from_counts({1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1}, 0.9) == pytest.approx(9.1)
    assert from_counts({4: 3}, 0.9) == 4.0 and quantile([7], 0.5) == 7.0
    assert from_counts({}, 0.5) is None and quantile([], 0.9) is None


def test_a_reversed_or_malformed_range_is_refused_with_a_sentence(tmp_path):
    clinic = ClinicDay(tmp_path)
    board = dashboard_of(clinic)
    with pytest.raises(RangeError, match="before it starts"):
        board.queue_figures("2026-03-05", "2026-03-01")
    with pytest.raises(RangeError, match="YYYY-MM-DD"):
        board.queue_figures("March", "2026-03-01")
    with pytest.raises(RangeError, match="no department"):
        board.queue_figures("2026-03-01", "2026-03-01", department="nowhere")
    clinic.close()


def test_statistics_p90_no_longer_under_reports(tmp_path):
    clinic = ClinicDay(tmp_path)
    clinic.at("08:00")
    for _ in range(10):
        clinic.walk_in()
    for minute in range(1, 11):  # waits of 1, 2, ..., 10 minutes
        clinic.at(f"08:{minute:02d}")
        clinic.call_next("r1")
    internal = clinic.service.stats()["departments"]["internal"]
    assert internal["p90_wait_min"] == 9.1  # the rounded rank said 9.0
    assert internal["p90_wait_min"] == round(statistics.quantiles(range(1, 11), n=10, method="inclusive")[8], 1)
    clinic.close()


def test_help_requests_and_red_flags_raised_at_the_desk_count_per_day_and_department(tmp_path):
    from queueserver.helpdesk import HelpDesk

    clinic = ClinicDay(tmp_path)
    none_yet = dashboard_of(clinic).queue_figures("2026-03-02", "2026-03-02")["help"]
    assert (none_yet["rows"], none_yet["help_requests"], none_yet["red_flags"]) == ([], 0, 0)  # recorded, none asked
    now = [datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)]  # 10:00 in Shanghai
    desk = HelpDesk(clinic.store, timezone_name=clinic.service.hospital.site.timezone, clock=lambda: now[0])
    desk.raise_request(kind="help", reason="help", department="internal")
    desk.raise_request(kind="red_flag", reason="red_flag", department="internal", symptoms=["chest_pain"])
    desk.raise_request(kind="help", reason="payment", department="surgery")
    desk.raise_request(kind="long_wait", reason="long_wait", department="surgery")  # an alert, not a request
    now[0] = now[0].replace(day=3)
    desk.raise_request(kind="help", reason="help", department="surgery")  # the next day
    help_ = dashboard_of(clinic).queue_figures("2026-03-02", "2026-03-02")["help"]  # answers are kept 10 s
    assert (help_["help_requests"], help_["red_flags"]) == (2, 1)
    assert {(r["department"], r["help_requests"], r["red_flags"]) for r in help_["rows"]} == {
        ("internal", 1, 1), ("surgery", 1, 0)}
    clinic.close()


def test_a_rating_after_the_day_was_closed_still_counts(tmp_path):
    clinic = ClinicDay(tmp_path)
    visits = simulate(clinic, until="09:30")
    end_day(clinic, visits)
    svc, day = clinic.service, clinic.day.isoformat()
    close_day(clinic.store, day, rules=svc.rules, tz=svc.tz, now=datetime.now(timezone.utc))
    late = next(v for v in visits.values() if v.status == "done" and v.score is None)
    svc.survey(late.ticket_id, 5)  # the next morning
    late.score = 5
    figures = dashboard_of(clinic).queue_figures(day, day)
    assert_figures(figures["total"], expected(list(visits.values()), long_wait_min=svc.rules.long_wait_alert_min))
    assert close_past_days(clinic.store, today="2026-03-03", rules=svc.rules, tz=svc.tz, now=clinic.now) == [day]
    clinic.close()
