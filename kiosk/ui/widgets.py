"""Widgets of the kiosk screens: wrapped labels and buttons that grow with their text, keypads, QR codes.

Every text widget wraps to its width and takes the height its text needs, so a larger font
makes a screen longer (it scrolls) but never cuts text off; ``find_clipped`` checks that.
"""
from __future__ import annotations

import io
from typing import Callable, Iterable

from kivy.app import App
from kivy.core.image import Image as CoreImage
from kivy.graphics import Color, Line, Rectangle
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.widget import Widget

BASE_FONT = 24  # sp at normal size
BASE_TARGET = 72  # touch target height (px) at normal size


def app():
    return App.get_running_app()


class TextLabel(Label):
    """A label that wraps at its width and is as tall as its text."""

    def __init__(self, text: str = "", *, size: float = 1.0, bold: bool = False, color=None, halign: str = "left",
                 **kw) -> None:
        a = app()
        super().__init__(text=text, font_size=BASE_FONT * size * a.scale, bold=bold,
                         color=color or a.palette.fg, halign=halign, valign="top", size_hint_y=None, **kw)
        self.bind(width=self._wrap, texture_size=self._fit)

    def _wrap(self, *_):
        self.text_size = (self.width, None)

    def _fit(self, *_):
        self.height = self.texture_size[1]


class BigButton(Button):
    """A touch target at least ``BASE_TARGET * scale`` tall that grows to fit its wrapped text."""

    def __init__(self, text: str, on_tap: Callable[[], None] | None = None, *, kind: str = "primary",
                 size: float = 1.0, enabled: bool = True, focused: bool = False, **kw) -> None:
        a = app()
        p = a.palette
        bg, fg = {"primary": (p.primary, p.on_primary), "secondary": (p.secondary, p.on_secondary),
                  "danger": (p.danger, p.on_danger)}[kind]
        if not enabled:
            bg = (bg[0], bg[1], bg[2], 0.35)
        self._min_h = BASE_TARGET * a.scale
        super().__init__(text=text, font_size=BASE_FONT * size * a.scale, background_normal="", background_down="",
                         background_color=bg, color=fg, halign="center", valign="middle", size_hint_y=None,
                         height=self._min_h, disabled=not enabled, disabled_color=fg, **kw)
        self.padding = (16 * a.scale, 10 * a.scale)
        self.bind(width=self._wrap, texture_size=self._fit)
        self._on_tap = on_tap
        if focused:  # voice mode: the option the next/select keys are on
            with self.canvas.after:
                Color(*p.focus)
                self._ring = Line(rectangle=(self.x, self.y, self.width, self.height), width=4)
            self.bind(pos=self._ring_update, size=self._ring_update)

    def _ring_update(self, *_):
        self._ring.rectangle = (self.x + 2, self.y + 2, self.width - 4, self.height - 4)

    def _wrap(self, *_):
        self.text_size = (max(1, self.width - 2 * self.padding[0]), None)

    def _fit(self, *_):
        self.height = max(self._min_h, self.texture_size[1] + 2 * self.padding[1])

    def on_release(self):
        if self._on_tap is not None:
            self._on_tap()


class Row(BoxLayout):
    """Widgets side by side with equal widths; as tall as the tallest."""

    def __init__(self, children: Iterable[Widget], spacing: float = 12, **kw) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, spacing=spacing * app().scale, **kw)
        for child in children:
            self.add_widget(child)
            child.bind(height=self._fit)
        self._fit()

    def _fit(self, *_):
        self.height = max((c.height for c in self.children), default=0)


class Grid(GridLayout):
    """Equal cells in ``cols`` columns; rows as tall as their tallest cell."""

    def __init__(self, children: Iterable[Widget], cols: int, spacing: float = 12, **kw) -> None:
        super().__init__(cols=cols, size_hint_y=None, spacing=spacing * app().scale, **kw)
        self.bind(minimum_height=self.setter("height"))
        for child in children:
            self.add_widget(child)


def keypad(keys: list[str], labels: dict[str, str], on_key: Callable[[str], None], cols: int = 3) -> Grid:
    """A large number pad; ``labels`` gives the text of special keys ("del", "ok", ...)."""
    buttons = []
    for key in keys:
        kind = "primary" if key == "ok" else ("secondary" if key in ("del", "clear") else "secondary")
        buttons.append(BigButton(labels.get(key, key), lambda k=key: on_key(k), kind=kind, size=1.3))
    return Grid(buttons, cols=cols)


class QrCode(Image):
    """A QR code of ``data`` drawn with the qrcode library (black on white, with a quiet zone)."""

    def __init__(self, data: str, *, side: float = 240, **kw) -> None:
        import qrcode

        img = qrcode.make(data, box_size=8, border=3)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        buf.seek(0)
        texture = CoreImage(buf, ext="png").texture
        texture.mag_filter = "nearest"
        super().__init__(texture=texture, size_hint=(None, None), size=(side, side), fit_mode="contain", **kw)
        with self.canvas.before:
            Color(1, 1, 1, 1)
            self._bg = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=lambda *_: setattr(self._bg, "pos", self.pos), size=lambda *_: setattr(self._bg, "size", self.size))


class Centered(BoxLayout):
    """One fixed-size widget centred on a full-width row."""

    def __init__(self, child: Widget, **kw) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, height=child.height, **kw)
        self.add_widget(Widget())
        self.add_widget(child)
        self.add_widget(Widget())


def find_clipped(root: Widget, window_size: tuple[int, int], *, slack: float = 2.0) -> list[dict]:
    """Text that does not fit: a label/button whose rendered text is taller or wider than the widget,
    or a widget that sticks out of the window sideways. Returns one dict per problem."""
    from kivy.uix.scrollview import ScrollView

    problems = []

    def visit(w: Widget, in_scroll: bool) -> None:
        if w.opacity == 0:  # hidden (e.g. the bottom bar on Home): not on the glass
            return
        if isinstance(w, Label) and w.text and w.opacity > 0:
            tw, th = w.texture_size
            if th > w.height + slack or tw > w.width + slack:
                problems.append({"text": w.text[:60], "widget": type(w).__name__, "texture": [tw, th],
                                 "size": [w.width, w.height], "why": "text larger than its box"})
            x0, _y0 = w.to_window(w.x, w.y)
            if x0 < -slack or x0 + w.width > window_size[0] + slack:
                problems.append({"text": w.text[:60], "widget": type(w).__name__, "why": "outside the window sideways",
                                 "x": [x0, x0 + w.width]})
            if not in_scroll:
                _x, y0 = w.to_window(w.x, w.y)
                if y0 < -slack or y0 + w.height > window_size[1] + slack:
                    problems.append({"text": w.text[:60], "widget": type(w).__name__,
                                     "why": "outside the window vertically (not scrollable)", "y": [y0, y0 + w.height]})
        for child in w.children:
            visit(child, in_scroll or isinstance(w, ScrollView))

    visit(root, False)
    return problems
