"""Reports: the patient's lab reports; ready ones print as A4 PDFs (CUPS) in one touch.

Each print is recorded on the server after the printer finished it; reprints are limited by
the hospital's setting (the server says how many are left); a report not yet ready says when.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from kivy.properties import ListProperty, StringProperty

from kiosk.server_client import ServerUnavailableError, new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.errors import ClinicflowError


class ReportsViewModel(FlowViewModel):
    reports = ListProperty([])  # protocol.api_patient.ReportOut
    printed = ListProperty([])  # report ids printed in this visit
    status_text = StringProperty("")

    def enter(self) -> None:
        self.prompt = self.tr("Loading your reports...")
        session = self.kiosk.patient.session
        self.kiosk.run(self, lambda: self.kiosk.client.reports(session), self._loaded)

    def refresh_texts(self) -> None:
        self._describe()

    def _loaded(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions)) \
                if isinstance(error, ServerUnavailableError) else self.tr("Your reports could not be loaded.")
            return
        self.reports = list(result.reports)
        self._describe()

    @property
    def printable(self) -> list[Any]:
        return [r for r in self.reports if r.ready and r.reprints_left > 0 and r.report_id not in self.printed]

    @property
    def not_ready(self) -> list[Any]:
        """Reports the lab has not finished yet, soonest expected first (those without a time last)."""
        waiting = [r for r in self.reports if not r.ready]
        return sorted(waiting, key=lambda r: (r.ready_at is None, r.ready_at or 0))

    def not_ready_text(self) -> str:
        """One sentence naming every report not ready yet and when it is expected ("" when none)."""
        parts = [self.tr("{title} (expected at {when})", title=self.tr.pick(r.title),
                         when=self.kiosk.format_time(r.ready_at)) if r.ready_at else self.tr.pick(r.title)
                 for r in self.not_ready]
        if not parts:
            return ""
        return self.tr("Not ready yet: {reports}. You can also see them on your phone when they are ready.",
                       reports=self.tr("; ").join(parts))

    def line(self, report: Any) -> str:
        """How one report is described on screen."""
        title = self.tr.pick(report.title)
        if not report.ready:
            when = self.kiosk.format_time(report.ready_at) if report.ready_at else "?"
            return self.tr("{title}: not ready yet, expected at {when}", title=title, when=when)
        if report.report_id in self.printed:
            return self.tr("{title}: printed", title=title)
        if report.reprints_left <= 0:
            return self.tr.ngettext("{title}: already printed {n} time; ask at the desk for another copy",
                                    "{title}: already printed {n} times; ask at the desk for another copy",
                                    report.prints, title=title)
        return self.tr("{title}: ready", title=title)

    def _describe(self) -> None:
        if not self.reports:
            self.prompt = self.tr("You have no reports.")
            return
        lines = [self.line(r) for r in self.reports]
        ask = self.tr.ngettext("Press Print to print {n} report.", "Press Print to print {n} reports.",
                               len(self.printable)) if self.printable else ""
        pending = self.not_ready_text()
        self.prompt = " ".join(([ask] if ask else []) + lines + ([pending] if pending else []))  # the choice first

    def print_ready(self) -> None:
        """The "Print" button: prints every ready report not printed yet (touch 1)."""
        self.kiosk.touch()
        todo = self.printable
        if not todo:
            return
        self._print(todo)

    def print_one(self, report_id: str) -> None:
        self.kiosk.touch()
        todo = [r for r in self.printable if r.report_id == report_id]
        if todo:
            self._print(todo)

    def _print(self, reports: list[Any]) -> None:
        printer, client, session = self.kiosk.report_printer, self.kiosk.client, self.kiosk.patient.session
        if printer is None:
            self.error = self.tr("This kiosk cannot print reports. Please go to the staffed desk: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
            return
        self.error = ""
        self.status_text = self.tr("Printing...")

        def work() -> list[Any]:
            done = []
            for report in reports:
                pdf = client.report_pdf(session, report.report_id)
                with tempfile.TemporaryDirectory(prefix="clinicflow-report-") as tmp:
                    path = Path(tmp) / f"{report.report_id}.pdf"
                    path.write_bytes(pdf)
                    printer.print_pdf(path, title=f"report {report.report_id}")
                done.append(client.record_report_print(session, report.report_id, key=new_key()))
            return done

        self.kiosk.run(self, work, self._printed)

    def _printed(self, done: Any, error: BaseException | None) -> None:
        if error is not None:
            self.status_text = ""
            if isinstance(error, ServerUnavailableError):
                self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                     where=self.tr.pick(self.kiosk.settings.directions))
            elif isinstance(error, ClinicflowError):
                self.error = self.tr("The report printer is not working: {why}. Please go to the staffed desk: {where}",
                                     why=str(error), where=self.tr.pick(self.kiosk.settings.directions))
            else:
                raise error
            self.kiosk.run(self, lambda: self.kiosk.client.reports(self.kiosk.patient.session), self._loaded)
            return
        self.printed = [*self.printed, *(r.report_id for r in done)]
        by_id = {r.report_id: r for r in done}
        self.reports = [by_id.get(r.report_id, r) for r in self.reports]
        self.status_text = self.tr("Your reports are printed. Please take them from the tray below.")
        self._describe()
        self.prompt = self.status_text + " " + self.prompt

    def finish(self) -> None:
        self.kiosk.touch()
        self.kiosk.end_session()

    def voice_options(self) -> list[VoiceOption]:
        opts: list[VoiceOption] = []
        if self.printable:
            opts.append((self.tr("Print"), self.print_ready))
        opts.append((self.tr("Finish"), self.finish))
        return opts

    def reset(self) -> None:
        super().reset()
        self.reports = []
        self.printed = []
        self.status_text = ""
