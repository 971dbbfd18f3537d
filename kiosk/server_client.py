"""``KioskServerClient``: the queue server's HTTP API as blocking Python calls for the kiosk.

    client = KioskServerClient("http://127.0.0.1:8000", token="kiosk-token")
    ticket = client.check_in("AP1001")          # protocol.api.TicketOut

Errors say what the kiosk should do next:

* ``ServerUnavailableError``: no answer (down, network, timeout, 5xx). Say where to go
  instead and retry: every state change carries an ``Idempotency-Key`` so a retry never
  makes a second ticket or a second payment.
* ``NotFoundError`` (404), ``ConflictError`` (409), ``RequestRejectedError`` (other 4xx):
  the server's ``detail`` sentence, ready to show.

Calls block; view-models run them through a task runner (``kiosk.tasks``), never on Kivy's thread.
"""
from __future__ import annotations

import uuid
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from protocol.api import TicketOut
from protocol.api_patient import (
    AppointmentsOut,
    BillsOut,
    HelpOut,
    HelpRequest,
    IdentifyRequest,
    PatientOut,
    PaymentOut,
    PaymentRequest,
    RegistrationRequest,
    ReportOut,
    ReportsOut,
    WalkInDepartmentsOut,
)
from protocol.errors import ClinicflowError, ConflictError, NotFoundError

M = TypeVar("M", bound=BaseModel)


class ServerUnavailableError(ClinicflowError, ConnectionError):
    """The queue server did not answer (or answered 5xx); the request may be retried with the same key."""


class RequestRejectedError(ClinicflowError, ValueError):
    """The server refused the request (401/403/422 ...); ``detail`` is its sentence."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def new_key() -> str:
    """A fresh idempotency key / payment id."""
    return uuid.uuid4().hex


class KioskServerClient:
    """Blocking client of the queue server for one kiosk (thread-safe: httpx.Client is)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json: Any = None, session: str | None = None,
                 key: str | None = None, params: dict | None = None) -> httpx.Response:
        headers = {}
        if session:
            headers["X-Patient-Session"] = session
        if key:
            headers["Idempotency-Key"] = key
        try:
            resp = self._http.request(method, path, json=json, headers=headers, params=params)
        except httpx.HTTPError as exc:  # connect refused, DNS, timeouts, broken connections
            raise ServerUnavailableError(f"the queue server at {self.base_url} did not answer: {exc}") from exc
        if resp.status_code >= 500:
            raise ServerUnavailableError(f"the queue server answered {resp.status_code}")
        if resp.status_code >= 400:
            try:
                detail = str(resp.json().get("detail") or resp.reason_phrase)
            except (ValueError, AttributeError):
                detail = resp.reason_phrase
            if resp.status_code == 404:
                raise NotFoundError(detail)
            if resp.status_code == 409:
                raise ConflictError(detail)
            raise RequestRejectedError(detail, resp.status_code)
        return resp

    def _model(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        return model.model_validate(self._request(method, path, **kw).json())

    @staticmethod
    def _body(model: BaseModel) -> Any:
        return model.model_dump(mode="json", exclude_none=True)

    # -- queue ------------------------------------------------------------------------------------
    def check_in(self, appointment_no: str, *, key: str | None = None) -> TicketOut:
        """Check an appointment in; a repeat returns the same ticket with ``already_checked_in``."""
        return self._model(TicketOut, "POST", "/api/v1/checkins", json={"appointment_no": appointment_no.strip()},
                           key=key or new_key())

    def ticket(self, ticket_id: str) -> TicketOut:
        return self._model(TicketOut, "GET", f"/api/v1/tickets/{ticket_id}")

    def floor_map(self, path: str) -> bytes:
        """The PNG at a ticket's ``where_map`` (a path on this server, "/api/v1/maps/floor2.png")."""
        if not path.startswith("/api/v1/maps/"):
            raise ValueError(f"not a floor map of this server: {path!r}")
        return self._request("GET", path).content

    # -- patient ----------------------------------------------------------------------------------
    def identify(self, request: IdentifyRequest) -> PatientOut:
        return self._model(PatientOut, "POST", "/api/v1/patient/identify", json=self._body(request))

    def appointments(self, session: str) -> AppointmentsOut:
        return self._model(AppointmentsOut, "GET", "/api/v1/patient/appointments", session=session)

    def walk_in_departments(self) -> WalkInDepartmentsOut:
        return self._model(WalkInDepartmentsOut, "GET", "/api/v1/patient/walk-in-departments")

    def register(self, session: str | None, request: RegistrationRequest, *, key: str) -> TicketOut:
        return self._model(TicketOut, "POST", "/api/v1/patient/registrations", json=self._body(request),
                           session=session, key=key)

    def bills(self, session: str) -> BillsOut:
        return self._model(BillsOut, "GET", "/api/v1/patient/bills", session=session)

    def pay(self, session: str, request: PaymentRequest) -> PaymentOut:
        return self._model(PaymentOut, "POST", "/api/v1/patient/payments", json=self._body(request),
                           session=session, key=request.payment_id)

    def payment(self, payment_id: str) -> PaymentOut | None:
        """The server's record of a payment, or None if it never reached the server."""
        try:
            return self._model(PaymentOut, "GET", f"/api/v1/payments/{payment_id}")
        except NotFoundError:
            return None

    def reconcile_payment(self, request: PaymentRequest) -> PaymentOut:
        """Record, after a kiosk restart, a card payment the terminal approved (idempotent on payment_id)."""
        return self._model(PaymentOut, "POST", f"/api/v1/payments/{request.payment_id}/reconcile",
                           json=self._body(request), key=request.payment_id)

    def cancel_payment(self, payment_id: str) -> PaymentOut:
        return self._model(PaymentOut, "POST", f"/api/v1/payments/{payment_id}/cancel", key=payment_id)

    def reports(self, session: str) -> ReportsOut:
        return self._model(ReportsOut, "GET", "/api/v1/patient/reports", session=session)

    def report_pdf(self, session: str, report_id: str) -> bytes:
        return self._request("GET", f"/api/v1/patient/reports/{report_id}/pdf", session=session).content

    def record_report_print(self, session: str, report_id: str, *, key: str) -> ReportOut:
        return self._model(ReportOut, "POST", f"/api/v1/patient/reports/{report_id}/prints", session=session, key=key)

    def end_session(self, session: str) -> None:
        try:
            self._request("DELETE", "/api/v1/patient/session", session=session)
        except ClinicflowError:  # best effort: the session expires on its own
            pass

    def report_session(self, event: dict) -> None:
        """Tell the dashboard how a session ended (kind, done or abandoned, screen, seconds: nothing personal)."""
        try:
            self._request("POST", "/api/v1/kiosk-events", json=event)
        except ClinicflowError:  # a lost usage figure costs nothing to the patient
            pass

    def call_staff(self, request: HelpRequest, *, key: str | None = None, session: str | None = None) -> HelpOut:
        """``session``: the identified patient's, so staff see the patient's ticket."""
        return self._model(HelpOut, "POST", "/api/v1/help-requests", json=self._body(request), key=key or new_key(),
                           session=session)

    def help_state(self, help_id: str) -> HelpOut:
        """Whether staff acknowledged the kiosk's help request (and who), or it escalated."""
        return self._model(HelpOut, "GET", f"/api/v1/help-requests/{help_id}")
