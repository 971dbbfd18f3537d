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


def test_e_invoice_only_for_a_paid_payment_issued_once_and_listed_for_the_patient(hospital):
    from queueserver.hospital.einvoice import ElectronicInvoices

    assert isinstance(hospital, ElectronicInvoices)
    with pytest.raises(NotFoundError):
        hospital.issue_invoice("never-paid")
    hospital.record_payment(PaymentRecord("later-1", ("B1003",), "pay_later", Decimal("23.50"), "deferred"))
    with pytest.raises(ConflictError):  # nothing was paid: a pay-later slip gets no invoice
        hospital.issue_invoice("later-1")
    hospital.record_payment(PaymentRecord("pay-1", ("B1004",), "bank_card", Decimal("54.00"), "paid", provider_ref="A1"))
    first = hospital.issue_invoice("pay-1")
    assert hospital.issue_invoice("pay-1") == first  # asked again (a retried read): the same invoice
    assert first.status == "issued" and len(first.invoice_code) == 8 and len(first.invoice_number) == 10
    assert (first.total, first.insurance_part, first.self_pay) == (Decimal("180.00"), Decimal("126.00"), Decimal("54.00"))
    assert first.verify_url.endswith(f"/einvoice/{first.invoice_code}/{first.invoice_number}?c={first.check_code}")
    assert hospital.invoices_for_patient("P1003") == [first] and hospital.invoices_for_patient("P1001") == []
    assert hospital.find_invoice(first.invoice_code, first.invoice_number) == first
    hospital.clear()
    assert hospital.invoices_for_patient("P1003") == []


def test_slow_e_invoice_platform_answers_pending_at_once_and_issues_later(hospital):
    """The server asks through an InvoiceClerk, which never lets a slow or failing backend hold the receipt."""
    from queueserver.einvoice_api import InvoiceClerk

    hospital.set_einvoice_delay(3600)
    hospital.record_payment(PaymentRecord("pay-2", ("B1006",), "bank_card", Decimal("10.00"), "paid", provider_ref="A2"))
    pending = hospital.issue_invoice("pay-2")
    assert pending.status == "pending" and pending.invoice_number == "" and pending.verify_url == ""
    hospital.set_einvoice_delay(0)  # the platform answers
    [issued] = hospital.invoices_for_patient("P1006")
    assert issued.status == "issued" and issued.invoice_number

    release = threading.Event()

    asked: list[str] = []

    class Stuck:  # an adapter whose finance platform never answers
        def issue_invoice(self, payment_id):
            asked.append(payment_id)
            release.wait(10)
            raise TimeoutError("platform")

        def invoices_for_patient(self, patient_id):
            return []

    class Failing(Stuck):
        def issue_invoice(self, payment_id):
            raise OSError("HIS down")

    try:
        stuck = InvoiceClerk(Stuck(), wait_s=0.05)
        assert stuck.invoice("pay-3", Decimal("5.00")).status == "pending"
        for _ in range(10):  # the kiosk polls the payment: the platform is asked once, not once per read
            assert stuck.invoice("pay-3").status == "pending"
        assert asked == ["pay-3"]
    finally:
        release.set()
    assert InvoiceClerk(Failing()).invoice("pay-3").status == "pending"  # asked again on the next read
    assert InvoiceClerk(hospital).invoice("later-none") is None  # unknown payment: no invoice line
    assert not InvoiceClerk(object()).available and InvoiceClerk(object()).invoice("pay-2") is None  # no capability
