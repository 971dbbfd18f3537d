"""A watchdog for the UI thread: if it stops beating, the process exits non-zero so systemd restarts it.

The UI thread calls ``beat()`` (Kivy: ``Clock.schedule_interval``); a monitor thread checks the
age of the last beat. A frozen GL driver, a deadlock or an endless loop in a handler all stop
the beats, and a screen that silently stops updating is worse than one that restarts.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

STALL_EXIT_CODE = 3


def _exit_now(age: float) -> None:
    log.critical("UI thread stalled for %.1f s: exiting with code %d so the service restarts", age, STALL_EXIT_CODE)
    logging.shutdown()
    os._exit(STALL_EXIT_CODE)  # sys.exit from a side thread would only end that thread


class Watchdog:
    """Calls ``on_stall(age_seconds)`` once when no ``beat()`` came for ``timeout`` seconds.

    The default ``on_stall`` exits the process with code 3. ``touch_file``, if given, is touched
    on every beat (for an external supervisor that watches a file's age).
    """

    def __init__(self, *, timeout: float = 30.0, check_every: float = 1.0,
                 on_stall: Callable[[float], None] | None = None, touch_file: Path | str | None = None) -> None:
        self.timeout = timeout
        self.check_every = check_every
        self.on_stall = on_stall or _exit_now
        self.touch_file = Path(touch_file) if touch_file else None
        self.stalled = False
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._last = time.monotonic()
        if self.touch_file is not None:
            try:
                self.touch_file.touch()
            except OSError:
                pass

    @property
    def age(self) -> float:
        return time.monotonic() - self._last

    def start(self) -> "Watchdog":
        self.beat()
        self._thread = threading.Thread(target=self._run, name="ui-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.check_every + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.check_every):
            age = self.age
            if age > self.timeout and not self.stalled:
                self.stalled = True
                self.on_stall(age)
