"""The hospital information the queue server reads and writes through the ``HospitalBackend`` port."""
from queueserver.hospital.port import (
    Appointment,
    Bill,
    BillItem,
    HospitalBackend,
    LabReport,
    Patient,
    PaymentRecord,
)

__all__ = ["Appointment", "Bill", "BillItem", "HospitalBackend", "LabReport", "Patient", "PaymentRecord"]
