"""Simulated devices on the far side of real pseudo-terminals and sockets, for the hardware tests.

A ``PtyDevice`` owns the master side of ``os.openpty()``: the adapter under test opens
the slave path with pyserial exactly as it would open ``/dev/ttyUSB0``, and the test
plays the device (answers, stays silent, or sends garbage) on the master side.
"""
from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path


class PtyDevice:
    """The device end of a pseudo-terminal pair; ``path`` is what the adapter opens."""

    def __init__(self, responder: Callable[[bytes], bytes | None] | None = None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()
        self.responder = responder
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            with self._changed:
                self.received += chunk
                self._changed.notify_all()
            if self.responder is not None:
                answer = self.responder(chunk)
                if answer:
                    os.write(self.master, answer)

    def send(self, data: bytes) -> None:
        """Bytes from the device to the adapter (a scanned code, a card frame, a terminal reply)."""
        os.write(self.master, data)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        """Wait until what the adapter sent satisfies ``predicate``; return it (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(bytes(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"device did not receive the expected bytes; got {bytes(self.received)!r}")
                self._changed.wait(left)
            return bytes(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpDevice:
    """A raw-TCP device (port-9100 printer) on a loopback port; records bytes and answers via ``responder``."""

    def __init__(self, responder: Callable[[bytes], bytes | None] | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        self.responder = responder
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                conn, _ = self.server.accept()
                with conn:
                    while chunk := conn.recv(65536):
                        with self._changed:
                            self.received += chunk
                            self._changed.notify_all()
                        if self.responder and (answer := self.responder(chunk)):
                            conn.sendall(answer)
        except OSError:
            return

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(bytes(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"device did not receive the expected bytes; got {bytes(self.received)!r}")
                self._changed.wait(left)
            return bytes(self.received)

    def close(self) -> None:
        self.server.close()


def decode_qr(png: Path) -> list[str]:
    """Every QR payload ``zbarimg`` finds in an image (zbar-tools)."""
    exe = shutil.which("zbarimg")
    assert exe, "zbarimg (Debian zbar-tools) is needed to read printed QR codes back"
    proc = subprocess.run([exe, "--raw", "-q", str(png)], capture_output=True, timeout=30)
    return [line for line in proc.stdout.decode("utf-8").splitlines() if line]


class TerminalSim:
    """A serial card terminal on the far side of a pty, speaking clinicflow's framed protocol.

    ``mode``: "approve", "decline", "wait" (the patient is at the terminal: ``tap()`` finishes,
    a cancel cancels), "silent" (never answers), "ack_then_silent" (takes the sale, then
    nothing), "nak_first" (asks for the first frame again), "garbled_first" (its first result
    is damaged and is sent again when the host NAKs it), "approve_on_cancel" (the payment went
    through just as the cancel arrived).
    """

    def __init__(self, mode: str = "approve") -> None:
        from hardware.serial_frames import FrameParser

        self.mode = mode
        self.parser = FrameParser()
        self.sales: list[tuple[str, ...]] = []
        self.cancels: list[str] = []
        self.acks = 0
        self.naks_received = 0
        self.done: dict[str, tuple[str, str, str]] = {}  # txn -> (code, detail, amount)
        self.pending: tuple[str, str] | None = None
        self._nakked = False
        self._resend: bytes | None = None
        self.sale_seen = threading.Event()
        self.device = PtyDevice(self._respond)
        self.path = self.device.path

    def _r(self, txn: str, code: str, detail: str, amount: str = "") -> bytes:
        from hardware.serial_frames import encode_frame

        self.done[txn] = (code, detail, amount)
        return encode_frame("R", txn, code, detail, amount)

    def _respond(self, chunk: bytes) -> bytes:
        from hardware.serial_frames import ACK, NAK, Frame, FrameError

        out = b""
        for item in self.parser.feed(chunk):
            if item == ACK:
                self.acks += 1
                continue
            if item == NAK:
                self.naks_received += 1
                if self._resend:
                    out, self._resend = out + self._resend, None
                continue
            if isinstance(item, FrameError):
                out += bytes([NAK])
                continue
            if not isinstance(item, Frame) or self.mode == "silent":
                continue
            if self.mode == "nak_first" and not self._nakked:
                self._nakked = True
                out += bytes([NAK])
                continue
            out += bytes([ACK])
            txn = item.fields[0] if item.fields else ""
            if item.type == "S":
                self.sales.append(item.fields)
                self.sale_seen.set()
                amount = item.fields[1]
                if self.mode in ("approve", "nak_first"):
                    out += self._r(txn, "A", "AUTH01", amount)
                elif self.mode == "decline":
                    out += self._r(txn, "D", "insufficient funds", amount)
                elif self.mode == "garbled_first":
                    good = self._r(txn, "A", "AUTH02", amount)
                    bad = bytearray(good)
                    bad[-2] ^= 0xFF
                    out += bytes(bad)
                    self._resend = good
                else:  # wait, ack_then_silent, approve_on_cancel
                    self.pending = (txn, amount)
            elif item.type == "C":
                self.cancels.append(txn)
                if self.mode == "ack_then_silent":
                    continue
                if self.pending and self.pending[0] == txn:
                    amount = self.pending[1]
                    self.pending = None
                    code = "A" if self.mode == "approve_on_cancel" else "C"
                    out += self._r(txn, code, "AUTH03" if code == "A" else "cancelled by the kiosk", amount)
                elif txn in self.done:
                    out += self._r(txn, *self.done[txn])
                else:
                    out += self._r(txn, "U", "")
            elif item.type == "Q":
                code, detail, amount = self.done.get(txn, ("U", "", ""))
                out += self._r(txn, code, detail, amount) if code != "U" else self._r_unknown(txn)
        return out

    def _r_unknown(self, txn: str) -> bytes:
        from hardware.serial_frames import encode_frame

        return encode_frame("R", txn, "U", "")

    def tap(self, code: str = "A", detail: str = "AUTH04") -> None:
        """The patient finishes at the terminal: the result of the pending sale goes to the host."""
        assert self.pending, "no sale is waiting at the terminal"
        txn, amount = self.pending
        self.pending = None
        self.device.send(self._r(txn, code, detail, amount))

    def close(self) -> None:
        self.device.close()
