"""Code scanners: a patient scans the appointment QR code; damaged scans never become a wrong number."""
from __future__ import annotations

import threading

import pytest
from evdev import InputEvent, ecodes

from hardware.code_scanner import (
    CodeScanner,
    DeviceClosed,
    EvdevCodeScanner,
    FakeCodeScanner,
    KeyboardWedgeDecoder,
    ReadTimeout,
    ScanError,
    SerialCodeScanner,
)
from tests.hardware_sims import PtyDevice

APPOINTMENT = r"AP[0-9]{4,6}"


@pytest.fixture
def pty_scanner():
    device = PtyDevice()
    scanner = SerialCodeScanner(port=device.path, baudrate=9600, gap_s=0.1)
    try:
        yield device, scanner
    finally:
        scanner.close()
        device.close()


def test_serial_scanner_reads_codes_ended_by_cr_lf_or_crlf(pty_scanner):
    device, scanner = pty_scanner
    assert isinstance(scanner, CodeScanner)
    device.send(b"AP1001\r\nhttp://127.0.0.1:8000/t/abc\rAP1002\n")
    assert [scanner.read(2), scanner.read(2), scanner.read(2)] == ["AP1001", "http://127.0.0.1:8000/t/abc", "AP1002"]


def test_serial_scanner_garbled_code_is_an_error_and_the_next_scan_works(pty_scanner):
    device, scanner = pty_scanner
    device.send(b"AP\xff\xfe01\r")
    with pytest.raises(ScanError, match="garbled"):
        scanner.read(2)
    device.send(b"AP\x0710\x1b01\r")  # control characters from a bad cable
    with pytest.raises(ScanError, match="garbled"):
        scanner.read(2)
    device.send(b"AP1003\r")
    assert scanner.read(2) == "AP1003"


def test_serial_scanner_code_cut_off_mid_way_is_dropped(pty_scanner):
    device, scanner = pty_scanner
    device.send(b"AP10")  # the patient pulled the phone away
    with pytest.raises(ScanError, match="incomplete"):
        scanner.read(2)
    device.send(b"AP1004\r")
    assert scanner.read(2) == "AP1004"  # not "AP10AP1004"


def test_serial_scanner_endless_garbage_is_bounded(pty_scanner):
    device, scanner = pty_scanner
    device.send(b"x" * 5000 + b"\r")
    with pytest.raises(ScanError, match="longer than"):
        scanner.read(2)
    device.send(b"AP1005\r")
    assert scanner.read(2) == "AP1005"


def test_serial_scanner_pattern_rejects_codes_the_kiosk_cannot_use():
    scanner = SerialCodeScanner(port="loop://", pattern=APPOINTMENT, gap_s=0.1)
    try:
        scanner.serial.write(b"9787115428028\r")  # a book's barcode
        with pytest.raises(ScanError, match="not one the kiosk can use"):
            scanner.read(2)
        scanner.serial.write(b"AP1006\r")
        assert scanner.read(2) == "AP1006"
    finally:
        scanner.close()


def test_serial_scanner_callbacks_and_timeout(pty_scanner):
    device, scanner = pty_scanner
    with pytest.raises(ReadTimeout):
        scanner.read(0.05)
    got, errors, seen = [], [], threading.Semaphore(0)
    scanner.when_scanned = lambda c: (got.append(c), seen.release())
    scanner.when_error = lambda e: (errors.append(e), seen.release())
    device.send(b"AP1007\r\xff\r")
    assert seen.acquire(timeout=2) and seen.acquire(timeout=2)
    assert got == ["AP1007"] and isinstance(errors[0], ScanError)


def test_serial_scanner_missing_device_and_close(tmp_path):
    with pytest.raises(OSError, match="cannot open the scanner"):
        SerialCodeScanner(port=str(tmp_path / "ttyACM9"))
    scanner = SerialCodeScanner(port="loop://")
    scanner.close()
    scanner.close()  # idempotent
    with pytest.raises(DeviceClosed):
        scanner.read(0.1)


