"""Check-in: by appointment number (keypad or scanner), or from the identified patient's list of today's appointments.

A wrong number gives a clear message and no ticket. With the server unreachable the
kiosk says where to go instead and retries with the same idempotency key, so the retry
can never produce a second ticket.
"""
from __future__ import annotations

import re
from typing import Any

from kivy.properties import ListProperty, ObjectProperty, StringProperty

from kiosk.server_client import RequestRejectedError, ServerUnavailableError, new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.errors import ClinicflowError, ConflictError, NotFoundError

PREFIX = "AP"
_CODE = re.compile(r"^[A-Za-z0-9-]{4,32}$")


class _RetryingCheckIn:
    """Shared by both check-in screens: submit with a key, keep it for retries until answered."""

    def _check_in(self, appointment_no: str) -> None:
        if self._pending_no != appointment_no:
            self._pending_no, self._key = appointment_no, new_key()
        self._cancel_retry()
        self.error = ""
        client, key = self.kiosk.client, self._key
        self.kiosk.run(self, lambda: client.check_in(appointment_no, key=key), self._checked_in)

    def _checked_in(self, ticket: Any, error: BaseException | None) -> None:
        if error is None:
            self._pending_no = self._key = None
            self.after_check_in()
            self.kiosk.ticket.show(ticket)
            return
        if isinstance(error, ServerUnavailableError):
            self.error = self.tr(
                "The hospital system is not reachable right now. We keep trying; you can also go to the staffed desk: {where}",
                where=self.tr.pick(self.kiosk.settings.directions))
            no = self._pending_no
            self._cancel = self.kiosk.clock.schedule(self.kiosk.settings.retry_interval, lambda: self._check_in(no))
        elif isinstance(error, NotFoundError):
            self._pending_no = self._key = None
            self.error = self.tr("We could not find appointment {no}. Please check the number on your slip, or ask at the desk.",
                                 no=self._shown_no())
        elif isinstance(error, (ConflictError, RequestRejectedError, ClinicflowError)):
            self._pending_no = self._key = None
            self.error = self.tr("This appointment cannot be checked in here. Please ask at the desk.") + \
                f" ({getattr(error, 'detail', str(error))})"
        else:
            raise error

    def _cancel_retry(self) -> None:
        if getattr(self, "_cancel", None):
            self._cancel()
        self._cancel = None

    def retrying(self) -> bool:
        return self._cancel is not None


class CheckInViewModel(_RetryingCheckIn, FlowViewModel):
    """The appointment-number keypad (and scanner input) on the check-in screen."""

    digits = StringProperty("")  # what was typed after the printed "AP" prefix
    code = StringProperty("")  # the full appointment number shown in the entry box

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(kiosk, **kw)
        self._pending_no: str | None = None
        self._key: str | None = None
        self._cancel = None
        self.bind(digits=lambda *_: setattr(self, "code", PREFIX + self.digits if self.digits else ""))

    def enter(self) -> None:
        self.prompt = self.tr("Type the number on your appointment slip, or scan its QR code.")

    def press(self, key: str) -> None:
        """A keypad key: a digit, "del", "clear" or "ok"."""
        self.kiosk.touch()
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif key == "ok":
            self.submit()
        elif key.isdigit() and len(self.digits) < 12:
            self.digits += key
            self.error = ""

    def type_code(self, code: str) -> None:
        """Enter a whole number at once (the end-to-end test, the demo walk-through)."""
        code = code.strip().upper()
        self.digits = code[len(PREFIX):] if code.startswith(PREFIX) else code

    def scanned(self, code: str) -> None:
        """A keyboard-wedge or serial scanner read a code (it sends the code and Enter)."""
        if self.kiosk.screen not in ("checkin", "home"):
            return
        self.type_code(code)
        if self.kiosk.screen != "checkin":
            self.kiosk.go("checkin")
        self.submit()

    def submit(self) -> None:
        if self.busy:
            return
        no = self.code
        if not no:
            self.error = self.tr("Please type your appointment number first.")
            return
        if not _CODE.match(no):
            self.error = self.tr("We could not find appointment {no}. Please check the number on your slip, or ask at the desk.",
                                 no=no)
            return
        self._check_in(no)

    def _shown_no(self) -> str:
        return self.code

    def after_check_in(self) -> None:
        self.digits = ""

    def use_phone(self) -> None:
        """No slip at hand: identify by phone number instead (then today's appointments)."""
        self.kiosk.touch()
        self.kiosk.identify.start(then="appointments")
        self.kiosk.go("identify")
        self.kiosk.identify.stage = "phone"

    def voice_prompt(self) -> str:
        # A patient who cannot see the keypad checks in by card: it leads to the appointments list.
        return self.tr("Insert your ID card or insurance card, or scan your appointment code.")

    def voice_options(self) -> list[VoiceOption]:
        return []  # voice users identify by card and use the appointments list

    def reset(self) -> None:
        super().reset()
        self._cancel_retry()
        self.digits = ""
        self._pending_no = self._key = None


