"""Help: call a member of staff (an alert on the staff's page) and directions to the staffed desk."""
from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty

from kiosk.server_client import new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.api_patient import HelpRequest


class HelpViewModel(FlowViewModel):
    called = BooleanProperty(False)
    directions = StringProperty("")

    def enter(self) -> None:
        self.directions = self.tr.pick(self.kiosk.settings.directions)
        if self.called:
            self.prompt = self.tr("Staff have been called and are on their way. Please wait here.")
        else:
            self.prompt = self.tr("Press Call staff and someone will come to help you. Or go to: {where}",
                                  where=self.directions)

    def call_staff(self, reason: str = "help", department: str | None = None) -> None:
        self.kiosk.touch()
        self.raise_alert(reason, department)

    def raise_alert(self, reason: str, department: str | None = None, message: str = "") -> None:
        """Send a help request (also used by the symptom guide's red flags and payment faults);
        ``message`` tells the staff more (a red flag's rule, action and triage reference)."""
        request = HelpRequest(device=self.kiosk.settings.device_id, reason=reason, department=department,
                              message=message)
        key = new_key()
        client = self.kiosk.client

        def send() -> Any:
            return client.call_staff(request, key=key)

        self.kiosk.run(self, send, self._sent)

    def _sent(self, _result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.called = False
            self.error = self.tr("We could not reach the staff from here. Please go to: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
            return
        self.called = True
        self.error = ""
        if self.kiosk.screen == "help":
            self.enter()

    def voice_options(self) -> list[VoiceOption]:
        return [(self.tr("Call staff"), self.call_staff)]

    def reset(self) -> None:
        super().reset()
        self.called = False
