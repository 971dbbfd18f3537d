"""The kiosk's physical panel: a help button, a status LED, the raised voice key and the next/select/back keys.

    panel = KioskPanel(pins=KioskPanelPins(), pin_factory=None)
    panel.when_key = lambda key: ...        # key in KEYS: "help", "voice", "next", "select", "back",
                                            # and "headphones_in" / "headphones_out" from the jack switch
    panel.show_status("ok")                 # ok (steady), busy (slow blink), fault (fast blink), off

Like an accessible cash machine, the keys let a person who cannot read the screen start voice
guidance without sight (the voice key is raised and marked in braille; any voice key starts
it too), move through the options (next), choose (select) and go back. A headphone jack with a
detect switch (``headphones`` pin, optional) reports plugging in and out. Handlers are
called from the button threads: a Kivy app bridges them with ``Clock.schedule_once``.
``FakeKioskPanel`` has the same interface without GPIO: ``press("next")`` calls the handler.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from hardware.debounce import DebouncedButton

log = logging.getLogger(__name__)

KEYS = ("help", "voice", "next", "select", "back")
JACK_EVENTS = ("headphones_in", "headphones_out")
LedState = Literal["ok", "busy", "fault", "off"]


@dataclass(frozen=True)
class KioskPanelPins:
    """BCM pin numbers of the kiosk panel."""

    help: int | str = 5
    voice: int | str = 12
    next: int | str = 6
    select: int | str = 13
    back: int | str = 19
    status_led: int | str = 26
    headphones: int | str | None = None  # the jack's detect switch (closed while a plug is in); None: none


@runtime_checkable
class Panel(Protocol):
    """Port: the kiosk's keys and status light."""

    when_key: Callable[[str], None] | None

    def show_status(self, state: LedState) -> None: ...

    def close(self) -> None: ...


class KioskPanel:
    """``Panel`` on GPIO through gpiozero (keyword-only ``pin_factory``; tests use ``MockFactory``)."""

    def __init__(self, *, pins: KioskPanelPins = KioskPanelPins(), pin_factory: Any = None,
                 settle_s: float = 0.03) -> None:
        from gpiozero import LED

        self.when_key: Callable[[str], None] | None = None
        self.status: LedState = "off"
        self.buttons: dict[str, DebouncedButton] = {}
        try:
            for key in KEYS:
                button = DebouncedButton(getattr(pins, key), settle_s=settle_s, pin_factory=pin_factory, name=key)
                button.when_pressed = (lambda k=key: self._key(k))
                self.buttons[key] = button
            self.led = LED(pins.status_led, pin_factory=pin_factory)
            if pins.headphones is not None:
                jack = DebouncedButton(pins.headphones, settle_s=settle_s, pin_factory=pin_factory, name="headphones")
                jack.when_pressed = lambda: self._key("headphones_in")
                jack.when_released = lambda: self._key("headphones_out")
                self.buttons["headphones"] = jack
        except Exception:
            self.close()
            raise

    def _key(self, key: str) -> None:
        handler = self.when_key
        if handler is not None:
            handler(key)

    def show_status(self, state: LedState) -> None:
        if state == "ok":
            self.led.on()
        elif state == "busy":
            self.led.blink(on_time=0.5, off_time=0.5, background=True)
        elif state == "fault":
            self.led.blink(on_time=0.1, off_time=0.1, background=True)
        elif state == "off":
            self.led.off()
        else:
            raise ValueError(f"unknown status {state!r}; use ok, busy, fault or off")
        self.status = state

    def close(self) -> None:
        for button in self.buttons.values():
            button.close()
        led = getattr(self, "led", None)
        if led is not None:
            led.close()


class FakeKioskPanel:
    """A ``Panel`` without GPIO: ``press(key)`` is a debounced press of that key; ``status`` is the LED."""

    def __init__(self) -> None:
        self.when_key: Callable[[str], None] | None = None
        self.status: LedState = "off"
        self.pressed: list[str] = []

    def press(self, key: str) -> None:
        if key not in KEYS + JACK_EVENTS:
            raise ValueError(f"unknown key {key!r}; use {', '.join(KEYS + JACK_EVENTS)}")
        self.pressed.append(key)
        if self.when_key is not None:
            self.when_key(key)

    def show_status(self, state: LedState) -> None:
        if state not in ("ok", "busy", "fault", "off"):
            raise ValueError(f"unknown status {state!r}; use ok, busy, fault or off")
        self.status = state

    def close(self) -> None:
        pass
