"""Identify: appointment QR code (scanner), ID or insurance card (card reader), or phone + last four ID digits.

No free text anywhere: the phone number and the digits are typed on a large keypad.
"""
from __future__ import annotations

from kivy.properties import OptionProperty, StringProperty

from kiosk.server_client import RequestRejectedError, ServerUnavailableError
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.api_patient import IdentifyRequest
from protocol.errors import ClinicflowError, NotFoundError

PHONE_LEN = 11


class IdentifyViewModel(FlowViewModel):
    stage = OptionProperty("choose", options=["choose", "phone", "last4"])
    phone = StringProperty("")
    last4 = StringProperty("")
    then = StringProperty("appointments")  # the flow to continue with once identified
    used_masked = StringProperty("")  # the identifier the patient used, masked (e.g. ****8642)

    def start(self, then: str) -> None:
        self.reset()
        self.then = then

    def enter(self) -> None:
        self.prompt = {
            "choose": self.tr("Scan your appointment code, insert your ID or insurance card, or use your phone number."),
            "phone": self.tr("Enter your mobile phone number."),
            "last4": self.tr("Enter the last 4 characters of your ID number."),
        }[self.stage]

    def on_stage(self, *_):
        self.enter()

    # -- phone keypad ---------------------------------------------------------------------------
    def use_phone(self) -> None:
        self.kiosk.touch()
        self.error = ""
        self.stage = "phone"

    @property
    def entry(self) -> str:
        return self.phone if self.stage == "phone" else self.last4

    def press(self, key: str) -> None:
        """A keypad key: a digit, "X" (last character of some ID numbers), "del" or "ok"."""
        self.kiosk.touch()
        if key == "del":
            if self.stage == "phone":
                self.phone = self.phone[:-1]
            else:
                self.last4 = self.last4[:-1]
        elif key == "ok":
            self.confirm()
        elif self.stage == "phone" and key.isdigit() and len(self.phone) < PHONE_LEN:
            self.phone += key
        elif self.stage == "last4" and (key.isdigit() or key == "X") and len(self.last4) < 4:
            self.last4 += key

    def confirm(self) -> None:
        if self.stage == "phone":
            if len(self.phone) != PHONE_LEN:
                self.error = self.tr("A mobile number has 11 digits.")
                return
            self.error = ""
            self.stage = "last4"
        elif self.stage == "last4":
            if len(self.last4) != 4:
                self.error = self.tr("Enter 4 characters.")
                return
            self._identify(IdentifyRequest(method="phone", phone=self.phone, id_last4=self.last4))

    # -- devices --------------------------------------------------------------------------------
    def scanned(self, code: str) -> None:
        try:
            request = IdentifyRequest(method="qr", appointment_no=code.strip().upper())
        except ValueError:
            self.error = self.tr("This code is not an appointment code. Please scan the QR code on your appointment slip.")
            return
        self._identify(request)

    def card_read(self, card_number: str) -> None:
        try:
            request = IdentifyRequest(method="card", card_number=card_number.strip())
        except ValueError:
            self.error = self.tr("The card could not be read. Please take it out and insert it again.")
            return
        self._identify(request)

    def _identify(self, request: IdentifyRequest) -> None:
        self.error = ""
        used = request.appointment_no or request.card_number or request.phone or ""
        self.used_masked = "*" * max(0, min(len(used), 8) - 4) + used[-4:]  # on slips: never the whole number
        self.kiosk.run(self, lambda: self.kiosk.client.identify(request), self._identified)

    def _identified(self, patient, error) -> None:
        if error is not None:
            if isinstance(error, NotFoundError):
                self.error = self.tr("We could not find you. Please check and try again, or ask at the desk.")
                self.last4 = ""
            elif isinstance(error, ServerUnavailableError):
                self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                     where=self.tr.pick(self.kiosk.settings.directions))
            elif isinstance(error, (RequestRejectedError, ClinicflowError)):
                self.error = self.tr("We could not find you. Please check and try again, or ask at the desk.")
            else:
                raise error
            return
        self.kiosk.set_patient(patient)
        then = self.then
        if patient.appointment_no and then == "appointments":
            self.kiosk.appointments.preselect = patient.appointment_no
        self.phone = self.last4 = ""
        self.kiosk.go(then)

    def voice_prompt(self) -> str:
        if self.stage == "choose":  # by ear the card is the way: the phone number is the option to step to
            return self.tr("Insert your ID card or insurance card, or scan your appointment code.")
        return self.prompt

    def voice_options(self) -> list[VoiceOption]:
        if self.stage == "choose":
            return [(self.tr("Use my phone number"), self.use_phone)]
        return []

    def reset(self) -> None:
        super().reset()
        self.phone = self.last4 = self.used_masked = ""
        self.stage = "choose"
        self.then = "appointments"
