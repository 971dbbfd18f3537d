"""Ticket: number, room, position, estimated wait, QR code of the status page; printed.

With the printer out of paper (or broken) the ticket stays on screen with its QR code and
the patient is asked to take a photo; the fault goes into the kiosk's device status.
"""
from __future__ import annotations

import logging
from typing import Any

from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from kiosk.viewmodels.base import FlowViewModel, VoiceOption

log = logging.getLogger(__name__)


class TicketViewModel(FlowViewModel):
    ticket = ObjectProperty(None, allownone=True)  # protocol.api.TicketOut
    printed = BooleanProperty(False)
    print_problem = StringProperty("")  # "" or the "take a photo" sentence
    number = StringProperty("")
    room_text = StringProperty("")
    position_text = StringProperty("")
    wait_text = StringProperty("")
    qr_text = StringProperty("")
    floor_map = ObjectProperty(None, allownone=True)
    """PNG bytes of the floor map of where the ticket sends the patient (``TicketOut.where_map``), or None."""

    def show(self, ticket: Any) -> None:
        self.ticket = ticket
        self.printed = False
        self.print_problem = ""
        self.floor_map = None
        self.kiosk.go("ticket")
        self._fetch_map()
        self._print()

    def _fetch_map(self) -> None:
        """Load the ticket's floor map, if the hospital gives one; without it the screen simply has none."""
        path, client = getattr(self.ticket, "where_map", None), self.kiosk.client
        if not path or client is None:
            return
        ticket = self.ticket

        def loaded(png: Any, error: BaseException | None) -> None:
            if error is not None:
                log.warning("no floor map for ticket %s: %s", ticket.number, error)
            elif self.ticket is ticket:
                self.floor_map = png

        self.kiosk.run(self, lambda: client.floor_map(path), loaded)

    def enter(self) -> None:
        self._describe()

    def _describe(self) -> None:
        t = self.ticket
        if t is None:
            self.prompt = ""
            return
        tr = self.tr
        self.number = t.number
        self.qr_text = t.status_url
        dept = tr.pick(t.department_name)
        if t.room_name:
            self.room_text = tr("{dept}, {room}", dept=dept, room=tr.pick(t.room_name))
            if self.where:  # and the way there: "内科，1 诊室，门诊楼 2 楼，出电梯左转第一间"
                self.room_text = tr("{dept}, {room}", dept=self.room_text, room=tr.pick(self.where))
        elif self.where:  # several rooms, none assigned yet: say where to wait
            self.room_text = tr("{dept}, {room}", dept=dept, room=tr.pick(self.where))
        else:
            self.room_text = dept
        if t.position is None:
            self.position_text = tr("Please go to {room} now.", room=tr.pick(t.room_name) or dept)
        elif t.position <= 1:
            self.position_text = tr("You are next.")
        else:
            self.position_text = tr.ngettext("{n} person ahead of you", "{n} people ahead of you", t.position - 1)
        # Next in line: "about 0 minutes" says nothing a patient can use; "you are next" says it all.
        self.wait_text = tr("About {m} minutes", m=t.estimated_wait_min) \
            if t.estimated_wait_min is not None and (t.position or 0) > 1 else ""
        already = tr("You had already checked in; this is your ticket.") + " " if t.already_checked_in else ""
        self.prompt = already + tr("Your number is {number}. {where}. {position}",
                                   number=t.number, where=self.room_text, position=self.position_text)

    @property
    def where(self) -> dict[str, str]:
        """Where to go: the hospital file's location of the room (or the department's waiting area) as the
        server sends it, else this kiosk's own waiting-area setting, or {}."""
        if self.ticket is None:
            return {}
        return dict(self.ticket.where) or dict(self.kiosk.settings.waiting_areas.get(self.ticket.department, {}))

    def _print(self) -> None:
        printer = self.kiosk.printer
        if printer is None:
            self._print_failed(self.tr("This kiosk has no printer."))
            return
        from hardware.ticket_printer import TicketSlip

        slip = TicketSlip.from_ticket(self.ticket, language=self.kiosk.language, where=self.where,
                                      timezone=self.kiosk.settings.timezone)
        self.kiosk.run(self, lambda: printer.print_ticket(slip), self._printed)

    def _printed(self, _result: Any, error: BaseException | None) -> None:
        if error is None:
            self.printed = True
            self.kiosk.printer_ok()
            return
        from hardware.ticket_printer import PaperOutError

        if isinstance(error, PaperOutError):
            self._print_failed(self.tr("The printer is out of paper."), fault="paper_out")
        else:
            self._print_failed(self.tr("The printer is not working."), fault=str(error) or "printer_error")

    def _print_failed(self, why: str, fault: str = "no_printer") -> None:
        self.kiosk.printer_failed(fault)
        self.print_problem = why + " " + self.tr("Please take a photo of this screen: the QR code shows your place in the queue.")
        if self.kiosk.voice:  # the number first again, then what to do without a slip
            self.kiosk.say(self.prompt + " " + self.print_problem)

    def reprint(self) -> None:
        self.kiosk.touch()
        if self.ticket is not None:
            self.print_problem = ""
            self._print()

    def done(self) -> None:
        self.kiosk.touch()
        self.kiosk.end_session()

    def voice_options(self) -> list[VoiceOption]:
        return [(self.tr("Hear my number again"), self.hear_again), (self.tr("Finish"), self.done)]

    def hear_again(self) -> None:
        self.kiosk.touch()
        self.kiosk.say(self.prompt, again=True)

    def reset(self) -> None:
        super().reset()
        self.ticket = None
        self.printed = False
        self.print_problem = ""
        self.number = self.room_text = self.position_text = self.wait_text = self.qr_text = ""
