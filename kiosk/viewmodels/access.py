"""The 65+ offer: a step of its own after identification, "Larger text and spoken guidance?".

It is shown once, before the flow the patient chose (never on top of another screen, so never
over the Emergency message), and it is spoken even with voice mode off: the people it is for
may not read the small text that asks. Yes turns on large text and voice; No goes on unchanged.
"""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.viewmodels.base import FlowViewModel, VoiceOption


class AccessOfferViewModel(FlowViewModel):
    then = StringProperty("appointments")  # the flow the patient chose; shown after the answer

    def enter(self) -> None:
        self.prompt = self.tr("Would you like larger text and spoken guidance? Yes or No.")

    def accept(self) -> None:
        self.kiosk.accept_accessibility()

    def decline(self) -> None:
        self.kiosk.decline_accessibility()

    def voice_options(self) -> list[VoiceOption]:
        return [(self.tr("Yes, please"), self.accept), (self.tr("No, thank you"), self.decline)]

    def reset(self) -> None:
        super().reset()
        self.then = "appointments"