def _keys(text: str, t0: float = 100.0, step: float = 0.004) -> list[InputEvent]:
    """The evdev events a US-layout wedge scanner sends when it types ``text`` and Enter."""
    events, t = [], t0
    shifted = {"!": "1", "_": "MINUS", ":": "SEMICOLON", "?": "SLASH"}
    names = {"-": "MINUS", ".": "DOT", "/": "SLASH", ":": "SEMICOLON", "=": "EQUAL", "?": "SLASH", "_": "MINUS"}
    for ch in list(text) + ["\n"]:
        shift = ch.isupper() or ch in shifted
        name = "ENTER" if ch == "\n" else names.get(ch, ch.upper())
        code = getattr(ecodes, f"KEY_{name}")
        sec, usec = int(t), int((t % 1) * 1e6)
        if shift:
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1))
        events += [InputEvent(sec, usec, ecodes.EV_KEY, code, 1), InputEvent(sec, usec, ecodes.EV_SYN, 0, 0),
                   InputEvent(sec, usec, ecodes.EV_KEY, code, 0)]
        if shift:
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 0))
        t += step
    return events


def _decode(decoder: KeyboardWedgeDecoder, events) -> list:
    return [r for r in (decoder.feed(e) for e in events) if r is not None]


def test_keyboard_wedge_decoder_types_codes_with_shift():
    decoder = KeyboardWedgeDecoder()
    assert _decode(decoder, _keys("AP1001")) == ["AP1001"]
    assert _decode(decoder, _keys("http://127.0.0.1:8000/t/x_y?z=1", t0=200)) == ["http://127.0.0.1:8000/t/x_y?z=1"]


def test_keyboard_wedge_decoder_unknown_key_garbles_the_code_and_gap_drops_it():
    decoder = KeyboardWedgeDecoder(gap_s=0.3)
    events = _keys("AP1001")
    events.insert(4, InputEvent(100, 5000, ecodes.EV_KEY, ecodes.KEY_F5, 1))
    [result] = _decode(decoder, events)
    assert isinstance(result, ScanError) and "garbled" in str(result)
    half = _keys("AP10", t0=300)[:-3]  # no Enter: the scan stopped
    results = _decode(decoder, half + _keys("AP1008", t0=301))
    assert isinstance(results[0], ScanError) and "incomplete" in str(results[0]) and results[1:] == ["AP1008"]


class _EventDevice:
    """An evdev device as EvdevCodeScanner uses it (this machine has no /dev/uinput for a virtual one)."""

    def __init__(self, events):
        self.events, self.grabbed, self.closed = events, False, threading.Event()

    def grab(self):
        self.grabbed = True

    def read_loop(self):
        yield from self.events
        self.closed.wait(5)

    def close(self):
        self.closed.set()


def test_evdev_scanner_grabs_the_device_and_delivers_codes():
    device = _EventDevice(_keys("AP1009") + _keys("AP\n", t0=101))
    scanner = EvdevCodeScanner(device=device, pattern=APPOINTMENT)
    try:
        assert device.grabbed  # keystrokes never reach the kiosk's window
        assert scanner.read(2) == "AP1009"
        with pytest.raises(ScanError):
            scanner.read(2)
    finally:
        scanner.close()


def test_fake_code_scanner_validates_like_the_real_one():
    fake = FakeCodeScanner(pattern=APPOINTMENT)
    fake.scan("AP1010")
    fake.scan_raw(b"AP\xff10\r")
    fake.scan_raw(b"AP10")
    assert fake.read(0) == "AP1010"
    with pytest.raises(ScanError, match="garbled"):
        fake.read(0)
    with pytest.raises(ScanError, match="incomplete"):
        fake.read(0)
    fake.scan("AP1011")
    fake.clear()  # a new session does not see the last patient's scan
    with pytest.raises(ReadTimeout):
        fake.read(0.01)
