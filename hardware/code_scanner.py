"""Barcode/QR scanners behind one ``CodeScanner`` port: keyboard-wedge (evdev) and serial, plus the fake.

    scanner = SerialCodeScanner(port="/dev/ttyACM0")          # or EvdevCodeScanner(device="/dev/input/by-id/...")
    scanner.when_scanned = lambda code: ...                     # from the scanner's thread
    scanner.when_error = lambda err: ...                        # ScanError: garbled or cut-off code
    code = scanner.read(timeout=10)                             # or pull: ScanError / ReadTimeout

Both kinds send the code followed by a terminator (Enter, CR or LF). A code is
accepted only if it is printable text of at most ``max_length`` characters and matches
``pattern`` when one is given; anything else is reported as a ``ScanError`` and
dropped, so a damaged read never becomes a wrong appointment number. A code that stops
mid-way (no terminator within ``gap_s``) is dropped too. The next scan always starts clean.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from protocol.errors import DeviceError

from hardware.device_events import DeviceClosed, EventSource, ReadTimeout
from hardware.serial_port import SerialPortReader

__all__ = ["CodeScanner", "ScanError", "ReadTimeout", "DeviceClosed", "SerialCodeScanner", "EvdevCodeScanner",
           "FakeCodeScanner", "KeyboardWedgeDecoder", "validate_code"]

log = logging.getLogger(__name__)

MAX_LENGTH = 512  # a URL in a QR code fits; a stuck scanner streaming garbage does not


class ScanError(DeviceError, ValueError):
    """A scan that could not be read cleanly (garbled, cut off, too long, not the expected kind of code)."""


@runtime_checkable
class CodeScanner(Protocol):
    """Port: a barcode/QR code scanner."""

    when_scanned: Callable[[str], None] | None
    when_error: Callable[[DeviceError], None] | None

    def read(self, timeout: float | None = None) -> str:
        """The next code; raises ScanError, ReadTimeout or DeviceClosed."""

    def clear(self) -> None:
        """Forget codes not yet read."""

    def close(self) -> None: ...


def validate_code(text: str, *, pattern: re.Pattern[str] | None = None, max_length: int = MAX_LENGTH) -> str:
    """The code if it is clean printable text (and matches ``pattern``); else raise ScanError."""
    if not text:
        raise ScanError("empty scan")
    if len(text) > max_length:
        raise ScanError(f"scan of {len(text)} characters is longer than {max_length}")
    if not text.isprintable() or "\ufffd" in text:
        raise ScanError("garbled scan: it holds characters no code contains")
    if text != text.strip():
        raise ScanError("garbled scan: leading or trailing blanks")
    if pattern is not None and not pattern.fullmatch(text):
        raise ScanError("this code is not one the kiosk can use")
    return text


class _ScannerBase(EventSource[str]):
    def __init__(self, pattern: str | re.Pattern[str] | None, max_length: int, what: str) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.max_length = max_length
        super().__init__(what)

    when_scanned = EventSource.when_item  # the domain word for it

    def _deliver_text(self, text: str) -> None:
        try:
            self._events.put(validate_code(text, pattern=self.pattern, max_length=self.max_length))
        except ScanError as exc:
            self._events.put(exc)

    def _deliver_bytes(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._events.put(ScanError("garbled scan: not readable text"))
            return
        self._deliver_text(text)



class _LineAssembler:
    """Bytes from a serial scanner -> complete lines; CR, LF and CRLF end a code."""

    def __init__(self, max_length: int) -> None:
        self.buf = bytearray()
        self.max_length = max_length
        self.overflow = False

    def feed(self, data: bytes) -> list[bytes | ScanError]:
        out: list[bytes | ScanError] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self.overflow:
                    out.append(ScanError(f"scan longer than {self.max_length} bytes"))
                elif self.buf:
                    out.append(bytes(self.buf))
                self.buf.clear()
                self.overflow = False
            elif not self.overflow:
                self.buf.append(byte)
                if len(self.buf) > self.max_length * 4:  # UTF-8: up to 4 bytes a character
                    self.overflow = True
                    self.buf.clear()
        return out

    def cut_off(self) -> ScanError | None:
        """The line went quiet mid-code: drop it."""
        had = bool(self.buf) or self.overflow
        self.buf.clear()
        self.overflow = False
        return ScanError("incomplete scan: the code stopped before its end") if had else None


class SerialCodeScanner(_ScannerBase):
    """``CodeScanner`` on a serial (or USB CDC-ACM) scanner, read with pyserial in its own thread.

    ``port`` is a device path or any pyserial URL (``loop://``, ``rfc2217://...``).
    """

    def __init__(self, *, port: str, baudrate: int = 9600, pattern: str | re.Pattern[str] | None = None,
                 max_length: int = MAX_LENGTH, gap_s: float = 0.3) -> None:
        super().__init__(pattern, max_length, "code scanner")
        self._link = SerialPortReader(port=port, baudrate=baudrate, timeout=gap_s, device="scanner",
                                      thread_name="scanner-serial", on_data=self._feed, on_quiet=self._quiet,
                                      on_lost=self._events.put)
        self._lines = _LineAssembler(max_length)
        self._link.start()

    @property
    def serial(self) -> Any:
        """The pyserial port (tests write to a ``loop://`` port through it)."""
        return self._link.serial

    def _feed(self, data: bytes) -> None:
        for item in self._lines.feed(data):
            if isinstance(item, ScanError):
                self._events.put(item)
            else:
                self._deliver_bytes(item)

    def _quiet(self) -> None:
        """Quiet for gap_s: a half-sent code will never be finished."""
        err = self._lines.cut_off()
        if err:
            self._events.put(err)

    def close(self) -> None:
        if not self._link.closed:
            self._link.close()
            self._events.close()


# US keyboard layout: evdev key name -> (plain, shifted)
_KEYMAP: dict[str, tuple[str, str]] = {
    **{f"KEY_{c}": (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()")},
    **{f"KEY_KP{d}": (d, d) for d in "0123456789"},
    "KEY_MINUS": ("-", "_"), "KEY_EQUAL": ("=", "+"), "KEY_LEFTBRACE": ("[", "{"), "KEY_RIGHTBRACE": ("]", "}"),
    "KEY_SEMICOLON": (";", ":"), "KEY_APOSTROPHE": ("'", '"'), "KEY_GRAVE": ("`", "~"),
    "KEY_BACKSLASH": ("\\", "|"), "KEY_COMMA": (",", "<"), "KEY_DOT": (".", ">"), "KEY_SLASH": ("/", "?"),
    "KEY_SPACE": (" ", " "), "KEY_KPMINUS": ("-", "-"), "KEY_KPPLUS": ("+", "+"), "KEY_KPDOT": (".", "."),
    "KEY_KPSLASH": ("/", "/"), "KEY_KPASTERISK": ("*", "*"),
}
_SHIFT = ("KEY_LEFTSHIFT", "KEY_RIGHTSHIFT")
_ENTER = ("KEY_ENTER", "KEY_KPENTER")
_EV_KEY = 0x01
_KEY_DOWN, _KEY_UP = 1, 0


class KeyboardWedgeDecoder:
    """evdev key events of a keyboard-wedge scanner -> codes (US layout; Enter ends a code).

    ``feed(event)`` takes anything with ``type``, ``code``, ``value`` and ``timestamp()``
    (an ``evdev.InputEvent``) and returns a finished code, a ScanError, or None.
    A key this layout does not know makes the whole code garbled; a pause longer than
    ``gap_s`` between keys drops what was typed so far.
    """

    def __init__(self, gap_s: float = 0.3, max_length: int = MAX_LENGTH) -> None:
        from evdev import ecodes

        self._names = ecodes.KEY
        self.gap_s = gap_s
        self.max_length = max_length
        self._chars: list[str] = []
        self._shift = False
        self._garbled = False
        self._last = 0.0

    def _key_name(self, code: int) -> str:
        name = self._names.get(code, f"KEY_{code}")
        return name[0] if isinstance(name, list) else name

    def feed(self, event: Any) -> str | ScanError | None:
        if event.type != _EV_KEY:
            return None
        name = self._key_name(event.code)
        if name in _SHIFT:
            self._shift = event.value != _KEY_UP
            return None
        if event.value != _KEY_DOWN:  # key up and autorepeat carry no characters
            return None
        now = event.timestamp()
        result: ScanError | None = None
        if (self._chars or self._garbled) and now - self._last > self.gap_s:
            result = ScanError("incomplete scan: the code stopped before its end")
            self._chars, self._garbled = [], False
        self._last = now
        if name in _ENTER:
            text, garbled = "".join(self._chars), self._garbled
            self._chars, self._garbled = [], False
            if garbled:
                return ScanError("garbled scan: keys that are not part of a code")
            if not text:
                return result
            return text
        if name in _KEYMAP and len(self._chars) < self.max_length:
            self._chars.append(_KEYMAP[name][1 if self._shift else 0])
        else:
            self._garbled = True
        return result


class EvdevCodeScanner(_ScannerBase):
    """``CodeScanner`` on a keyboard-wedge scanner read through evdev (Linux).

    ``device`` is an event device path (prefer ``/dev/input/by-id/...-event-kbd``) or an
    ``evdev.InputDevice``. With ``grab=True`` (default) the scanner's keystrokes go only
    to clinicflow, never into whatever window has the focus.
    """

    def __init__(self, *, device: Any, grab: bool = True, pattern: str | re.Pattern[str] | None = None,
                 max_length: int = MAX_LENGTH, gap_s: float = 0.3) -> None:
        super().__init__(pattern, max_length, "code scanner")
        try:
            import evdev
        except ImportError:
            raise DeviceError("keyboard-wedge scanners need python-evdev (Linux only)") from None
        try:
            self._device = evdev.InputDevice(device) if isinstance(device, str) else device
            if grab:
                self._device.grab()
        except OSError as exc:
            raise DeviceError(f"cannot open the scanner at {device}: {exc}") from None
        self._decoder = KeyboardWedgeDecoder(gap_s, max_length)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scanner-evdev", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._device.read_loop():
                if self._stop.is_set():
                    return
                result = self._decoder.feed(event)
                if isinstance(result, ScanError):
                    self._events.put(result)
                elif result is not None:
                    self._deliver_text(result)
        except OSError as exc:
            if not self._stop.is_set():
                self._events.put(DeviceError(f"the scanner was disconnected: {exc}"))

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            try:
                self._device.close()
            except Exception:
                pass
            self._thread.join(timeout=2)
            self._events.close()


class FakeCodeScanner(_ScannerBase):
    """A ``CodeScanner`` without a device, validating exactly like the real ones.

    ``scan("AP1001")`` delivers a clean code; ``scan_raw(b"AP\\xff01\\r")`` feeds bytes as a
    serial scanner would send them (line endings, garbling and all).
    """

    def __init__(self, *, pattern: str | re.Pattern[str] | None = None, max_length: int = MAX_LENGTH) -> None:
        super().__init__(pattern, max_length, "code scanner")
        self._lines = _LineAssembler(max_length)
        self.scanned: list[str] = []

    def scan(self, code: str) -> None:
        self.scanned.append(code)
        self._deliver_text(code)

    def scan_raw(self, data: bytes) -> None:
        for item in self._lines.feed(data):
            if isinstance(item, ScanError):
                self._events.put(item)
            else:
                self._deliver_bytes(item)
        err = self._lines.cut_off()
        if err:
            self._events.put(err)

    def close(self) -> None:
        self._events.close()
