"""A day at a clinic, rule by rule: who is called next and why, on the real service and a real SQLite file."""
from __future__ import annotations

import csv
import io
import threading

import pytest

from protocol.errors import ConflictError, NotFoundError
from queueserver.errors import IdempotencyKeyReused
from queueserver.results import DayClosed
from tests.clinic_day import ClinicDay, clinic_on_both_stores  # noqa: F401  (the ``clinic`` fixture)




def test_emergency_is_called_first_whoever_waited_longer(clinic):
    clinic.at("08:00")
    clinic.walk_in()
    clinic.walk_in()
    clinic.at("08:30")
    urgent = clinic.walk_in(emergency=True)
    call = clinic.call_next("r1")
    assert call["ticket"]["number"] == urgent["number"]
    assert call["reason"] == "emergency: called first"


def test_priority_patients_interleave_one_for_every_two_others(clinic):
    clinic.at("08:00")
    ordinary = [clinic.walk_in()["number"] for _ in range(6)]
    clinic.at("08:05")
    priority = [clinic.walk_in(priority="elderly")["number"] for _ in range(3)]
    calls = []
    for minute in range(9):
        clinic.at(f"08:{10 + minute:02d}")
        calls.append(clinic.call_next("r1"))
    numbers = [c["ticket"]["number"] for c in calls]
    # Two others, then one priority patient, and again: not all priority patients at the front.
    assert numbers == [ordinary[0], ordinary[1], priority[0], ordinary[2], ordinary[3], priority[1],
                       ordinary[4], ordinary[5], priority[2]]
    assert calls[2]["reason"].startswith("priority: age 65+, 1 of every 3 calls")


def test_elderly_appointment_patient_gets_priority_with_age_in_the_reason(clinic):
    clinic.at("08:40")
    clinic.walk_in()
    clinic.walk_in()
    clinic.walk_in()
    no = clinic.book("09:00", age=78)
    clinic.at("09:00")
    clinic.check_in(no)
    reasons = [clinic.call_next("r1")["reason"] for _ in range(3)]
    assert reasons[2] == "priority: age 78, 1 of every 3 calls (appointment 09:00, inside slot)"


def test_appointment_inside_slot_goes_before_walk_ins_and_early_ones_wait(clinic):
    clinic.at("08:40")
    walk = clinic.walk_in()
    appt = clinic.book("09:00")
    clinic.at("08:45")
    early = clinic.check_in(appt)
    assert early["position"] == 2  # behind the walk-in until the slot starts
    clinic.at("08:50")
    first = clinic.call_next("r1")
    assert first["ticket"]["number"] == walk["number"] and first["reason"] == "walk-in, arrived 08:40"
    clinic.at("08:52")
    second_walk = clinic.walk_in()
    clinic.at("08:55")
    # The appointment is still early, so the walk-in who came later is called before it.
    assert clinic.called_number("r1") == second_walk["number"]
    clinic.at("08:56")
    third_walk = clinic.walk_in()
    clinic.at("09:01")
    call = clinic.call_next("r1")
    assert call["ticket"]["number"] == early["number"]
    assert call["reason"] == "appointment 09:00, inside slot"
    assert clinic.called_number("r1") == third_walk["number"]


def test_early_appointment_is_called_when_nobody_else_waits(clinic):
    appt = clinic.book("10:00")
    clinic.at("09:30")
    clinic.check_in(appt)
    call = clinic.call_next("r1")
    assert call["reason"] == "appointment 10:00, arrived early: called because nobody else is waiting"


def test_check_in_too_early_is_refused_with_the_opening_time(clinic):
    appt = clinic.book("11:00")
    clinic.at("09:30")
    with pytest.raises(ConflictError, match="opens at 10:00"):
        clinic.check_in(appt)