class AppointmentsViewModel(_RetryingCheckIn, FlowViewModel):
    """Today's appointments of the identified patient; one touch to check in a single one."""

    appointments = ListProperty([])  # protocol.api_patient.AppointmentOut
    selected = ObjectProperty(None, allownone=True)
    guidance = StringProperty("")  # early / late advice for the selected appointment
    preselect = StringProperty("")  # appointment number from the scanned QR code

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(kiosk, **kw)
        self._pending_no: str | None = None
        self._key: str | None = None
        self._cancel = None

    def enter(self) -> None:
        self.prompt = self.tr("Loading your appointments...")
        self.error = ""
        session = self.kiosk.patient.session
        self.kiosk.run(self, lambda: self.kiosk.client.appointments(session), self._loaded)

    def refresh_texts(self) -> None:
        self._describe()

    def _loaded(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
            return
        self.appointments = list(result.appointments)
        chosen = next((a for a in self.appointments if a.appointment_no == self.preselect), None)
        open_ones = [a for a in self.appointments if a.timing != "closed"]
        self.selected = chosen or (open_ones[0] if len(open_ones) == 1 else None)
        self._describe()

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ServerUnavailableError):
            self.error = self.tr(
                "The hospital system is not reachable right now. We keep trying; you can also go to the staffed desk: {where}",
                where=self.tr.pick(self.kiosk.settings.directions))
            self._cancel = self.kiosk.clock.schedule(self.kiosk.settings.retry_interval, self.enter)
        elif isinstance(error, ClinicflowError):
            self.error = self.tr("Your visit has ended. Please start again.")
        else:
            raise error

    def _describe(self) -> None:
        a = self.selected
        if not self.appointments:
            self.prompt = self.tr("You have no appointment today. You can register at this kiosk.")
            self.guidance = ""
            return
        if a is None:
            self.prompt = self.tr("Choose the appointment to check in.")
            self.guidance = ""
            return
        dept = self.tr.pick(a.department_name)
        slot = self.kiosk.format_time(a.slot_start)
        if a.timing == "early":
            self.guidance = self.tr("Your appointment is at {slot}. Check-in opens at {opens}. Please come back then.",
                                    slot=slot, opens=self.kiosk.format_time(a.checkin_opens_at))
            self.prompt = self.tr("{dept}, {slot}. {guidance}", dept=dept, slot=slot, guidance=self.guidance)
        elif a.timing == "late":
            self.guidance = self.tr("You are late for your {slot} appointment. You can still check in, but you may wait longer.",
                                    slot=slot)
            self.prompt = self.tr("{dept}, {slot}. {guidance}", dept=dept, slot=slot, guidance=self.guidance)
        elif a.timing == "closed":
            self.guidance = self.tr("This appointment is already checked in.") if a.status == "checked_in" \
                else self.tr("This appointment was cancelled.")
            self.prompt = self.tr("{dept}, {slot}. {guidance}", dept=dept, slot=slot, guidance=self.guidance)
        else:
            self.guidance = ""
            self.prompt = self.tr("{dept}, {slot}. Press Check in.", dept=dept, slot=slot)

    def select(self, appointment_no: str) -> None:
        self.kiosk.touch()
        self.selected = next(a for a in self.appointments if a.appointment_no == appointment_no)
        self.error = ""
        self._describe()

    @property
    def can_check_in(self) -> bool:
        return self.selected is not None and self.selected.timing in ("on_time", "late") and not self.busy

    def confirm(self) -> None:
        """The "Check in" button."""
        self.kiosk.touch()
        if not self.can_check_in:
            return
        self._check_in(self.selected.appointment_no)

    def _shown_no(self) -> str:
        return self._pending_no or (self.selected.appointment_no if self.selected else "")

    def after_check_in(self) -> None:
        self.preselect = ""

    def voice_options(self) -> list[VoiceOption]:
        if self.can_check_in:
            return [(self.tr("Check in"), self.confirm)]
        return [(self.tr("{dept}, {slot}", dept=self.tr.pick(a.department_name), slot=self.kiosk.format_time(a.slot_start)),
                 lambda no=a.appointment_no: self.select(no)) for a in self.appointments]

    def reset(self) -> None:
        super().reset()
        self._cancel_retry()
        self.appointments = []
        self.selected = None
        self.guidance = ""
        self.preselect = ""
        self._pending_no = self._key = None
