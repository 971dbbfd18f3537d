"""What goes on a paper slip, independent of how it is printed.

A slip is a list of ``Line``s (text with alignment and size, a QR code, a cut).
The ESC/POS adapter turns lines into printer bytes; the fake printer and the
self-test turn the same lines into plain text, so a test can read what a
patient would read without decoding printer commands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from protocol.api import TicketOut

Align = Literal["left", "center", "right"]
LANGUAGES = ("zh", "en")
_CJK = re.compile(r"[\u3400-\u9fff]")
HOSPITAL_TZ = "Asia/Shanghai"  # the default hospital time zone; slips print the hospital's clock


def local_time(when: datetime, tz: str = HOSPITAL_TZ) -> datetime:
    """``when`` on the hospital's clock. The server sends aware UTC times; a naive time is taken as UTC
    (what the server stores), never as the printing machine's own zone."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(ZoneInfo(tz))


@dataclass(frozen=True)
class Line:
    """One line of a slip: text (``size`` 1-4 times normal), a QR code of ``qr``, or a paper cut."""

    text: str = ""
    align: Align = "left"
    size: int = 1
    bold: bool = False
    qr: str | None = None
    cut: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 4:
            raise ValueError(f"text size must be 1-4, not {self.size}")


@dataclass(frozen=True)
class TicketSlip:
    """A queue ticket as printed for the patient.

    ``department_name`` and ``room_name`` map language codes ("zh", "en") to names;
    ``position`` is 1 for the next patient (as in ``protocol.api.TicketOut``);
    ``status_url`` is encoded in the QR code so the patient can follow the queue on a phone;
    ``where`` says where the room is (building, floor, the way there) or, before a room is known, where to wait;
    ``issued_at`` is printed on the hospital's clock (``timezone``).
    """

    number: str
    department_name: dict[str, str]
    room_name: dict[str, str]
    status_url: str
    issued_at: datetime
    position: int | None = None
    estimated_wait_min: int | None = None
    language: str = "zh"
    where: dict[str, str] = field(default_factory=dict)
    timezone: str = HOSPITAL_TZ

    @classmethod
    def from_ticket(cls, ticket: "TicketOut", language: str = "zh", *, where: dict[str, str] | None = None,
                    timezone: str = HOSPITAL_TZ) -> "TicketSlip":
        """The slip for a ticket the queue server issued."""
        return cls(
            number=ticket.number,
            department_name=dict(ticket.department_name),
            room_name=dict(ticket.room_name),
            status_url=ticket.status_url,
            issued_at=ticket.issued_at,
            position=ticket.position,
            estimated_wait_min=ticket.estimated_wait_min,
            language=language,
            where=dict(where or {}),
            timezone=timezone,
        )


@dataclass(frozen=True)
class Receipt:
    """A generic slip (payment receipt, self-test page): a header (the hospital's name), a title,
    label/value rows, an optional QR."""

    title: str
    rows: tuple[tuple[str, str], ...] = ()
    footer: str = ""
    qr: str | None = None
    qr_caption: str = ""
    notes: tuple[str, ...] = field(default=())
    header: str = ""


_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "就诊排队凭条",
        "colon": "：",
        "department": "科室",
        "room": "诊室",
        "where": "候诊",
        "located": "位置",
        "next": "下一位就是您，请留意叫号",
        "ahead": "前面还有 {n} 人",
        "ahead_one": "前面还有 1 人",
        "wait": "预计等候约 {m} 分钟",
        "issued": "取号时间",
        "scan": "扫码查看排队进度",
        "keep": "请保管好本凭条，过号请到分诊台",
    },
    "en": {
        "title": "Queue ticket",
        "colon": ": ",
        "department": "Department",
        "room": "Room",
        "where": "Wait at",
        "located": "Where",
        "next": "You are next, please listen for your number",
        "ahead": "{n} people ahead of you",
        "ahead_one": "1 person ahead of you",
        "wait": "Estimated wait: about {m} min",
        "issued": "Issued",
        "scan": "Scan to follow your place in the queue",
        "keep": "Keep this slip; if you miss your call, ask at the triage desk",
    },
}


def pick(texts: dict[str, str], language: str) -> str:
    """The text in ``language``, else Chinese, else English, else any, else ""."""
    for lang in (language, "zh", "en"):
        if texts.get(lang):
            return texts[lang]
    return next((t for t in texts.values() if t), "")


def ticket_lines(slip: TicketSlip) -> list[Line]:
    """The lines of a queue ticket, in the slip's language (Chinese when the language is unknown)."""
    lang = slip.language if slip.language in _LABELS else "zh"
    label = _LABELS[lang]
    colon = label["colon"]  # Chinese text takes the full-width colon
    lines = [
        Line(label["title"], align="center", bold=True),
        Line(slip.number, align="center", size=4, bold=True),
    ]
    dept = pick(slip.department_name, lang)
    if dept:
        lines.append(Line(f"{label['department']}{colon}{dept}", align="center", size=2))
    room = pick(slip.room_name, lang)
    if room:
        lines.append(Line(f"{label['room']}{colon}{room}", align="center", size=2))
    where = pick(slip.where, lang)
    if where:  # the room's building, floor and way there; with no room yet, where to wait
        lines.append(Line(f"{label['located' if room else 'where']}{colon}{where}", align="center",
                          size=2 if not room else 1))
    if slip.position is not None:
        if slip.position <= 1:
            lines.append(Line(label["next"], align="center"))
        else:
            ahead = slip.position - 1
            lines.append(Line(label["ahead_one"] if ahead == 1 else label["ahead"].format(n=ahead), align="center"))
    if slip.estimated_wait_min is not None and (slip.position or 0) > 1:  # "about 0 min" for the next one: no
        lines.append(Line(label["wait"].format(m=slip.estimated_wait_min), align="center"))
    issued = local_time(slip.issued_at, slip.timezone)
    lines.append(Line(f"{label['issued']}{colon}{issued:%Y-%m-%d %H:%M}", align="center"))
    if slip.status_url:
        lines.append(Line(qr=slip.status_url, align="center"))
        lines.append(Line(label["scan"], align="center"))
    lines.append(Line(label["keep"], align="center"))
    lines.append(Line(cut=True))
    return lines


def receipt_lines(receipt: Receipt) -> list[Line]:
    """The lines of a generic receipt."""
    lines = [Line(receipt.header, align="center", bold=True)] if receipt.header else []
    lines.append(Line(receipt.title, align="center", size=2, bold=True))
    lines += [Line(f"{label}{'：' if _CJK.search(label) else ': '}{value}") for label, value in receipt.rows]
    lines += [Line(note) for note in receipt.notes]
    if receipt.qr:
        lines.append(Line(qr=receipt.qr, align="center"))
        if receipt.qr_caption:
            lines.append(Line(receipt.qr_caption, align="center"))
    if receipt.footer:
        lines.append(Line(receipt.footer, align="center"))
    lines.append(Line(cut=True))
    return lines


def lines_as_text(lines: list[Line]) -> str:
    """Plain text of a slip as a person reads it; a QR code appears as ``[QR] <payload>``."""
    out: list[str] = []
    for line in lines:
        if line.cut:
            out.append("-" * 8 + " cut " + "-" * 8)
        elif line.qr is not None:
            out.append(f"[QR] {line.qr}")
        else:
            out.append(line.text)
    return "\n".join(out) + "\n"
