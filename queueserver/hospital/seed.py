"""The demo hospital: patients, today's appointments, bills and lab reports (real PDF files).

Everything time-dependent is placed relative to the moment of seeding, so that a demo or a
test started at any hour finds the same situations:

=========  ==============================  =====================================================
AP1001     张伟 (demo patient, 40)          internal, slot contains "now"; bills B1001, B1002;
                                            reports R1001 (ready), R1002 (ready at now + 2 h)
AP1002     王秀英 (82, pay later allowed)    internal, slot in 90 min (early: check-in not yet open)
AP1003     李娜 (pregnant)                  surgery, slot contains "now"
AP1004     刘洋 (disabled)                  surgery, slot ended 2 h ago (late)
AP1005     陈小明 (child, 6)                pediatrics, slot contains "now"
AP1006     赵军 (68)                        internal, slot contains "now", booked into room r2
AP1007     王秀英                           internal follow-up, slot in 4 h
AP1008     Emily Carter (English, uninsured) surgery, slot in 20 min
=========  ==============================  =====================================================

Identification data (phone + last four of the ID; card numbers) is in :data:`DEMO_PATIENTS`
and repeated in ``docs/hospital-backend.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from queueserver.hospital.embedded import EmbeddedHospitalBackend
from queueserver.hospital.port import Appointment, Bill, BillItem, LabReport, Patient

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
SLOT = timedelta(minutes=30)


@dataclass(frozen=True)
class DemoPatient:
    patient: Patient
    id_card: str
    insurance_card: str | None


def _birth(years: int, today: date, month: int = 3, day: int = 15) -> date:
    """A birth date that makes the patient ``years`` old (birthday already passed this year or not: fine)."""
    born = date(today.year - years, month, day)
    return born if (today.month, today.day) >= (month, day) else date(today.year - years - 1, month, day)


def demo_patients(today: date) -> list[DemoPatient]:
    """The demo hospital's patients, with ages that stay the same whatever the date."""
    def p(pid, name, age, phone, last4, id_card, ins_card, **kw) -> DemoPatient:
        cards = tuple(c for c in (id_card, ins_card) if c)
        return DemoPatient(Patient(patient_id=pid, name=name, birth_date=_birth(age, today), phone=phone,
                                   id_last4=last4, card_numbers=cards, **kw), id_card, ins_card)
    return [
        p("P1001", "张伟", 40, "13800000001", "1234", "110101198603151234", "YB1001"),
        p("P1002", "王秀英", 82, "13800000002", "5678", "11010119440315567X", "YB1002", pay_later_eligible=True),
        p("P1003", "李娜", 31, "13800000003", "2468", "110101199503152468", "YB1003", pregnant=True),
        p("P1004", "刘洋", 56, "13800000004", "1357", "110101197003151357", "YB1004", disabled=True),
        p("P1005", "陈小明", 6, "13800000005", "9753", "110101202003159753", "YB1005"),
        p("P1006", "赵军", 68, "13800000006", "8642", "110101195803158642", "YB1006"),
        p("P1008", "Emily Carter", 35, "13800000008", "4321", "E12344321", None, insured=False, language="en"),
    ]


DEMO_PATIENTS = {d.patient.patient_id: d for d in demo_patients(date(2026, 1, 1))}
"""The demo patients keyed by id (ages relative to 2026 here; :func:`seed_demo` uses the seeding day)."""


