"""HTTP API models of the queue server (``/api/v1``), shared by the server and its clients.

Errors always come back as ``{"detail": "<plain sentence>"}`` with a 4xx status:
400/422 bad input, 401 no or bad token, 403 not allowed for this role or room,
404 unknown appointment/room/ticket, 409 not allowed in the current state, 429 too many
failed identifications. Every field is bounded (pattern, length, range), so no value a
client can send reaches the service unchecked.
Devices that may retry send an ``Idempotency-Key`` header on every state change.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AppointmentNo = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{4,32}$", description="appointment number as on the QR code or slip")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckInRequest(_Model):
    appointment_no: AppointmentNo


class TicketOut(_Model):
    """A queue ticket as a patient or device sees it (never a full name)."""

    ticket_id: str
    number: str = Field(description="per-department prefix + per-day sequence, e.g. A012")
    department: str
    department_name: dict[str, str]
    room: str | None = Field(None, description="room the ticket is queued for, if already assigned")
    room_name: dict[str, str] = Field(default_factory=dict)
    where: dict[str, str] = Field(default_factory=dict, description="building, floor and the way to the room "
                                  "(or the department's waiting area before a room is known), per language")
    where_map: str | None = Field(None, description="a small floor map of ``where`` (PNG) on this server, "
                                  "e.g. /api/v1/maps/floor2.png; none when the hospital file gives none")
    status: str = Field(description="waiting, called, serving, done, no_show, cancelled")
    position: int | None = Field(None, description="1 = next; None once called")
    estimated_wait_min: int | None = None
    issued_at: datetime
    masked_name: str = ""
    status_url: str = Field(description="patient status page, encoded in the ticket's QR code")
    already_checked_in: bool = False


class CallOut(_Model):
    """The result of calling a patient to a room."""

    call_id: str
    kind: str  # call | recall
    room: str
    ticket: TicketOut
    reason: str = Field(description="why this ticket was next, in plain words")


class ErrorOut(_Model):
    """Every error answer: one plain sentence."""

    detail: str


class StreamTicketOut(_Model):
    """``POST /api/v1/stream-tickets``: opens a live stream as the caller (``?ticket=``) for ``expires_in`` seconds."""

    ticket: str
    expires_in: int


Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class WalkInRequest(_Model):
    """``POST /api/v1/walkins``: a ticket without an appointment (kiosk registration, staff at a desk)."""

    department: Ident
    priority: Literal["elderly", "pregnant", "disabled"] | None = None
    emergency: bool = Field(False, description="staff only: a kiosk token gets 403")
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] = "zh"


class CallTicketRequest(_Model):
    """``POST /api/v1/rooms/{room}/call``: call this waiting ticket out of order."""

    ticket_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class TransferRequest(_Model):
    """``POST /api/v1/tickets/{id}/transfer``: same number, another department and/or room (at least one)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"department": {"type": "string"}}, "required": ["department"]},
        {"properties": {"room": {"type": "string"}}, "required": ["room"]}]})

    department: Ident | None = None
    room: Ident | None = None
    placement: Literal["front", "keep", "back"] = "keep"

    @model_validator(mode="after")
    def _somewhere(self) -> "TransferRequest":
        if self.department is None and self.room is None:
            raise ValueError("give a department or a room to transfer to")
        return self


class RoomStatusRequest(_Model):
    """``PATCH /api/v1/admin/rooms/{room}``."""

    status: Literal["open", "paused", "closed"]


class SurveyRequest(_Model):
    """``POST /api/v1/tickets/{id}/survey``: once, after the visit."""

    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=500)] = ""
