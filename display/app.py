"""``CallScreenApp``: the Kivy app around a ``CallScreen`` (thin: build the view, tick, screenshot)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.widget import Widget

from display.runtime import CallScreen
from display.views import make_view

log = logging.getLogger(__name__)


def kivy_ui_call(fn) -> None:  # type: ignore[no-untyped-def]
    """Run ``fn`` on Kivy's main thread at the next frame (safe to call from any thread)."""
    Clock.schedule_once(lambda _dt: fn(), 0)


class CallScreenApp(App):
    """Shows ``screen.view_model``; starts and stops the screen with the app.

    ``screenshot``: save a PNG ``screenshot_after`` seconds after start, then quit (headless runs).
    """

    title = "clinicflow call screen"

    def __init__(self, screen: CallScreen, *, screenshot: Path | None = None, screenshot_after: float = 3.0,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.screen = screen
        self.screenshot_path = screenshot
        self.screenshot_after = screenshot_after
        self.first_frame_at: float | None = None

    def build(self) -> Widget:
        return make_view(self.screen.view_model)

    def on_start(self) -> None:
        Clock.schedule_once(self._first_frame, 0)  # runs after the first frame was drawn
        self.screen.start()
        self.screen.tick()
        Clock.schedule_interval(lambda _dt: self._tick(), 1.0)
        if self.screenshot_path is not None:
            Clock.schedule_once(lambda _dt: self._screenshot(), self.screenshot_after)

    def _first_frame(self, _dt: float) -> None:
        self.first_frame_at = time.time()
        log.info("first frame at epoch %.3f", self.first_frame_at)  # bench/display_latency.py reads this

    def _tick(self) -> None:
        self.screen.beat()  # we are on Kivy's main thread: a stalled UI stops these beats

    def _screenshot(self) -> None:
        assert self.screenshot_path is not None
        target = Path(self.screenshot_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = Window.screenshot(name=str(target))  # Kivy appends a counter: rename to what was asked
        if written and Path(written).exists():
            Path(written).replace(target)
        log.warning("call screen screenshot written to %s", target)
        self.stop()

    def on_stop(self) -> None:
        self.screen.stop()