def _slot_containing(now: datetime) -> datetime:
    """Start of the half-hour slot grid cell that contains ``now``."""
    return now.replace(minute=(now.minute // 30) * 30, second=0, microsecond=0)


def _bills(today: date) -> list[Bill]:
    def item(zh, en, amount, covered) -> BillItem:
        return BillItem({"zh": zh, "en": en}, Decimal(amount), Decimal(covered))
    return [
        Bill("B1001", "P1001", (item("诊查费", "Consultation fee", "25.00", "15.00"),
                                item("血常规", "Full blood count", "30.00", "21.00"),
                                item("胸部 X 光", "Chest X-ray", "120.00", "84.00"))),
        Bill("B1002", "P1001", (item("药费：阿莫西林胶囊", "Medicine: amoxicillin capsules", "36.50", "25.55"),)),
        Bill("B1003", "P1002", (item("诊查费", "Consultation fee", "25.00", "15.00"),
                                item("心电图", "ECG", "45.00", "31.50"))),
        Bill("B1004", "P1003", (item("产科 B 超", "Obstetric ultrasound", "180.00", "126.00"),)),
        Bill("B1006", "P1006", (item("诊查费", "Consultation fee", "25.00", "15.00"),)),
        Bill("B1008", "P1008", (item("诊查费", "Consultation fee", "25.00", "0.00"),
                                item("换药", "Wound dressing", "40.00", "0.00"))),
    ]


def write_report_pdf(path: Path, *, title: dict[str, str], patient: Patient, rows: list[tuple[str, str, str, str]],
                     issued: datetime) -> Path:
    """Render an A4 lab report to a real PDF (one page, 150 dpi image) with the CJK font."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 1240, 1754  # A4 at 150 dpi
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)

    def font(size: int):
        try:
            return ImageFont.truetype(str(CJK_FONT), size)
        except OSError:  # no CJK font installed: still a readable (Latin) report
            return ImageFont.load_default(size)

    big, mid, small = font(52), font(32), font(28)
    draw.text((90, 90), "clinicflow 演示医院 · Demo Hospital", font=mid, fill=0)
    draw.text((90, 160), f"{title['zh']} / {title['en']}", font=big, fill=0)
    draw.line((90, 250, width - 90, 250), fill=0, width=3)
    draw.text((90, 280), f"姓名 Name: {patient.name}    病人号 Patient: {patient.patient_id}", font=small, fill=0)
    draw.text((90, 330), f"报告时间 Issued: {issued:%Y-%m-%d %H:%M}", font=small, fill=0)
    y = 420
    for col, x in zip(("项目 Test", "结果 Result", "单位 Unit", "参考范围 Range"), (90, 560, 780, 960)):
        draw.text((x, y), col, font=small, fill=0)
    y += 60
    draw.line((90, y - 10, width - 90, y - 10), fill=0, width=2)
    for test, value, unit, ref in rows:
        for text, x in zip((test, value, unit, ref), (90, 560, 780, 960)):
            draw.text((x, y), text, font=small, fill=0)
        y += 54
    draw.text((90, height - 140), "本报告仅对所检标本负责。This report applies to the sample tested only.",
              font=small, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, "PDF", resolution=150.0, title=title["en"], author="clinicflow demo hospital")
    return path


def seed_demo(backend: EmbeddedHospitalBackend, *, now: datetime | None = None, reports_dir: Path | None = None,
              force: bool = False) -> bool:
    """Fill ``backend`` with the demo hospital; returns False (and changes nothing) if it already has patients.

    ``now`` (timezone-aware; default: the current time in the backend's zone) anchors every
    appointment slot. ``reports_dir`` receives the report PDFs (default: ``reports/`` beside
    the database file, or a temporary folder for an in-memory database). ``force`` re-seeds
    over existing data (restores the demo's opening state).
    """
    if not backend.is_empty():
        if not force:
            return False
        backend.clear()
    now = (now or datetime.now(backend.tz)).astimezone(backend.tz)
    today = now.date()
    if reports_dir is None:
        if backend.db_path == ":memory:":
            import tempfile
            reports_dir = Path(tempfile.mkdtemp(prefix="clinicflow-reports-"))
        else:
            reports_dir = Path(backend.db_path).resolve().parent / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)

    people = {d.patient.patient_id: d for d in demo_patients(today)}
    for d in people.values():
        kinds = {d.id_card: "id"} | ({d.insurance_card: "insurance"} if d.insurance_card else {})
        backend.add_patient(d.patient, card_kinds=kinds)

    cur = _slot_containing(now)

    def appt(no, pid, dept, start, room=None, clinician=None) -> Appointment:
        return Appointment(no, pid, dept, start, start + SLOT, clinician=clinician, room=room)
    for a in (
        appt("AP1001", "P1001", "internal", cur, clinician="Dr. Zhou"),
        appt("AP1002", "P1002", "internal", cur + timedelta(minutes=90), clinician="Dr. Zhou"),
        appt("AP1003", "P1003", "surgery", cur, clinician="Dr. Sun"),
        appt("AP1004", "P1004", "surgery", cur - timedelta(hours=2), clinician="Dr. Sun"),
        appt("AP1005", "P1005", "pediatrics", cur, clinician="Dr. Wu"),
        appt("AP1006", "P1006", "internal", cur, room="r2", clinician="Dr. Qian"),
        appt("AP1007", "P1002", "internal", cur + timedelta(hours=4), clinician="Dr. Zhou"),
        appt("AP1008", "P1008", "surgery", cur + timedelta(minutes=20), clinician="Dr. Sun"),
    ):
        backend.add_appointment(a)

    for bill in _bills(today):
        backend.add_bill(bill)

    blood = [("白细胞 WBC", "6.2", "10^9/L", "3.5-9.5"), ("红细胞 RBC", "4.8", "10^12/L", "4.3-5.8"),
             ("血红蛋白 HGB", "145", "g/L", "130-175"), ("血小板 PLT", "210", "10^9/L", "125-350")]
    urine = [("尿蛋白 PRO", "阴性 neg.", "", "阴性 neg."), ("尿糖 GLU", "阴性 neg.", "", "阴性 neg."),
             ("pH", "6.0", "", "4.5-8.0")]
    reports = [
        ("R1001", "P1001", {"zh": "血常规", "en": "Full blood count"}, True, None, blood),
        ("R1002", "P1001", {"zh": "胸部 CT", "en": "Chest CT"}, False, now + timedelta(hours=2), None),
        ("R1003", "P1002", {"zh": "尿常规", "en": "Urine test"}, True, None, urine),
        ("R1004", "P1002", {"zh": "血常规", "en": "Full blood count"}, True, None, blood),
        ("R1008", "P1008", {"zh": "血常规", "en": "Full blood count"}, True, None, blood),
    ]
    for rid, pid, title, ready, ready_at, rows in reports:
        pdf = None
        if ready:
            pdf = write_report_pdf(reports_dir / f"{rid}.pdf", title=title, patient=people[pid].patient,
                                   rows=rows or [], issued=now - timedelta(hours=1))
        backend.add_report(LabReport(rid, pid, title, ready, ready_at=ready_at, pdf_path=pdf))
    return True
