"""The dashboard's clock work: close days that are over, write last week's report on Mondays.

One daemon thread wakes every ``interval`` seconds (and once at start): it folds every past day
that is not closed yet into the aggregates (``aggregate.close_past_days``) and, when last week's
report is missing and the server was in use that week, writes it in both languages. At start it
also primes the dashboard (the last 90 days' closed cells read into memory, today folded) so that
the first query after a restart is quick. A failure is logged and tried again next time.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from queueserver.store import Store
from queueserver.dashboard import report
from queueserver.dashboard.aggregate import close_past_days
from queueserver.dashboard.labels import LANGUAGES
from queueserver.dashboard.queries import Dashboard

log = logging.getLogger(__name__)


class DashboardScheduler:
    def __init__(self, board: Dashboard, store: Store, *, reports_dir: Path, clock: Callable[[], datetime],
                 interval: float = 600.0) -> None:
        self.board, self.store, self.reports_dir, self.clock = board, store, reports_dir, clock
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one closing or report at a time (the thread and on-demand calls)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="dashboard-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        primed = False
        while not self._stop.is_set():
            try:
                self.run_once()
                if not primed:  # the first manager after a (re)start finds the last 90 days' cells read
                    self.board.prime()
                    primed = True
            except Exception:
                log.exception("dashboard: closing days or writing the weekly report failed; trying again later")
            self._stop.wait(self.interval)

    def today(self) -> date:
        return self.clock().astimezone(self.board.tz).date()

    def run_once(self) -> list[str]:
        """Close past days; write last week's reports if they are missing. Returns what it did."""
        done: list[str] = []
        with self._lock:
            now = self.clock()
            today = self.today()
            closed = close_past_days(self.store, today=today.isoformat(), rules=self.board.hospital.rules,
                                     tz=self.board.tz, now=now)
            done += [f"closed {d}" for d in closed]
            week = report.last_full_week(today)
            missing = [lang for lang in LANGUAGES
                       if report.report_path(self.reports_dir, report.report_name(week, lang)) is None]
            # A week without a single arrival or kiosk session is a server that was not in use (a new
            # install): no report for it. The manager's button still makes one on demand.
            if missing and report.week_in_use(self.board, week):
                for lang in missing:
                    report.write_week(self.board, self.store, self.reports_dir, week, lang, now=now)
                    done.append(f"report {week} {lang}")
        return done

    def write_report(self, week: date, lang: str) -> dict:
        """On demand (the page's button): the week's report now, after closing the days that are over."""
        with self._lock:
            now = self.clock()
            close_past_days(self.store, today=self.today().isoformat(), rules=self.board.hospital.rules,
                            tz=self.board.tz, now=now)
            return report.write_week(self.board, self.store, self.reports_dir, week, lang, now=now)
