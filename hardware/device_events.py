"""Delivery of what an input device produced (a scanned code, a card) from its reader thread to the app.

Two ways to receive, as the app prefers: set ``when_item`` / ``when_error`` callbacks
(called from the device's thread; a Kivy app hops to its own with ``Clock.schedule_once``),
or call ``read(timeout)``, which returns the next item or raises the next error. While a
callback is set, items go to it and not to ``read``.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from protocol.errors import DeviceError

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReadTimeout(DeviceError, TimeoutError):
    """Nothing arrived from the device within the timeout."""


class DeviceClosed(DeviceError):
    """The device was closed."""


class EventQueue(Generic[T]):
    """Items and errors from one device, in arrival order."""

    def __init__(self, what: str = "device") -> None:
        self.what = what
        self.when_item: Callable[[T], None] | None = None
        self.when_error: Callable[[DeviceError], None] | None = None
        self._queue: queue.Queue[T | DeviceError] = queue.Queue(maxsize=100)
        self._closed = threading.Event()

    def put(self, item: T | DeviceError) -> None:
        callback = self.when_error if isinstance(item, DeviceError) else self.when_item
        if callback is not None:
            try:
                callback(item)  # type: ignore[arg-type]
            except Exception:  # the app's bug must not stop the device thread
                log.exception("%s handler failed", self.what)
            return
        if isinstance(item, DeviceError):
            log.warning("%s: %s", self.what, item)
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # nobody is reading: keep the newest, like a person would expect
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def read(self, timeout: float | None = None) -> T:
        """The next item; raises the next error, ReadTimeout, or DeviceClosed."""
        if self._closed.is_set() and self._queue.empty():
            raise DeviceClosed(f"the {self.what} is closed")
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise ReadTimeout(f"nothing from the {self.what} within {timeout} s") from None
        if isinstance(item, DeviceClosed) and self._closed.is_set():
            raise item
        if isinstance(item, DeviceError):
            raise item
        return item

    def clear(self) -> None:
        """Forget anything not yet read (a new kiosk session must not get the last patient's scan)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            try:
                self._queue.put_nowait(DeviceClosed(f"the {self.what} is closed"))
            except queue.Full:
                pass


class EventSource(Generic[T]):
    """Base of input devices that deliver through an ``EventQueue`` (scanners, card readers).

    Gives them ``when_error``, ``read`` and ``clear``; each device names its own item callback
    as an alias of ``when_item`` (``when_scanned``, ``when_card``), like gpiozero's domain aliases.
    """

    def __init__(self, what: str) -> None:
        self._events: EventQueue[T] = EventQueue(what)

    @property
    def when_item(self) -> Callable[[T], None] | None:
        return self._events.when_item

    @when_item.setter
    def when_item(self, fn: Callable[[T], None] | None) -> None:
        self._events.when_item = fn

    @property
    def when_error(self) -> Callable[[DeviceError], None] | None:
        return self._events.when_error

    @when_error.setter
    def when_error(self, fn: Callable[[DeviceError], None] | None) -> None:
        self._events.when_error = fn

    def read(self, timeout: float | None = None) -> T:
        """The next item; raises the next error, ReadTimeout, or DeviceClosed."""
        return self._events.read(timeout)

    def clear(self) -> None:
        """Forget anything not yet read (a new kiosk session must not get the last patient's scan)."""
        self._events.clear()
