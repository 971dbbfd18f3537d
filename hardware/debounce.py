"""Software debounce for push buttons wired to GPIO.

A mechanical contact bounces for a few milliseconds when pressed or released, and a long
cable in a clinic picks up spikes from other equipment. gpiozero's ``bounce_time`` only
ignores edges for a while after the first one (so a spike still counts), and its mock
pins do not simulate bounce at all, so clinicflow debounces itself:

* ``Debouncer`` is a pure state machine over (level, time) samples: a press is reported
  once the input has been active, without interruption, for ``settle_s``; a release once
  it has been inactive for ``settle_s`` after a press. Spikes shorter than ``settle_s``
  are never reported, and a bouncing press is reported exactly once.
* ``DebouncedButton`` feeds it from a gpiozero input's edges and runs its timing in one
  small thread, calling ``when_pressed``/``when_released`` from there.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PRESS, RELEASE = "press", "release"


class Debouncer:
    """Turns raw input levels into debounced press/release events (no threads, no clock of its own)."""

    def __init__(self, settle_s: float = 0.03, *, initial: bool = False) -> None:
        if settle_s <= 0:
            raise ValueError("settle_s must be positive")
        self.settle_s = settle_s
        self._raw = initial
        self._since = float("-inf")  # time the raw level last changed
        self._stable = initial       # debounced level already reported

    @property
    def pressed(self) -> bool:
        """The debounced state."""
        return self._stable

    def feed(self, active: bool, now: float) -> list[str]:
        """Record a raw level seen at ``now``; return events that became due before this edge."""
        events = self.poll(now)
        if active != self._raw:
            self._raw = active
            self._since = now
        return events

    def poll(self, now: float) -> list[str]:
        """Events due at ``now``: the raw level has held for ``settle_s`` and differs from the stable one."""
        if self._raw != self._stable and now - self._since >= self.settle_s:
            self._stable = self._raw
            return [PRESS if self._stable else RELEASE]
        return []

    def deadline(self) -> float | None:
        """When ``poll`` may next report something (None: nothing pending)."""
        if self._raw != self._stable:
            return self._since + self.settle_s
        return None


class DebouncedButton:
    """A push button on a GPIO pin (to ground, internal pull-up), debounced in software.

    ``pin_factory`` is passed to gpiozero like every device here (tests use ``MockFactory``).
    Callbacks run in the button's own timing thread, never in gpiozero's edge thread, and
    must not block for long (queue work elsewhere). ``close()`` is idempotent.
    """

    def __init__(self, pin: int | str, *, settle_s: float = 0.03, pull_up: bool = True,
                 pin_factory: Any = None, name: str = "") -> None:
        from gpiozero import DigitalInputDevice

        self.name = name or str(pin)
        self.when_pressed: Callable[[], None] | None = None
        self.when_released: Callable[[], None] | None = None
        self._device = DigitalInputDevice(pin, pull_up=pull_up, bounce_time=None, pin_factory=pin_factory)
        self._debouncer = Debouncer(settle_s, initial=bool(self._device.is_active))
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._closed = False
        self._device.when_activated = lambda: self._edge(True)
        self._device.when_deactivated = lambda: self._edge(False)
        self._thread = threading.Thread(target=self._run, name=f"debounce-{self.name}", daemon=True)
        self._thread.start()

    @property
    def is_pressed(self) -> bool:
        """The debounced state of the button."""
        return self._debouncer.pressed

    def _edge(self, active: bool) -> None:
        # gpiozero's edge thread: record and hand over, never run user callbacks here.
        with self._cond:
            self._pending += self._debouncer.feed(active, time.monotonic())
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._pending:
                    deadline = self._debouncer.deadline()
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if timeout != 0.0:
                        self._cond.wait(timeout)
                    self._pending += self._debouncer.poll(time.monotonic())
                if self._closed:
                    return
                events, self._pending = self._pending, []
            self._fire(events)

    def _fire(self, events: list[str]) -> None:
        for event in events:
            callback = self.when_pressed if event == PRESS else self.when_released
            if callback is None:
                continue
            try:
                callback()
            except Exception:  # a bug in a handler must not kill the button
                log.exception("button %s: %s handler failed", self.name, event)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=2)
        self._device.close()

    def __enter__(self) -> "DebouncedButton":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