def test_late_arrival_loses_the_place_after_the_grace_period(tmp_path):
    clinic = ClinicDay(tmp_path, late_grace_min=15)
    punctual, late = clinic.book("09:00"), clinic.book("09:00")
    clinic.at("09:10")
    walk = clinic.walk_in()
    clinic.at("09:12")
    clinic.check_in(punctual)  # 12 min late: inside the 15 min grace
    clinic.at("09:20")
    late_ticket = clinic.check_in(late)  # 20 min late: queued as a walk-in from 09:20
    clinic.at("09:21")
    assert clinic.call_next("r1")["reason"] == "appointment 09:00, inside slot"
    assert clinic.called_number("r1") == walk["number"]
    call = clinic.call_next("r1")
    assert call["ticket"]["number"] == late_ticket["number"]
    assert call["reason"] == "late for appointment 09:00 (more than 15 min): queued as a walk-in from 09:20"


def test_patient_back_with_results_reenters_near_the_front_of_the_same_room(clinic):
    clinic.at("08:00")
    seen = clinic.walk_in()
    assert clinic.called_number("r2") == seen["number"]
    clinic.service.finish("r2")
    for _ in range(3):
        clinic.walk_in()
    clinic.at("08:30")
    back = clinic.service.return_with_results(seen["ticket_id"]).model_dump(mode="json")
    assert back["status"] == "waiting" and back["number"] == seen["number"] and back["position"] == 1
    call = clinic.call_next("r2")
    assert call["ticket"]["number"] == seen["number"] and call["reason"] == "returning with test results"


def test_nobody_waits_past_the_ageing_bound(tmp_path):
    clinic = ClinicDay(tmp_path, ageing_bound_min=45)
    try:
        clinic.at("08:50")
        walk = clinic.walk_in()
        # Appointment patients keep arriving inside their slots and outrank the walk-in...
        for i in range(6):
            no = clinic.book(f"09:{i * 10:02d}")
            clinic.at(f"09:{i * 10:02d}")
            clinic.check_in(no)
        clinic.at("09:10")
        assert clinic.call_next("r1")["reason"].startswith("appointment")
        clinic.at("09:36")
        # ...until the walk-in has waited 46 min: then the bound puts them first.
        call = clinic.call_next("r1")
        assert call["ticket"]["number"] == walk["number"]
        assert call["reason"] == "waited 46 min, over the 45 min limit"
    finally:
        clinic.close()


def test_call_a_specific_ticket_records_that_the_clinician_chose_it(clinic):
    clinic.at("08:00")
    first = clinic.walk_in()
    second = clinic.walk_in()
    call = clinic.service.call_ticket("r1", second["ticket_id"]).model_dump(mode="json")
    assert call["ticket"]["number"] == second["number"]
    assert call["reason"] == f"chosen by the clinician (next by the rules: {first['number']})"
    with pytest.raises(ConflictError, match="not waiting"):
        clinic.service.call_ticket("r1", second["ticket_id"])
    with pytest.raises(NotFoundError):
        clinic.service.call_ticket("r1", "no-such-ticket")


def test_recall_is_limited_in_spacing_and_count(tmp_path):
    clinic = ClinicDay(tmp_path, max_recalls=2, recall_min_interval_s=20)
    try:
        clinic.at("08:00")
        clinic.walk_in()
        clinic.call_next("r1")
        with pytest.raises(ConflictError, match=r"Wait 20 s more"):
            clinic.service.recall("r1")
        clinic.later(seconds=25)
        first = clinic.service.recall("r1").model_dump(mode="json")
        assert first["kind"] == "recall" and first["reason"] == "recall 1 of 2"
        clinic.later(seconds=25)
        clinic.service.recall("r1")
        clinic.later(seconds=25)
        with pytest.raises(ConflictError, match="no-show"):
            clinic.service.recall("r1")
    finally:
        clinic.close()


def test_no_show_goes_back_after_a_skip_then_is_cancelled(clinic):
    clinic.at("08:00")
    absent = clinic.walk_in()
    other = clinic.walk_in()
    clinic.call_next("r1")
    back = clinic.service.no_show("r1").model_dump(mode="json")
    assert back["status"] == "waiting"
    # Held back for 5 minutes: the next patient is called meanwhile.
    assert clinic.called_number("r1") == other["number"]
    clinic.service.finish("r1")
    clinic.later(minutes=6)
    call = clinic.call_next("r1")
    assert call["ticket"]["number"] == absent["number"]
    gone = clinic.service.no_show("r1").model_dump(mode="json")
    assert gone["status"] == "no_show"
    with pytest.raises(ConflictError, match="Nobody is waiting"):
        clinic.call_next("r1")


