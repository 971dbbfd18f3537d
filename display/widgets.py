"""Small widgets the call-screen kv files use. Presentation only: no state, no MQTT."""
from __future__ import annotations

from kivy.clock import Clock
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.stencilview import StencilView

CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


class FitLabel(Label):
    """A label whose font shrinks (never grows past ``max_font_size``) until its text fits the widget.

    Room names and notices differ in length per language and per hospital; a fixed font size
    would clip "emergency room 9" on an 800x480 hall board.
    """

    max_font_size = NumericProperty(40)
    min_font_size = NumericProperty(8)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._fit_trigger = Clock.create_trigger(self._fit, 0)
        self.bind(size=self._fit_trigger, text=self._fit_trigger, max_font_size=self._fit_trigger)
        self._fit_trigger()

    def fits(self) -> bool:
        tw, th = self.texture_size
        return tw <= self.width + 1 and th <= self.height + 1

    def _fit(self, *_: object) -> None:
        if self.width <= 1 or self.height <= 1:
            return
        size = self.max_font_size
        for _ in range(12):  # converges in 2-3 steps; bounded so a zero-size widget cannot loop
            self.font_size = size
            self.texture_update()
            tw, th = self.texture_size
            if not self.text or (tw <= self.width and th <= self.height):
                return
            scale = min(self.width / max(tw, 1), self.height / max(th, 1))
            new = max(self.min_font_size, int(size * scale * 0.98))
            if new >= size:
                new = size - 1
            if new < self.min_font_size:
                return
            size = new


class Marquee(StencilView):
    """A one-line notice that scrolls right to left when it is longer than the screen is wide."""

    text = StringProperty("")
    font_size = NumericProperty(24)
    color = ListProperty([1, 1, 1, 1])
    speed = NumericProperty(120.0)  # pixels per second
    scrolling = BooleanProperty(False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.label = Label(text=self.text, font_size=self.font_size, color=self.color, size_hint=(None, None))
        self.label.bind(texture_size=self._relayout)
        self.add_widget(self.label)
        self.bind(text=self._set_text, font_size=self._set_text, pos=self._relayout, size=self._relayout)
        self._event = Clock.schedule_interval(self._step, 1 / 30.0)

    def _set_text(self, *_: object) -> None:
        self.label.text = self.text
        self.label.font_size = self.font_size
        self.label.color = self.color

    def _relayout(self, *_: object) -> None:
        self.label.size = self.label.texture_size
        self.label.center_y = self.center_y
        self.scrolling = self.label.width > self.width
        if not self.scrolling:
            self.label.center_x = self.center_x
        elif self.label.x > self.right or self.label.right < self.x:
            self.label.x = self.x + 4

    def _step(self, dt: float) -> None:
        if not self.scrolling:
            return
        self.label.x -= self.speed * dt
        if self.label.right < self.x:
            self.label.x = self.right


class RoomTile(BoxLayout):
    """One room on the hall board (values copied from the view-model's ``tiles``)."""

    title = StringProperty("")
    subtitle = StringProperty("")
    ticket = StringProperty("")
    name = StringProperty("")
    status = StringProperty("")
    status_text = StringProperty("")
    highlight = BooleanProperty(False)


class HistoryRow(BoxLayout):
    """One line of the hall board's latest calls."""

    ticket = StringProperty("")
    room_title = StringProperty("")
    time_text = StringProperty("")
    kind_text = StringProperty("")
    recall = BooleanProperty(False)


class Panel(BoxLayout):
    """A box with a solid background colour (``bg``), drawn in kv."""

    bg = ListProperty([0.08, 0.16, 0.30, 1])
