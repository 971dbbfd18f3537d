"""A clinic day on a clock the test moves: the real QueueService, real SQLite, real hospital backend.

Used by the queue scenario and property tests; no HTTP and no MQTT unless a publisher is given.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from queueserver.hospital.embedded import EmbeddedHospitalBackend
from queueserver.hospital.port import Appointment, Patient
from queueserver.hospital_file import Rules, load_hospital
from queueserver.service import QueueService
from queueserver.store import Store

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 2)


class ClinicDay:
    """``at("09:00")`` moves the clock; ``book``/``check_in``/``walk_in``/``call_next`` act like the people do."""

    def __init__(self, tmp: Path, *, day: date = DAY, publisher=None, db: str | None = None,  # type: ignore[no-untyped-def]
                 **rules: object) -> None:
        base = load_hospital()
        hospital = base.model_copy(update={"rules": Rules(**{**base.rules.model_dump(), **rules})})
        self.day = day
        self.now = datetime.combine(day, time(8, 0), SH)
        self.backend = EmbeddedHospitalBackend(tmp / "his.sqlite3")
        self.store = Store(db or str(tmp / "queue.sqlite3"))
        self.store.migrate()
        self.service = QueueService(self.store, hospital, self.backend, clock=lambda: self.now, publisher=publisher)
        self.service.ensure_rooms()
        self._n = 0

    def at(self, hhmm: str) -> "ClinicDay":
        h, m = map(int, hhmm.split(":"))
        self.now = datetime.combine(self.day, time(h, m), SH)
        return self

    def later(self, **delta: float) -> "ClinicDay":
        self.now += timedelta(**delta)
        return self

    def book(self, slot: str, department: str = "internal", *, age: int = 40, room: str | None = None,
             pregnant: bool = False, name: str = "张三丰") -> str:
        """A patient with an appointment today at ``slot`` (HH:MM); returns the appointment number."""
        self._n += 1
        pid, no = f"T{self._n:04d}", f"AP{9000 + self._n}"
        born = date(self.day.year - age, 1, 1)
        self.backend.add_patient(Patient(patient_id=pid, name=name, birth_date=born, pregnant=pregnant))
        h, m = map(int, slot.split(":"))
        start = datetime.combine(self.day, time(h, m), SH)
        self.backend.add_appointment(Appointment(appointment_no=no, patient_id=pid, department=department,
                                                 slot_start=start, slot_end=start + timedelta(minutes=30), room=room))
        return no

    def check_in(self, appointment_no: str) -> dict:
        return self.service.check_in(appointment_no).ticket.model_dump(mode="json")

    def walk_in(self, department: str = "internal", **kw: object) -> dict:
        return self.service.walk_in(department, **kw).ticket.model_dump(mode="json")  # type: ignore[arg-type]

    def call_next(self, room: str = "r1") -> dict:
        return self.service.call_next(room).model_dump(mode="json")

    def called_number(self, room: str = "r1") -> str:
        return self.call_next(room)["ticket"]["number"]

    def close(self) -> None:
        self.backend.close()
        self.store.dispose()


@pytest.fixture(name="clinic", params=["sqlite", "postgresql"])
def clinic_on_both_stores(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The same clinic day on SQLite (the embedded default) and on PostgreSQL (one schema per test).

    Import it into a test module (``from tests.clinic_day import clinic_on_both_stores``): its tests that
    take ``clinic`` run on both stores.
    """
    db = request.getfixturevalue("postgres_schema_url") if request.param == "postgresql" else None
    day = ClinicDay(tmp_path, db=db)
    yield day
    day.close()
