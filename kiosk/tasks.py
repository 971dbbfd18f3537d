"""Task runners: how view-models run blocking work (HTTP, printing, payment terminals).

View-models call ``tasks.run(work, done)``; ``done(result, error)`` is called with exactly
one of the two set. ``InlineTasks`` runs both at once on the caller's thread (view-model
tests, no Kivy clock needed); ``ThreadTasks`` runs ``work`` on a worker thread and ``done``
on Kivy's main thread through ``Clock.schedule_once``, the only bridge into the UI.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)
Done = Callable[[Any, BaseException | None], None]


class Tasks(Protocol):
    def run(self, work: Callable[[], Any], done: Done) -> None: ...


class InlineTasks:
    """Runs the work and its completion immediately on the calling thread."""

    def run(self, work: Callable[[], Any], done: Done) -> None:
        try:
            result = work()
        except Exception as exc:  # handed to done(): the view-model decides what the patient sees
            done(None, exc)
            return
        done(result, None)


class ThreadTasks:
    """Runs work on a small pool; completions come back on the Kivy main thread."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiosk-task")
        self.pending = 0
        self._lock = threading.Lock()

    def run(self, work: Callable[[], Any], done: Done) -> None:
        from kivy.clock import Clock

        with self._lock:
            self.pending += 1

        def job() -> None:
            try:
                result, error = work(), None
            except Exception as exc:
                result, error = None, exc
            with self._lock:
                self.pending -= 1
            Clock.schedule_once(lambda _dt: done(result, error), 0)

        self._pool.submit(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