def test_start_and_finish_service_and_illegal_transitions(clinic):
    clinic.at("08:00")
    with pytest.raises(ConflictError, match="No patient has been called"):
        clinic.service.start_service("r1")
    clinic.walk_in()
    clinic.call_next("r1")
    assert clinic.service.start_service("r1").status == "serving"
    with pytest.raises(ConflictError, match="serving"):
        clinic.service.recall("r1")
    clinic.later(minutes=12)
    assert clinic.service.finish("r1").status == "done"
    with pytest.raises(NotFoundError):
        clinic.service.finish("r404")


def test_transfer_keeps_the_number_and_uses_the_chosen_placement(clinic):
    clinic.at("08:00")
    patient = clinic.walk_in("internal")
    clinic.call_next("r1")
    clinic.at("08:10")
    waiting_surgery = clinic.walk_in("surgery")
    moved = clinic.service.transfer(patient["ticket_id"], department="surgery",
                                    placement="front").model_dump(mode="json")
    assert moved["number"] == patient["number"] and moved["department"] == "surgery"
    assert moved["position"] == 1
    call = clinic.call_next("r3")
    assert call["ticket"]["number"] == patient["number"]
    assert call["reason"] == "transferred from room 1, placed near the front"
    assert clinic.called_number("r3") == waiting_surgery["number"]
    assert clinic.service.room_state("r1").current is None


def test_paused_room_calls_nobody_until_resumed(clinic):
    clinic.at("08:00")
    clinic.walk_in()
    clinic.service.set_room_status("r1", "paused")
    with pytest.raises(ConflictError, match="paused"):
        clinic.call_next("r1")
    assert clinic.service.room_state("r1").status.value == "paused"
    clinic.service.set_room_status("r1", "open")
    assert clinic.call_next("r1")["ticket"]["number"] == "A001"


def test_cancel_and_end_of_day(clinic):
    clinic.at("08:00")
    a, _b, c = clinic.walk_in(), clinic.walk_in(), clinic.walk_in()
    assert clinic.service.cancel(a["ticket_id"]).status == "cancelled"
    with pytest.raises(ConflictError, match="already cancelled"):
        clinic.service.cancel(a["ticket_id"])
    clinic.call_next("r1")
    clinic.service.start_service("r1")
    clinic.at("17:30")
    assert clinic.service.end_of_day() == DayClosed(cancelled=1, finished=1)
    assert clinic.service.ticket(c["ticket_id"]).status == "cancelled"
    assert clinic.service.room_state("r1").current is None


def test_estimated_wait_follows_recent_service_times(clinic):
    clinic.at("08:00")
    for _ in range(4):
        clinic.walk_in()
    for minute in (0, 20, 40):  # three patients served in 20 min each, by one room
        clinic.at(f"09:{minute:02d}")
        clinic.call_next("r1")
        clinic.service.start_service("r1")
        clinic.later(minutes=20)
        clinic.service.finish("r1")
    clinic.service.set_room_status("r2", "paused")
    tickets = [clinic.walk_in() for _ in range(3)]
    # One open room, 20 min per patient: the third new ticket has three patients ahead of it.
    assert [t["position"] for t in tickets] == [2, 3, 4]
    assert tickets[-1]["estimated_wait_min"] == 60


