"""Versioned MQTT payload models (v1).

Every payload is a frozen pydantic model that rejects unknown keys and carries
``v`` (on the wire it is required: a payload without it is refused); ``decode_payload``
is the one way bytes from the network become a model, and it raises ``ProtocolError``
(never anything else) for bad input, so a subscriber can log and drop in one place.

Ordering and timeliness (``docs/protocol.md``): room snapshots and call events carry the
store's ``epoch`` with their ``seq`` (screens order by (epoch, seq)); a call event carries
``announce_within_s``, the window after ``ts`` in which a screen may still speak it.
"""
from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import ProtocolError

PROTOCOL_VERSION: Literal[1] = 1
NO_EPOCH = "0"
"""The epoch of a payload built before the publisher stamped the store's real one."""
DEFAULT_ANNOUNCE_WINDOW_S = 10
"""A call is spoken only within this many seconds of being made, unless the server says otherwise."""
# A room snapshot with a long waiting list is a few KB; anything far bigger is
# an attack or a bug, and must not reach a parser on a Pi.
MAX_PAYLOAD_BYTES = 64 * 1024

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TicketNumber = Annotated[str, Field(pattern=r"^[A-Z]{1,3}[0-9]{1,5}$")]
ShortText = Annotated[str, Field(max_length=200)]
TimeZoneName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,3}$", max_length=64)]
LanguageTexts = Annotated[dict[Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")], ShortText], Field(max_length=8)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    v: Literal[1] = PROTOCOL_VERSION


class RoomStatus(str, Enum):
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


class CallKind(str, Enum):
    CALL = "call"
    RECALL = "recall"


class CurrentCall(BaseModel):
    """The ticket a room is calling or serving now, as the public may see it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: Ident
    ticket: TicketNumber
    masked_name: ShortText = ""
    called_at: datetime
    recall_count: int = Field(0, ge=0)


class RoomState(_Payload):
    """Retained snapshot of one room: everything a screen needs to draw it from scratch."""

    OMIT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("room_where",)

    seq: int = Field(ge=0, description="monotonic per room within one epoch")
    epoch: Ident = Field(NO_EPOCH, description="the store generation: changes when the database may have been replaced")
    ts: datetime
    site: Ident
    room: Ident
    room_name: LanguageTexts = Field(default_factory=dict, description="display name per language")
    room_where: LanguageTexts = Field(default_factory=dict, description="building, floor, the way there (optional, "
                                      "like CallEvent.room_where: left off the wire when empty)")
    department: Ident
    department_name: LanguageTexts = Field(default_factory=dict)
    status: RoomStatus
    current: CurrentCall | None = None
    next_tickets: tuple[TicketNumber, ...] = Field(default=(), max_length=20)
    waiting_count: int = Field(0, ge=0)
    timezone: TimeZoneName | None = Field(None, description="the hospital's IANA time zone: screens show its time")


class CallEvent(_Payload):
    """One call or recall of a ticket to a room, with the words to announce per language."""

    OMIT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("room_where",)

    id: Ident
    seq: int = Field(ge=0, description="the room's seq of the snapshot this call produced")
    epoch: Ident = Field(NO_EPOCH, description="the store generation of that seq (see RoomState.epoch)")
    ts: datetime
    site: Ident
    room: Ident
    room_name: LanguageTexts = Field(default_factory=dict)
    room_where: LanguageTexts = Field(default_factory=dict, description="building, floor, the way there (optional: "
                                      "left off the wire when empty, see encode_payload)")
    department: Ident
    ticket: TicketNumber
    kind: CallKind
    masked_name: ShortText = ""
    recall_count: int = Field(0, ge=0)
    announce: LanguageTexts
    announce_within_s: int = Field(DEFAULT_ANNOUNCE_WINDOW_S, ge=1, le=3600,
                                   description="spoken only this long after ts; later it is shown, not spoken")


class Notice(_Payload):
    """The scrolling notice line on call screens; empty texts clear it."""

    ts: datetime
    text: LanguageTexts = Field(default_factory=dict)
    rooms: tuple[Ident, ...] = Field(default=(), description="empty: every screen of the site")


class Alert(_Payload):
    """Something staff must see: a long wait, a red-flag patient, a help request, a device offline."""

    id: Ident
    ts: datetime
    kind: Literal["long_wait", "red_flag", "help", "device_offline", "paper_out", "certificate_expiring"]
    room: Ident | None = None
    department: Ident | None = None
    ticket: TicketNumber | None = None
    device: Ident | None = None
    message: ShortText


class DeviceStatus(_Payload):
    """Retained health of one device (kiosk, call screen, button box)."""

    ts: datetime
    device: Ident
    role: Literal["kiosk", "door_screen", "hall_board", "button_box", "display"]
    version: ShortText
    uptime_s: float = Field(ge=0)
    checks: dict[Ident, bool] = Field(default_factory=dict, description="name -> ok, e.g. speech, printer_paper")
    details: dict[Ident, str | int | float | bool | None] = Field(default_factory=dict)


class DeviceCommand(_Payload):
    """A request to one device on its ``command`` topic; answered once on ``response`` with the same transaction."""

    command: Ident = Field(description="self_test, reload, test_announcement, reboot, or one the device registered")
    transaction: Annotated[str, Field(min_length=1, max_length=64)]
    args: dict[str, Any] = Field(default_factory=dict)


class DeviceResponse(_Payload):
    """A device's answer to a command or to a config push (zigbee2mqtt style: status ok|error, data, error)."""

    ts: datetime
    device: Ident
    command: Ident = Field(description="the command answered, or 'config' for a config push")
    transaction: Annotated[str, Field(max_length=64)] | None = None
    status: Literal["ok", "error"]
    data: dict[str, Any] = Field(default_factory=dict)
    error: Annotated[str, Field(max_length=1000)] | None = None


P = TypeVar("P", bound=BaseModel)


def encode_payload(payload: BaseModel) -> bytes:
    """Serialise a payload model to the JSON bytes that go on the wire.

    Fields added after a screen release (``OMIT_WHEN_EMPTY``) stay off the wire while empty: payloads
    refuse unknown keys, so an older screen keeps accepting the calls of a site that does not use them.
    """
    omit = {name for name in getattr(payload, "OMIT_WHEN_EMPTY", ()) if not getattr(payload, name)}
    return payload.model_dump_json(exclude_none=False, exclude=omit or None).encode("utf-8")


def decode_payload(model: type[P], raw: bytes | bytearray | str) -> P:
    """Parse wire bytes into ``model``; raise ProtocolError with a short reason for anything wrong."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("payload is not a JSON object")
    if "v" in model.model_fields:
        if "v" not in data:
            raise ProtocolError(f"{model.__name__} without its version field 'v'")
        if data["v"] != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported payload version {data['v']!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(f"invalid {model.__name__}: {where}: {first.get('msg')}") from None
