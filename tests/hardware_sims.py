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