def test_ticket_numbers_are_unique_under_concurrent_requests(clinic):
    clinic.at("08:00")
    numbers: list[str] = []
    lock = threading.Lock()

    def kiosk() -> None:
        for _ in range(10):
            t = clinic.walk_in("pediatrics")
            with lock:
                numbers.append(t["number"])

    threads = [threading.Thread(target=kiosk) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [f"C{i:03d}" for i in range(1, 81)]


def test_statistics_json_and_csv_for_the_day(clinic):
    clinic.at("08:00")
    a = clinic.walk_in()
    clinic.walk_in()
    clinic.at("08:10")
    clinic.call_next("r1")  # a waited 10 min
    clinic.service.start_service("r1")
    clinic.at("08:25")
    clinic.service.finish("r1")  # 15 min of service
    clinic.service.survey(a["ticket_id"], 4, "kind doctor")
    with pytest.raises(ConflictError, match="already rated"):
        clinic.service.survey(a["ticket_id"], 5)
    clinic.call_next("r1")  # the second waited 25 min
    clinic.later(seconds=30)
    clinic.service.recall("r1")
    clinic.service.no_show("r1")
    stats = clinic.service.stats()
    internal = stats["departments"]["internal"]
    assert internal["tickets"] == 2 and internal["served"] == 1
    assert internal["avg_wait_min"] == 17.5 and internal["p90_wait_min"] == 23.5  # inclusive: 10 + 0.9 * (25 - 10)
    assert internal["avg_service_min"] == 15.0
    assert internal["no_show_rate"] == 0.5 and internal["recalls"] == 1
    assert internal["survey_avg"] == 4.0 and internal["survey_count"] == 1
    rows = list(csv.DictReader(io.StringIO(clinic.service.stats_csv())))
    row = next(r for r in rows if r["scope"] == "department" and r["id"] == "internal")
    assert row["avg_wait_min"] == "17.5" and row["day"] == "2026-03-02"


def test_opening_hours_and_daily_capacity_limit_walk_ins(clinic):
    from datetime import time as clock_time

    h = clinic.service.hospital
    surgery = h.department("surgery").model_copy(update={"opens": clock_time(8, 0), "closes": clock_time(12, 0),
                                                         "daily_capacity": 2})
    clinic.service.replace_hospital(h.model_copy(update={
        "departments": tuple(surgery if d.id == "surgery" else d for d in h.departments)}))
    clinic.at("07:30")
    with pytest.raises(ConflictError, match="Surgery is closed now; it is open from 08:00 to 12:00"):
        clinic.walk_in("surgery")
    clinic.at("08:00")
    clinic.walk_in("surgery")
    clinic.walk_in("surgery")
    with pytest.raises(ConflictError, match="issued all 2 tickets for today"):
        clinic.walk_in("surgery")
    clinic.at("12:00")
    with pytest.raises(ConflictError, match="closed now"):
        clinic.walk_in("surgery")
    assert clinic.walk_in("internal", emergency=True)["number"] == "A001"  # emergencies are never turned away


def test_a_retried_write_gets_its_first_result_whatever_it_was(clinic):
    """Idempotency wraps every write: the retry's answer is the first one, and nothing runs twice."""
    clinic.at("08:00")
    first = clinic.service.walk_in("internal", idem_key="desk:1", fingerprint="a")
    again = clinic.service.walk_in("internal", idem_key="desk:1", fingerprint="a")
    assert again == first and again.created
    call = clinic.service.call_next("r1", idem_key="r1:1", fingerprint="b")
    assert clinic.service.call_next("r1", idem_key="r1:1", fingerprint="b") == call
    assert clinic.service.room_state("r1").current.ticket == first.ticket.number  # no second patient called
    with pytest.raises(IdempotencyKeyReused):
        clinic.service.call_next("r1", idem_key="r1:1", fingerprint="another request")


def test_a_retry_across_an_upgrade_gets_the_answer_stored_by_the_older_server(clinic):
    """Rows written before results were stored as domain data hold the HTTP answer: still honoured."""
    from datetime import timezone

    from sqlalchemy import insert

    from queueserver.store import idempotency

    clinic.at("08:00")
    issued = clinic.service.walk_in("internal")
    with clinic.store.tx() as tx:
        tx.conn.execute(insert(idempotency).values(
            key="old:1", fingerprint="f", status_code=201, body=issued.ticket.model_dump_json(),
            created_at=clinic.now.astimezone(timezone.utc)))
    again = clinic.service.walk_in("internal", idem_key="old:1", fingerprint="f")
    assert again.created and again.ticket == issued.ticket
    assert clinic.service.room_state("r1").waiting_count == 1
