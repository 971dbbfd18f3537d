"""Receipt printers: the ``TicketPrinter`` port, the python-escpos adapter and the fake.

    printer = EscposTicketPrinter(device="usb://0416:5011", profile="cn-58")
    printer.print_ticket(TicketSlip(number="A012", ...))   # PaperOutError / PrinterError
    printer.status()                                         # PrinterStatus(paper=ok|low|out|unknown, online)

Chinese text is printed one of two ways, chosen by the printer's ``ReceiptProfile``:

* ``chinese="native"``: printers sold for the Chinese market carry a GB18030 font. The
  line is sent as ``FS &`` + GB18030 bytes + ``FS .`` (python-escpos' ``text()`` sends CJK
  as raw GB18030 *without* entering Chinese mode, and turns Chinese punctuation into
  ``?``, so we do not use it for such lines).
* ``chinese="image"``: other printers get the line rendered to a raster image with the
  WenQuanYi Micro Hei font (``fonts-wqy-microhei``), which every ESC/POS printer prints.

Paper status uses the real-time status requests ``DLE EOT 1`` (online) and ``DLE EOT 4``
(roll paper sensor); devices that cannot answer (a file, python-escpos' ``Dummy``) report
``paper="unknown"``.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from protocol.errors import DeviceError

from hardware.receipt_layout import Line, Receipt, TicketSlip, lines_as_text, receipt_lines, ticket_lines

__all__ = [
    "TicketSlip", "Receipt", "Line", "TicketPrinter", "PrinterStatus", "PaperState",
    "PrinterError", "PaperOutError", "ReceiptProfile", "PROFILES", "EscposTicketPrinter",
    "FakeTicketPrinter", "PrintJob", "open_escpos_device", "CJK_FONT",
]

log = logging.getLogger(__name__)

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

# ESC/POS commands we send ourselves (python-escpos has no Chinese-mode helper).
FS_CHINESE_ON = b"\x1c\x26"   # FS &: select Kanji/Chinese character mode
FS_CHINESE_OFF = b"\x1c\x2e"  # FS .: cancel it
DLE_EOT_PRINTER = b"\x10\x04\x01"  # real-time status: printer (bit 3 = offline)
DLE_EOT_PAPER = b"\x10\x04\x04"    # real-time status: roll paper sensor
DLE_EOT_CAUSE = b"\x10\x04\x02"    # real-time status: offline cause (bit 2 = cover open)
_RT_COVER_OPEN = 0x04
# Every real-time status byte has bits 1 and 4 set and bits 0 and 7 clear; anything else is line noise.
_RT_FIXED_MASK, _RT_FIXED_BITS = 0x93, 0x12
_RT_OFFLINE = 0x08
_RT_PAPER_NEAR_END = 0x0C
_RT_PAPER_END = 0x60


class PrinterError(DeviceError):
    """The printer could not print: not connected, offline, cover open, a write failed."""


class PaperOutError(PrinterError):
    """The printer has no paper; the job was not sent. Show the ticket on screen and report the fault."""


class PaperState(str, Enum):
    OK = "ok"
    LOW = "low"
    OUT = "out"
    UNKNOWN = "unknown"  # the device cannot report it (file, Dummy) or did not answer


@dataclass(frozen=True)
class PrinterStatus:
    """What a printer reports about itself; ``ok`` means a ticket can be printed now."""

    paper: PaperState
    online: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.online and self.paper is not PaperState.OUT


@runtime_checkable
class TicketPrinter(Protocol):
    """Port: a receipt printer at a kiosk."""

    def print_ticket(self, slip: TicketSlip) -> None:
        """Print a queue ticket; raise PaperOutError or PrinterError when it cannot."""

    def print_receipt(self, receipt: Receipt) -> None:
        """Print a generic slip (payment receipt, self-test page); same errors as print_ticket."""

    def status(self) -> PrinterStatus:
        """Ask the printer for its paper and online state; never raises."""

    def close(self) -> None:
        """Release the device; idempotent."""


@dataclass(frozen=True)
class ReceiptProfile:
    """How to drive one model of receipt printer.

    ``escpos_profile`` names python-escpos' capability profile (code pages, paper width);
    ``chinese`` says whether the printer has a GB18030 font (``native``) or needs
    Chinese lines as images (``image``); ``native_qr`` whether it draws QR codes itself
    (``GS ( k``) or needs them as images; ``status_query`` whether it answers ``DLE EOT``.
    """

    name: str
    escpos_profile: str
    width_px: int
    chinese: Literal["native", "image"]
    native_qr: bool = True
    status_query: bool = True
    qr_module_px: int = 6


PROFILES: dict[str, ReceiptProfile] = {
    # Printers sold in China (Zjiang/Xprinter/Netum/Rongta class) carry a GB18030 font.
    # Cheap 58 mm models often lack GS ( k (python-escpos' profile says so too): QR as raster.
    "cn-58": ReceiptProfile("cn-58", "POS-5890", 384, "native", native_qr=False),
    "cn-80": ReceiptProfile("cn-80", "TM-T20II", 576, "native", qr_module_px=8),
    # International models (e.g. Epson TM-T20II outside Asia) have no Chinese font.
    "intl-58": ReceiptProfile("intl-58", "POS-5890", 384, "image", native_qr=False),
    "intl-80": ReceiptProfile("intl-80", "TM-T20II", 576, "image", qr_module_px=8),
    # The lowest common denominator: everything that is not ASCII, and QR codes, as images.
    "generic-58": ReceiptProfile("generic-58", "POS-5890", 384, "image", native_qr=False, status_query=False),
}
DEFAULT_PROFILE = "cn-58"


def _resolve_profile(profile: str | ReceiptProfile | None) -> ReceiptProfile:
    if profile is None:
        return PROFILES[DEFAULT_PROFILE]
    if isinstance(profile, ReceiptProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown receipt printer profile {profile!r}; known: {', '.join(PROFILES)}") from None


def open_escpos_device(url: str, *, escpos_profile: str = "POS-5890", timeout: float = 3.0) -> Any:
    """Make a python-escpos printer object from a device URL (the device is opened lazily).

    * ``usb://VID:PID`` (hex, e.g. ``usb://0416:5011``; needs pyusb and a udev rule)
    * ``serial:///dev/ttyUSB0?baudrate=9600``
    * ``tcp://192.0.2.10:9100`` (raw port 9100 network printers)
    * ``file:///dev/usb/lp0`` or ``file:///tmp/receipts.bin`` (appends the bytes)
    * ``dummy:`` (keeps the bytes in memory, python-escpos' ``Dummy``)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "dummy":
        from escpos.printer import Dummy

        return Dummy(profile=escpos_profile)
    if scheme == "file":
        return _append_file_printer(parts.path, escpos_profile)
    if scheme == "serial":
        from escpos.printer import Serial

        return Serial(devfile=parts.path, baudrate=int(query.get("baudrate", 9600)), timeout=timeout,
                      dsrdtr=query.get("dsrdtr", "0") == "1", profile=escpos_profile)
    if scheme == "tcp":
        from escpos.printer import Network

        if not parts.hostname:
            raise ValueError(f"printer URL {url!r} has no host")
        return Network(host=parts.hostname, port=parts.port or 9100, timeout=timeout, profile=escpos_profile)
    if scheme == "usb":
        from escpos.printer import Usb

        try:
            vid, pid = (int(x, 16) for x in parts.netloc.split(":"))
        except ValueError:
            raise ValueError(f"printer URL {url!r}: write usb://VID:PID in hex, e.g. usb://0416:5011") from None
        return Usb(vid, pid, timeout=int(timeout * 1000), profile=escpos_profile)
    raise ValueError(f"unknown printer URL scheme in {url!r}: use usb, serial, tcp, file or dummy")


def _append_file_printer(path: str, escpos_profile: str) -> Any:
    """python-escpos' File opens with "wb"; a kiosk restart must not wipe a receipt log, so append."""
    from escpos.exceptions import DeviceNotFoundError
    from escpos.printer import File

    class AppendFile(File):  # type: ignore[misc]
        def open(self, raise_not_found: bool = True) -> None:
            if self._device:
                self.close()
            try:
                self.device = open(self.devfile, "ab")
            except OSError as exc:
                self.device = None
                if raise_not_found:
                    raise DeviceNotFoundError(f"Could not open the file {self.devfile}: {exc}") from exc

    return AppendFile(devfile=path, profile=escpos_profile)


def _is_ascii(text: str) -> bool:
    return all(ord(c) < 128 for c in text)


class _LineRenderer:
    """Draws text lines to 1-bit images with the CJK font, for printers without a Chinese font."""

    def __init__(self, width_px: int, font_path: Path = CJK_FONT) -> None:
        if not font_path.exists():
            raise PrinterError(f"the Chinese font {font_path} is missing: install fonts-wqy-microhei")
        self.width = width_px
        self.font_path = font_path
        self._fonts: dict[int, Any] = {}

    def _font(self, px: int) -> Any:
        from PIL import ImageFont

        if px not in self._fonts:
            self._fonts[px] = ImageFont.truetype(str(self.font_path), px)
        return self._fonts[px]

    def _wrap(self, text: str, font: Any) -> list[str]:
        rows, row = [], ""
        for ch in text:
            if row and font.getlength(row + ch) > self.width:
                rows.append(row)
                row = ch.lstrip() if ch == " " else ch
            else:
                row += ch
        return rows + [row]

    def render(self, line: Line) -> Any:
        from PIL import Image, ImageDraw

        px = 24 * line.size
        font = self._font(px)
        rows = self._wrap(line.text, font)
        row_h = int(px * 1.25)
        img = Image.new("1", (self.width, row_h * len(rows)), 1)
        draw = ImageDraw.Draw(img)
        for i, row in enumerate(rows):
            w = font.getlength(row)
            x = {"left": 0, "center": (self.width - w) / 2, "right": self.width - w}[line.align]
            draw.text((x, i * row_h + px * 0.1), row, font=font, fill=0)
            if line.bold:  # fake bold: draw again one pixel to the right
                draw.text((x + 1, i * row_h + px * 0.1), row, font=font, fill=0)
        return img


def render_escpos(lines: list[Line], profile: ReceiptProfile) -> bytes:
    """The ESC/POS bytes of a slip for a printer of ``profile`` (no device needed)."""
    from escpos.printer import Dummy

    p = Dummy(profile=profile.escpos_profile)
    renderer: _LineRenderer | None = None
    p.hw("INIT")
    for line in lines:
        if line.cut:
            p.set(align="left", normal_textsize=True, bold=False)
            p.cut()
            continue
        if line.qr is not None:
            p.set(align=line.align)
            if profile.native_qr:
                # python-escpos refuses center=True for native QR: alignment was set above.
                p.qr(line.qr, native=True, size=profile.qr_module_px)
                p.text("\n")
            else:
                p.qr(line.qr, native=False, size=profile.qr_module_px, center=line.align == "center")
            continue
        if _is_ascii(line.text):
            p.set(align=line.align, bold=line.bold, custom_size=True, width=line.size, height=line.size)
            p.text(line.text + "\n")
        elif profile.chinese == "native":
            p.set(align=line.align, bold=line.bold, custom_size=True, width=line.size, height=line.size)
            p._raw(FS_CHINESE_ON + line.text.encode("gb18030") + FS_CHINESE_OFF + b"\n")
        else:
            renderer = renderer or _LineRenderer(profile.width_px)
            p.set(align="left")
            p.image(renderer.render(line), center=False)
        p.set(custom_size=True, width=1, height=1, bold=False)
    return p.output


class EscposTicketPrinter:
    """``TicketPrinter`` on a python-escpos device (USB, serial, network, file or Dummy).

    ``device`` is a device URL (see ``open_escpos_device``) or a python-escpos printer
    object; ``profile`` a name from ``PROFILES`` or a ``ReceiptProfile``. Each job is
    composed completely before the first byte goes out, so a printer that fails mid-way
    never receives half a layout followed by a second attempt's bytes. Thread-safe.
    """

    def __init__(self, *, device: str | Any = "dummy:", profile: str | ReceiptProfile | None = None,
                 timeout: float = 3.0) -> None:
        self.profile = _resolve_profile(profile)
        self._lock = threading.Lock()
        self._url = device if isinstance(device, str) else None
        self._timeout = timeout
        self._device = open_escpos_device(device, escpos_profile=self.profile.escpos_profile, timeout=timeout) \
            if isinstance(device, str) else device
        self.last_job: bytes = b""
        self._closed = False

    @property
    def device(self) -> Any:
        """The python-escpos printer object (``Dummy().output`` holds what was sent to a Dummy)."""
        return self._device

    def print_ticket(self, slip: TicketSlip) -> None:
        self._print(ticket_lines(slip))

    def print_receipt(self, receipt: Receipt) -> None:
        self._print(receipt_lines(receipt))

    def _print(self, lines: list[Line]) -> None:
        data = render_escpos(lines, self.profile)
        with self._lock:
            if self._closed:
                raise PrinterError("the printer was closed")
            status = self._status_locked()
            if status.paper is PaperState.OUT:
                raise PaperOutError("the receipt printer is out of paper")
            if not status.online:
                raise PrinterError(f"the receipt printer is offline: {status.detail}")
            try:
                self._device._raw(data)
                flush = getattr(self._device, "flush", None)
                if callable(flush):
                    flush()
            except Exception as exc:  # escpos, pyusb, pyserial and socket errors all mean the same here
                self._reset_locked()
                raise PrinterError(f"sending to the receipt printer failed: {exc}") from exc
            self.last_job = data

    def status(self) -> PrinterStatus:
        with self._lock:
            if self._closed:
                return PrinterStatus(PaperState.UNKNOWN, False, "closed")
            return self._status_locked()

    def _status_locked(self) -> PrinterStatus:
        from escpos.printer import Dummy

        if isinstance(self._device, Dummy) and not self._can_read():
            return PrinterStatus(PaperState.UNKNOWN, True, "in-memory device (python-escpos Dummy)")
        try:
            dev = self._device.device  # python-escpos opens the connection on first access
        except Exception as exc:
            self._reset_locked()
            return PrinterStatus(PaperState.UNKNOWN, False, f"cannot open the printer: {exc}")
        if dev is None:
            self._reset_locked()
            return PrinterStatus(PaperState.UNKNOWN, False, "the printer is not connected")
        if not self.profile.status_query or not self._can_read():
            return PrinterStatus(PaperState.UNKNOWN, True, "this printer cannot report paper status")
        try:
            printer_byte = self._query(DLE_EOT_PRINTER)
            paper_byte = self._query(DLE_EOT_PAPER)
        except Exception as exc:
            self._reset_locked()
            return PrinterStatus(PaperState.UNKNOWN, False, f"status request failed: {exc}")
        if printer_byte is None or paper_byte is None:
            return PrinterStatus(PaperState.UNKNOWN, False, "no answer to the real-time status request")
        online = not printer_byte & _RT_OFFLINE
        if paper_byte & _RT_PAPER_END == _RT_PAPER_END:
            paper = PaperState.OUT
        elif paper_byte & _RT_PAPER_NEAR_END == _RT_PAPER_NEAR_END:
            paper = PaperState.LOW
        else:
            paper = PaperState.OK
        if online:
            return PrinterStatus(paper, True, "paper near its end" if paper is PaperState.LOW else "")
        # Offline: the cause byte (DLE EOT 2) says whether the cover is open; older printers may not answer it.
        try:
            cause = self._query(DLE_EOT_CAUSE)
        except Exception:
            cause = None
        if cause is not None and cause & _RT_COVER_OPEN:
            return PrinterStatus(paper, False, "cover open")
        if paper is PaperState.OUT:
            return PrinterStatus(paper, False, "out of paper")
        return PrinterStatus(paper, False, "printer reports offline (cover open or paper out)")

    def _can_read(self) -> bool:
        from escpos.escpos import Escpos

        return type(self._device)._read is not Escpos._read

    def _query(self, command: bytes) -> int | None:
        """Send a real-time status request; return its status byte, or None for no/garbled answer."""
        reset_input = getattr(self._device.device, "reset_input_buffer", None)
        if callable(reset_input):  # drop stale answers from an earlier, timed-out request
            reset_input()
        self._device._raw(command)
        dev = self._device.device
        if hasattr(dev, "in_waiting") and hasattr(dev, "read"):
            # pyserial: python-escpos reads 16 bytes and so always waits out the timeout; one byte is the answer.
            answer = bytes(dev.read(1))
        else:
            answer = bytes(self._device._read() or b"")
        for byte in reversed(answer):
            if byte & _RT_FIXED_MASK == _RT_FIXED_BITS:
                return byte
        return None

    def _reset_locked(self) -> None:
        """Forget a broken connection so that the next job reopens it (a replugged printer comes back)."""
        try:
            self._device.close()
        except Exception:  # the connection is already broken; closing it is best effort
            log.debug("closing a broken printer connection failed", exc_info=True)
        self._device._device = False  # python-escpos reopens on next access

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._device.close()
                except Exception:
                    log.debug("closing the printer failed", exc_info=True)

    def __enter__(self) -> "EscposTicketPrinter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PrintJob:
    """One job a ``FakeTicketPrinter`` accepted: the slip, its text as a person reads it, its ESC/POS bytes."""

    text: str
    data: bytes
    slip: TicketSlip | Receipt


@dataclass
class FakeTicketPrinter:
    """A ``TicketPrinter`` with no device, for tests and demos on machines without a printer.

    Like gpiozero's mock pins it models the real part: every accepted job is in ``jobs``
    with the text a patient would read and the exact ESC/POS bytes the real adapter
    would send for ``profile``. ``simulate_paper_out()`` makes the next jobs raise
    ``PaperOutError`` (and ``status()`` report it) until ``refill_paper()``;
    ``simulate_paper_low()`` and ``simulate_offline()`` do the same for those states.
    """

    profile: str | ReceiptProfile | None = None
    jobs: list[PrintJob] = field(default_factory=list)
    paper: PaperState = PaperState.OK
    online: bool = True

    def __post_init__(self) -> None:
        self._profile = _resolve_profile(self.profile)
        self._lock = threading.Lock()

    def print_ticket(self, slip: TicketSlip) -> None:
        self._accept(ticket_lines(slip), slip)

    def print_receipt(self, receipt: Receipt) -> None:
        self._accept(receipt_lines(receipt), receipt)

    def _accept(self, lines: list[Line], what: TicketSlip | Receipt) -> None:
        with self._lock:
            if self.paper is PaperState.OUT:
                raise PaperOutError("the receipt printer is out of paper")
            if not self.online:
                raise PrinterError("the receipt printer is offline")
            self.jobs.append(PrintJob(lines_as_text(lines), render_escpos(lines, self._profile), what))

    def status(self) -> PrinterStatus:
        return PrinterStatus(self.paper, self.online)

    def simulate_paper_out(self) -> None:
        self.paper = PaperState.OUT

    def simulate_paper_low(self) -> None:
        self.paper = PaperState.LOW

    def refill_paper(self) -> None:
        self.paper = PaperState.OK

    def simulate_offline(self, offline: bool = True) -> None:
        self.online = not offline

    @property
    def last_text(self) -> str:
        """Text of the last accepted job ("" when none)."""
        return self.jobs[-1].text if self.jobs else ""

    def close(self) -> None:
        pass
