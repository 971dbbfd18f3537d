"""The help desk's domain on a real migrated SQLite store: who answered, when, escalation once, statistics,
and the patient API's sessions and answers surviving a restart (a new Store on the same file)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from protocol.api_patient import ReportOut
from protocol.errors import ConflictError, NotFoundError
from queueserver.help_stats import help_stats, help_stats_csv
from queueserver.helpdesk import HelpDesk
from queueserver.patient_state import StoredAnswers, StoredSessions
from queueserver.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 1, 30, tzinfo=timezone.utc)  # 09:30 in Shanghai

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_kiosk_retry_finds_its_first_request_and_the_first_to_answer_is_recorded(sqlite_store, clock):
    desk = HelpDesk(sqlite_store, clock=clock)
    first, new = desk.raise_request(kind="help", reason="help", device="kiosk-1", idem_key="k1")
    again, new_again = desk.raise_request(kind="help", reason="help", device="kiosk-1", idem_key="k1")
    assert new and not new_again and again.help_id == first.help_id
    assert [i.help_id for i in desk.open_items()] == [first.help_id]

    clock.advance(40)
    taken = desk.acknowledge(first.help_id, "王护士")
    clock.advance(5)
    late = desk.acknowledge(first.help_id, "李护士")  # a second nurse sees who already took it
    assert taken.status == late.status == "acknowledged"
    assert late.acknowledged_by == "王护士" and late.acknowledged_at == first.created_at + timedelta(seconds=40)

    done = desk.resolve(first.help_id, "王护士")
    assert done.status == "resolved" and done.resolved_at == clock.now
    assert desk.open_items() == []
    with pytest.raises(ConflictError, match="already resolved"):
        desk.acknowledge(first.help_id, "李护士")
    with pytest.raises(NotFoundError):
        desk.acknowledge("nope", "王护士")


def test_an_unanswered_red_flag_escalates_once_even_with_two_server_processes(sqlite_store, clock):
    told: list[str] = []
    replica_a = HelpDesk(sqlite_store, clock=clock, escalate_after=60, on_escalate=lambda i: told.append(("a", i.help_id)))
    replica_b = HelpDesk(Store(sqlite_store.url), clock=clock, escalate_after=60,
                         on_escalate=lambda i: told.append(("b", i.help_id)))
    flag, _ = replica_a.raise_request(kind="red_flag", reason="red_flag", device="kiosk-2", symptoms=["chest_pain"])
    answered, _ = replica_a.raise_request(kind="help", reason="help", device="kiosk-3")
    replica_a.acknowledge(answered.help_id, "张医生")

    clock.advance(59)
    assert replica_a.tick() == [] and replica_b.tick() == []
    clock.advance(2)
    escalated = replica_b.tick() + replica_a.tick()
    assert [i.help_id for i in escalated] == [flag.help_id]  # the acknowledged one never escalates
    assert told == [("b", flag.help_id)]
    assert replica_a.get(flag.help_id).escalated_at == clock.now
    clock.advance(120)
    assert replica_a.tick() == [] and len(told) == 1


def test_help_statistics_per_kiosk_hour_time_to_acknowledge_and_red_flags_by_symptom(sqlite_store, clock):
    desk = HelpDesk(sqlite_store, clock=clock)
    waits = [30, 60, 90, 120, 300]
    for seconds in waits:
        item, _ = desk.raise_request(kind="help", reason="help", device="kiosk-1")
        clock.advance(seconds)
        desk.acknowledge(item.help_id, "王护士")
    clock.advance(3600)  # the next hour
    for symptoms in (["chest_pain", "breathless"], ["chest_pain"]):
        desk.raise_request(kind="red_flag", reason="red_flag", device="kiosk-2", symptoms=symptoms)

    stats = help_stats(desk, "2026-12-03")
    assert stats["per_kiosk_hour"] == {"kiosk-1": {"09": 5}, "kiosk-2": {"10": 2}}
    ack = stats["acknowledge"]["help"]
    assert ack["count"] == 5 and ack["answered"] == 5 and ack["avg_s"] == 120.0
    assert 120 < ack["p90_s"] <= 300  # above the median, not a rounded-down rank
    assert stats["acknowledge"]["red_flag"] == {"count": 2, "answered": 0, "avg_s": None, "p90_s": None, "escalated": 0}
    assert stats["red_flags_by_symptom"] == {"chest_pain": 2, "breathless": 1}
    csv_text = help_stats_csv(desk, "2026-12-03")
    assert "2026-12-03,requests_per_kiosk_hour,kiosk-1 09:00,5" in csv_text
    assert "2026-12-03,red_flags_by_symptom,chest_pain,2" in csv_text


def test_patient_sessions_and_answers_survive_a_restart_and_expire(sqlite_store, clock):
    sessions = StoredSessions(sqlite_store, ttl=300, clock=clock)
    sid = sessions.open("P1001")
    answers = StoredAnswers(sqlite_store, clock=clock)
    calls = []

    def count() -> ReportOut:
        calls.append(1)
        return ReportOut(report_id="R1", title={"zh": "血常规", "en": "Blood count"}, ready=True, prints=len(calls), reprints_left=1)

    assert answers.remember("print:k", ReportOut, count).prints == 1

    restarted = Store(sqlite_store.url)  # what a new server process sees
    try:
        assert StoredSessions(restarted, ttl=300, clock=clock).patient_id(sid) == "P1001"
        assert StoredAnswers(restarted, clock=clock).remember("print:k", ReportOut, count).prints == 1
        assert len(calls) == 1  # the retry got the first answer; nothing was counted twice
        clock.advance(200)
        assert sessions.patient_id(sid) == "P1001"  # use extends it
        clock.advance(250)
        assert sessions.patient_id(sid) == "P1001"
        clock.advance(301)
        assert sessions.patient_id(sid) is None
        assert sessions.patient_id("made-up") is None
    finally:
        restarted.dispose()


def test_a_long_wait_becomes_a_help_item_for_its_room_until_the_patient_is_called(tmp_path):
    from tests.clinic_day import ClinicDay

    clinic = ClinicDay(tmp_path, long_wait_alert_min=30)
    desk = HelpDesk(clinic.store, timezone_name=clinic.service.hospital.site.timezone, clock=lambda: clinic.now)
    try:
        clinic.at("09:00")
        waiting = clinic.walk_in("pediatrics")
        clinic.at("09:31")
        clinic.service.check_alerts()
        desk.tick()
        [item] = desk.open_items()
        assert item.kind == "long_wait" and item.ticket == waiting["number"] and item.department == "pediatrics"
        assert item.concerns_room("r4", ["pediatrics"]) and not item.concerns_room("r1", ["internal"])
        desk.tick()
        assert len(desk.open_items()) == 1  # one item per alert, not one per tick

        clinic.call_next("r4")
        desk.tick()
        assert desk.open_items() == []
        assert desk.get(item.help_id).resolved_by == "queue: called or left"
    finally:
        clinic.close()


def test_replicas_on_postgresql_share_help_items_and_escalate_once(postgres_schema_url, clock):
    stores = [Store(postgres_schema_url), Store(postgres_schema_url)]
    try:
        stores[0].migrate()
        told: list[str] = []
        a, b = (HelpDesk(s, clock=clock, escalate_after=30, on_escalate=lambda i: told.append(i.help_id)) for s in stores)
        item, _ = a.raise_request(kind="red_flag", reason="red_flag", device="kiosk-1", idem_key="same")
        again, new = b.raise_request(kind="red_flag", reason="red_flag", device="kiosk-1", idem_key="same")
        assert not new and again.help_id == item.help_id
        clock.advance(31)
        b.tick()
        a.tick()
        assert told == [item.help_id]
        assert a.acknowledge(item.help_id, "王护士").acknowledged_by == b.get(item.help_id).acknowledged_by == "王护士"
    finally:
        for s in stores:
            s.dispose()
