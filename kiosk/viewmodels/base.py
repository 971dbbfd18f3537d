"""Base of every flow's view-model: a prompt, an error line, options for voice mode, a reset."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, StringProperty

if TYPE_CHECKING:
    from kiosk.viewmodels.kiosk import KioskViewModel

VoiceOption = tuple[str, Callable[[], None]]


class FlowViewModel(EventDispatcher):
    """One flow's state, without widgets. ``kiosk`` is the root view-model (language, client, devices)."""

    prompt = StringProperty("")  # what the screen asks, in the current language; read aloud in voice mode
    error = StringProperty("")  # a plain sentence when something went wrong; "" otherwise
    busy = BooleanProperty(False)

    def __init__(self, kiosk: "KioskViewModel", **kw) -> None:
        super().__init__(**kw)
        self.kiosk = kiosk

    @property
    def tr(self):
        return self.kiosk.tr

    def enter(self) -> None:
        """Called when the flow's screen is shown."""

    def refresh_texts(self) -> None:
        """Re-translate texts after a language change (default: enter again)."""
        self.enter()

    def voice_prompt(self) -> str:
        """What voice mode says for this screen: the prompt, unless a flow puts its choice first."""
        return self.prompt

    def voice_options(self) -> list[VoiceOption]:
        """The choices a voice-mode user steps through with next/select (label, action)."""
        return []

    def reset(self) -> None:
        """Forget all patient data (idle timeout, end of session)."""
        self.prompt = ""
        self.error = ""
        self.busy = False
