"""The embedded demo hospital (SQLite) behaves like the HIS a kiosk and the queue server talk to."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from protocol.errors import ConflictError, NotFoundError
from queueserver.hospital.embedded import EmbeddedHospitalBackend
from queueserver.hospital.port import HospitalBackend, PaymentRecord
from queueserver.hospital.seed import seed_demo

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 9, 40, tzinfo=TZ)


@pytest.fixture
def hospital(tmp_path):
    backend = EmbeddedHospitalBackend(tmp_path / "his.sqlite")
    seed_demo(backend, now=NOW)
    yield backend
    backend.close()


def test_embedded_backend_implements_the_port(hospital):
    assert isinstance(hospital, HospitalBackend)


def test_demo_patient_ap1001_slot_contains_seeding_time(hospital):
    appt = hospital.find_appointment("ap1001")  # scanners and keypads may give lower case
    assert appt.department == "internal" and appt.patient_id == "P1001"
    assert appt.slot_start <= NOW < appt.slot_end
    assert appt.status == "booked"


def test_seed_places_early_and_late_appointments_in_the_three_departments(hospital):
    depts = {hospital.find_appointment(f"AP100{i}").department for i in range(1, 9)}
    assert {"internal", "surgery", "pediatrics"} <= depts
    assert hospital.find_appointment("AP1002").slot_start > NOW + timedelta(minutes=60)  # early
    assert hospital.find_appointment("AP1004").slot_end < NOW  # late


def test_seed_has_priority_patients(hospital):
    elderly = hospital.get_patient("P1002")
    assert elderly.age_on(NOW.date()) >= 65 and elderly.pay_later_eligible
    assert hospital.get_patient("P1003").pregnant
    assert hospital.get_patient("P1004").disabled
    assert hospital.get_patient("P1005").age_on(NOW.date()) < 14


def test_seed_is_idempotent_unless_forced(hospital):
    hospital.mark_checked_in("AP1001")
    assert seed_demo(hospital, now=NOW) is False
    assert hospital.find_appointment("AP1001").status == "checked_in"  # a restart keeps the day's state
    assert seed_demo(hospital, now=NOW, force=True) is True
    assert hospital.find_appointment("AP1001").status == "booked"


def test_patient_found_by_id_card_or_insurance_card(hospital):
    assert hospital.find_patient_by_card("110101198603151234").patient_id == "P1001"
    assert hospital.find_patient_by_card("YB1002").patient_id == "P1002"
    assert hospital.find_patient_by_card("11010119440315567x").patient_id == "P1002"  # lower-case X digit
    assert hospital.find_patient_by_card("NOPE") is None


def test_phone_identification_needs_the_matching_id_digits(hospital):
    assert hospital.find_patient_by_phone("13800000001", "1234").name == "张伟"
    assert hospital.find_patient_by_phone("13800000001", "9999") is None
    assert hospital.find_patient_by_phone("13899999999", "1234") is None


def test_appointments_for_patient_lists_todays_in_time_order(hospital):
    appts = hospital.appointments_for_patient("P1002", NOW.date())
    assert [a.appointment_no for a in appts] == ["AP1002", "AP1007"]
    assert hospital.appointments_for_patient("P1002", NOW.date() + timedelta(days=1)) == []


def test_mark_checked_in_unknown_appointment_raises_not_found(hospital):
    with pytest.raises(NotFoundError):
        hospital.mark_checked_in("AP9999")


def test_bills_itemised_with_insurance_split(hospital):
    bills = hospital.outstanding_bills("P1001")
    assert [b.bill_id for b in bills] == ["B1001", "B1002"]
    b = bills[0]
    assert b.total == Decimal("175.00") and b.insurance_part == Decimal("120.00") and b.self_pay == Decimal("55.00")
    assert b.items[0].description["zh"] == "诊查费"


def _payment(pid="pay-1", status="paid", bills=("B1001", "B1002"), amount="65.95"):
    return PaymentRecord(payment_id=pid, bill_ids=bills, method="qr", amount=Decimal(amount), status=status,
                         provider_ref="sandbox-1")


def test_record_payment_settles_bills_once_even_when_retried(hospital):
    first = hospital.record_payment(_payment())
    again = hospital.record_payment(_payment())
    assert first == again and first.status == "paid" and first.paid_at is not None
    assert hospital.outstanding_bills("P1001") == []
    with pytest.raises(ConflictError):  # a second, different payment for the same bills
        hospital.record_payment(_payment(pid="pay-2"))


def test_pending_payment_moves_to_paid_and_a_final_status_never_changes(hospital):
    hospital.record_payment(_payment(status="pending"))
    assert len(hospital.outstanding_bills("P1001")) == 2  # nothing settled while pending
    hospital.record_payment(_payment(status="failed"))
    assert hospital.record_payment(_payment(status="paid")).status == "failed"
    assert len(hospital.outstanding_bills("P1001")) == 2


def test_record_payment_rejects_wrong_amount_and_unknown_bill(hospital):
    with pytest.raises(ConflictError):
        hospital.record_payment(_payment(amount="1.00"))
    with pytest.raises(NotFoundError):
        hospital.record_payment(_payment(bills=("B9999",)))


def test_concurrent_retries_of_one_payment_record_it_once(hospital):
    results = []
    threads = [threading.Thread(target=lambda: results.append(hospital.record_payment(_payment())))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.paid_at for r in results}) == 1


def test_payment_survives_reopening_the_database(tmp_path):
    path = tmp_path / "his.sqlite"
    with EmbeddedHospitalBackend(path) as backend:
        seed_demo(backend, now=NOW)
        backend.record_payment(_payment())
    with EmbeddedHospitalBackend(path) as reopened:
        assert reopened.get_payment("pay-1").status == "paid"


def test_ready_reports_are_real_pdfs_and_prints_are_counted(hospital):
    reports = {r.report_id: r for r in hospital.reports_for_patient("P1001")}
    ready = reports["R1001"]
    assert ready.ready and ready.pdf_path.read_bytes().startswith(b"%PDF-")
    assert hospital.record_report_print("R1001").prints == 1
    assert hospital.record_report_print("R1001").prints == 2


def test_report_not_ready_says_when_and_cannot_be_printed(hospital):
    pending = hospital.get_report("R1002")
    assert not pending.ready and pending.ready_at > NOW and pending.pdf_path is None
    with pytest.raises(ConflictError):
        hospital.record_report_print("R1002")
