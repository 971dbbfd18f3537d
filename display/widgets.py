"""Small widgets the call-screen kv files use. Presentation only: no state, no MQTT."""
from __future__ import annotations

import re

from kivy.clock import Clock
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.stencilview import StencilView

CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


LEGIBLE_AT_1080 = 24
"""Smallest font (px) any text may have on a 1080p screen (landscape or portrait); scaled with
the window's shorter side."""
LEGIBLE_FLOOR = 14
"""...but never below this: on a 480-line panel 14 px is the least read from a waiting-room chair."""


def legible_min(short_side: float) -> int:
    """The smallest font size a call screen may draw in a window whose shorter side is ``short_side`` px."""
    return max(LEGIBLE_FLOOR, round(LEGIBLE_AT_1080 * short_side / 1080))


_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
NBSP = "\u00a0"


def cjk_breaks(text: str) -> str:
    """Chinese text that wraps after its commas, not at the spaces around a figure.

    Kivy breaks lines only at spaces, so "门诊楼 2 楼，出电梯左转" wraps as "门诊楼 2" / "楼，出电梯左转".
    Here the spaces inside a phrase do not break (no-break spaces) and each "，" is followed by one that
    does: "门诊楼 2 楼，" / "出电梯左转". " · " between parts still breaks. Text without CJK is unchanged.
    """
    if not _CJK.search(text):
        return text
    return " · ".join(part.replace(" ", NBSP).replace("，", "， ") for part in text.split(" · "))


class FitLabel(Label):
    """A label whose font shrinks (never grows past ``max_font_size``) until its text fits the widget.

    Room names and notices differ in length per language and per hospital. The font never goes
    below ``min_font_size`` (0: ``legible_min`` of the window). With ``wrap`` the text may break
    into lines to stay larger. If it cannot fit at the minimum, ``alt_text`` (a configured short
    name) is tried; failing that, one line at the minimum ending in an ellipsis: a label never
    draws outside its box, whatever a hospital names its rooms.
    """

    max_font_size = NumericProperty(40)
    min_font_size = NumericProperty(0)
    wrap = BooleanProperty(False)
    alt_text = StringProperty("")

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("halign", "center")  # wrapped lines centred like a single line
        kwargs.setdefault("shorten_from", "right")  # "消化内科 11…": the start of a name says most
        super().__init__(**kwargs)
        self._full = self.text
        self._shown = self.text
        self._fit_trigger = Clock.create_trigger(self._fit, 0)
        self.bind(size=self._fit_trigger, text=self._fit_trigger, max_font_size=self._fit_trigger,
                  alt_text=self._fit_trigger, wrap=self._fit_trigger, min_font_size=self._fit_trigger)
        self._fit_trigger()

    @property
    def smallest(self) -> int:
        from kivy.core.window import Window

        return int(self.min_font_size or legible_min(min(Window.size)))

    def fits(self) -> bool:
        tw, th = self.texture_size
        return tw <= self.width + 1 and th <= self.height + 1

    def _fit(self, *_: object) -> None:
        if self.width <= 1 or self.height <= 1:
            return
        if self.text != self._shown:  # set from outside (a kv binding): that is the full text now
            self._full = self.text
        options = [self._full]
        if self.alt_text and self.alt_text != self._full:
            options.append(self.alt_text)
        smallest = self.smallest
        for option in options:
            size = self._largest_fitting(option, smallest)
            if size is not None:
                self._show(option, size, shorten=False)
                return
        self._show(options[-1], smallest, shorten=True)

    def _largest_fitting(self, text: str, smallest: int) -> int | None:
        """The largest font size in [smallest, max_font_size] at which ``text`` fits, or None."""
        size = max(int(self.max_font_size), smallest)
        for _ in range(14):  # converges in 2-4 steps; bounded so a zero-size widget cannot loop
            self._show(text, size, shorten=False)
            tw, th = self.texture_size
            if not text or (tw <= self.width and th <= self.height):
                return size
            if size <= smallest:
                return None
            scale = min(self.width / max(tw, 1), self.height / max(th, 1))
            new = int(size * (scale ** 0.5 if self.wrap else scale) * 0.98)
            size = max(smallest, min(new, size - 1))
        return None

    def _show(self, text: str, size: int, *, shorten: bool) -> None:
        self._shown = text
        self.text = text
        self.font_size = size
        self.shorten = shorten
        # A width to wrap in (or to shorten to); none otherwise, so the texture shows the text's own width.
        self.text_size = (self.width, None) if (self.wrap or shorten) else (None, None)
        self.texture_update()


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
    title_short = StringProperty("")
    subtitle = StringProperty("")
    subtitle_short = StringProperty("")
    ticket = StringProperty("")
    name = StringProperty("")
    status = StringProperty("")
    status_text = StringProperty("")
    highlight = BooleanProperty(False)


class HistoryRow(BoxLayout):
    """One line of the hall board's latest calls."""

    ticket = StringProperty("")
    room_title = StringProperty("")
    room_short = StringProperty("")
    time_text = StringProperty("")
    kind_text = StringProperty("")
    recall = BooleanProperty(False)


class Panel(BoxLayout):
    """A box with a solid background colour (``bg``), drawn in kv."""

    bg = ListProperty([0.08, 0.16, 0.30, 1])
