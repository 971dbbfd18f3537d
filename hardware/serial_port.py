"""A serial port read by its own thread: what the serial card reader, code scanner and payment terminal share.

Each device opens its port with pyserial (a device path or any pyserial URL such as ``loop://``),
then hands every chunk of bytes to its own parser. A read that returns nothing means the line was
quiet for the port's read timeout, which the devices use to drop a half-received frame or code.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from protocol.errors import DeviceError


class SerialPortReader:
    """Opens a serial port and, once ``start()`` is called, reads it in a daemon thread.

    ``device`` names the device in error messages ("card reader", "scanner", ...).
    ``on_data(bytes)`` gets every chunk read, ``on_quiet()`` every read timeout with nothing read,
    ``on_lost(DeviceError)`` a disconnect (once; the thread then ends). A port that cannot be
    opened raises ``DeviceError`` from the constructor.
    """

    def __init__(self, *, port: str, baudrate: int, timeout: float, device: str, thread_name: str,
                 on_data: Callable[[bytes], None], on_quiet: Callable[[], None],
                 on_lost: Callable[[DeviceError], None]) -> None:
        import serial

        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout)
        except (serial.SerialException, ValueError) as exc:
            raise DeviceError(f"cannot open the {device} at {port}: {exc}") from None
        self._device = device
        self._on_data = on_data
        self._on_quiet = on_quiet
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    @property
    def serial(self) -> Any:
        """The pyserial port (for writing, and for tests writing to a ``loop://`` port)."""
        return self._serial

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        """Start the reader thread (after the owner is ready for the callbacks)."""
        self._thread.start()

    def _run(self) -> None:
        import serial

        while not self._stop.is_set():
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            # closing the port under a blocked read can surface as TypeError/AttributeError
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    self._on_lost(DeviceError(f"the {self._device} was disconnected: {exc}"))
                return
            if data:
                self._on_data(data)
            else:
                self._on_quiet()

    def close(self) -> None:
        """Stop the thread and close the port; later calls do nothing."""
        if not self._stop.is_set():
            self._stop.set()
            try:
                self._serial.cancel_read()
            except Exception:
                pass
            self._thread.join(timeout=2)
            self._serial.close()
