"""Results on the phone: when each report is ready, and the PDF after identification.

Endpoints (used by the phone status page ``/status/{ticket_id}``)::

    GET /api/v1/phone/tickets/{ticket_id}/reports   summary, no identification: count and ready times only
    GET /api/v1/phone/reports                       the identified patient's reports (titles, ready, expected)
    GET /api/v1/phone/reports/{id}/pdf              the PDF of a ready report (the patient's own only)

Privacy: a ticket link can be seen over a shoulder or forwarded, so before identification the page
shows only "N reports, M ready, next expected at HH:MM" - no titles (a title such as "HIV test" is
itself sensitive). Titles and PDFs need a session from ``POST /api/v1/phone/identify`` (phone + last
4 of the ID, throttled). Viewing on the phone does not count as a print (the kiosk's reprint limit
is about paper).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Response
from pydantic import BaseModel

from queueserver.booking_api import SESSION_NEEDED, PhoneIdentity
from queueserver.hospital.port import Patient


class ReportsSummaryOut(BaseModel):
    count: int
    ready: int
    next_ready_at: datetime | None  # the earliest expected time of a report not ready yet
    ready_times: list[datetime]  # expected times of the reports not ready yet, in order
    timezone: str  # the hospital's zone: the page shows times on the hospital's clock


class PhoneReportOut(BaseModel):
    report_id: str
    title: dict[str, str]
    ready: bool
    ready_at: datetime | None


def results_router(service: Any, store: Any, ident: PhoneIdentity) -> APIRouter:
    """Routes for results on the phone (see the module docstring)."""
    router = APIRouter(tags=["results"])

    def patient_of_ticket(ticket_id: str) -> str:
        from sqlalchemy import select

        from queueserver.store import tickets

        with store.read() as conn:
            row = conn.execute(select(tickets.c.patient_id).where(tickets.c.ticket_id == ticket_id)).first()
        if row is None:
            raise HTTPException(404, f"There is no ticket {ticket_id}.")
        return str(row[0]) if row[0] else ""

    def me(x_patient_session: str | None = Header(None, max_length=64)) -> Patient:
        return ident.patient(x_patient_session)

    @router.get("/api/v1/phone/tickets/{ticket_id}/reports", response_model=ReportsSummaryOut)
    def summary(ticket_id: str) -> ReportsSummaryOut:
        pid = patient_of_ticket(ticket_id)
        reports = service.backend.reports_for_patient(pid) if pid else []
        waiting = sorted(r.ready_at for r in reports if not r.ready and r.ready_at is not None)
        return ReportsSummaryOut(count=len(reports), ready=sum(1 for r in reports if r.ready),
                                 next_ready_at=waiting[0] if waiting else None, ready_times=waiting,
                                 timezone=service.hospital.site.timezone)

    @router.get("/api/v1/phone/reports", response_model=list[PhoneReportOut], responses=SESSION_NEEDED)
    def reports(patient: Patient = Depends(me)) -> list[PhoneReportOut]:
        return [PhoneReportOut(report_id=r.report_id, title=r.title, ready=r.ready, ready_at=r.ready_at)
                for r in service.backend.reports_for_patient(patient.patient_id)]

    @router.get("/api/v1/phone/reports/{report_id}/pdf", responses=SESSION_NEEDED)
    def pdf(report_id: str, patient: Patient = Depends(me)) -> Response:
        report = next((r for r in service.backend.reports_for_patient(patient.patient_id)
                       if r.report_id == report_id), None)
        if report is None:
            raise HTTPException(404, f"There is no report {report_id} for you.")
        if not report.ready or report.pdf_path is None:
            raise HTTPException(409, "This report is not ready yet.")
        return Response(report.pdf_path.read_bytes(), media_type="application/pdf",
                        headers={"Cache-Control": "no-store"})

    return router
