"""Widgets of the kiosk screens: wrapped labels and buttons that grow with their text, keypads, QR codes.

Every text widget wraps to its width and takes the height its text needs; screens never
scroll, so each screen is laid out (columns, paged lists) to fit its whole decision on the
glass. ``measure`` checks a drawn window: nothing outside it, no clipped text, touch targets
and fonts at least the mode's minimum.
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

from kiosk.ui.theme import BODY_FONT as BASE_FONT  # px at normal size; every text is at least this


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
    """A touch target at least ``app.target`` tall that grows to fit its wrapped text."""

    def __init__(self, text: str, on_tap: Callable[[], None] | None = None, *, kind: str = "primary",
                 size: float = 1.0, enabled: bool = True, focused: bool = False, **kw) -> None:
        a = app()
        p = a.palette
        bg, fg = {"primary": (p.primary, p.on_primary), "secondary": (p.secondary, p.on_secondary),
                  "danger": (p.danger, p.on_danger)}[kind]
        if not enabled:
            bg = (bg[0], bg[1], bg[2], 0.35)
        self._min_h = a.target
        super().__init__(text=text, font_size=BASE_FONT * size * a.scale, background_normal="", background_down="",
                         background_color=bg, color=fg, halign="center", valign="middle", size_hint_y=None,
                         height=self._min_h, disabled=not enabled, disabled_color=fg, **kw)
        self.padding = (10 * a.scale, 8 * a.scale)
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

    def __init__(self, children: Iterable[Widget], cols: int, spacing: float = 10, **kw) -> None:
        super().__init__(cols=cols, size_hint_y=None, spacing=spacing, **kw)
        self.bind(minimum_height=self.setter("height"))
        for child in children:
            self.add_widget(child)


def keypad(keys: list[str], labels: dict[str, str], on_key: Callable[[str], None], cols: int = 3) -> Grid:
    """A large number pad; ``labels`` gives the text of special keys ("del", "ok", ...)."""
    buttons = []
    for key in keys:
        kind = "primary" if key == "ok" else "secondary"
        buttons.append(BigButton(labels.get(key, key), lambda k=key: on_key(k), kind=kind,
                                 size=1.0 if key in labels else 1.3))
    return Grid(buttons, cols=cols)


class Column(BoxLayout):
    """Widgets stacked top to bottom, as tall as they are."""

    def __init__(self, children: Iterable[Widget], spacing: float = 10, **kw) -> None:
        super().__init__(orientation="vertical", size_hint_y=None, spacing=spacing * app().scale, **kw)
        self.bind(minimum_height=self.setter("height"))
        for child in children:
            self.add_widget(child)


class Columns(BoxLayout):
    """Two columns side by side (e.g. text left, keypad right), as tall as the taller; ``ratio`` is the
    left column's share of the width."""

    def __init__(self, left: Iterable[Widget], right: Iterable[Widget], *, ratio: float = 0.5,
                 spacing: float = 24, **kw) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, spacing=spacing * app().scale, **kw)
        # Both columns hang from the top of the row (a horizontal BoxLayout would put them at its bottom).
        self.first = Column(left, size_hint_x=ratio, pos_hint={"top": 1})
        self.second = Column(right, size_hint_x=1 - ratio, pos_hint={"top": 1})
        for col in (self.first, self.second):
            self.add_widget(col)
            col.bind(height=self._fit)
        self._fit()

    def _fit(self, *_):
        self.height = max(self.first.height, self.second.height)


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


class FloorMap(Image):
    """A floor map (PNG bytes from the server) drawn as large as ``height`` allows, keeping its shape."""

    def __init__(self, png: bytes, *, height: float, **kw) -> None:
        texture = CoreImage(io.BytesIO(png), ext="png").texture
        super().__init__(texture=texture, size_hint=(1, None), height=height, fit_mode="contain", **kw)


class CardSlotHint(BoxLayout):
    """A small drawing of a card going into the reader's slot (an arrow towards it) beside ``text``."""

    def __init__(self, text: str, **kw) -> None:
        a = app()
        side = BASE_FONT * 2.2 * a.scale
        super().__init__(orientation="horizontal", size_hint_y=None, spacing=12 * a.scale, **kw)
        picture = Widget(size_hint=(None, None), size=(side, side))
        with picture.canvas:
            Color(*a.palette.primary)
            card = Rectangle()
            Color(*a.palette.fg)
            slot = Rectangle()
            arrow = Line(width=3)

        def draw(*_):
            x, y, w, h = picture.x, picture.y, picture.width, picture.height
            card.pos, card.size = (x + w * 0.25, y + h * 0.35), (w * 0.5, h * 0.6)
            slot.pos, slot.size = (x + w * 0.1, y + h * 0.12), (w * 0.8, h * 0.06)
            arrow.points = [x + w * 0.5, y + h * 0.3, x + w * 0.5, y + h * 0.2, x + w * 0.42, y + h * 0.26,
                            x + w * 0.5, y + h * 0.2, x + w * 0.58, y + h * 0.26]
        picture.bind(pos=draw, size=draw)
        label = TextLabel(text)
        self.add_widget(picture)
        self.add_widget(label)
        label.bind(height=self._fit)
        self._side = side
        self._fit()

    def _fit(self, *_):
        self.height = max(self._side, self.children[0].height)


class Centered(BoxLayout):
    """One fixed-size widget centred on a full-width row."""

    def __init__(self, child: Widget, **kw) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, height=child.height, **kw)
        self.add_widget(Widget())
        self.add_widget(child)
        self.add_widget(Widget())


def measure(root: Widget, window_size: tuple[int, int], *, target: float, min_font: float,
            content: Widget | None = None, slack: float = 1.0) -> list[dict]:
    """What a patient would notice is wrong with a drawn window, measured from the widget tree.

    One dict per problem: a visible widget (partly) outside the window, or outside ``content`` (the
    screen area between the bars) when it belongs to it; text larger than its box (clipped); a
    button smaller than ``target`` px in either direction; text smaller than ``min_font`` px.
    Hidden widgets (opacity 0, e.g. Back on Home) are not on the glass and are skipped.
    """
    problems: list[dict] = []
    win_w, win_h = window_size

    def box(w: Widget) -> tuple[float, float, float, float]:
        x0, y0 = w.to_window(w.x, w.y)
        return x0, y0, x0 + w.width, y0 + w.height

    area = box(content) if content is not None else (0, 0, win_w, win_h)
    content_uid = content.uid if content is not None else None  # ids are weak proxies: compare uids

    def problem(w: Widget, why: str, **extra) -> None:
        problems.append({"widget": type(w).__name__, "text": getattr(w, "text", "")[:60], "why": why,
                         "box": [round(v) for v in box(w)], **extra})

    def visit(w: Widget, inside_content: bool) -> None:
        if w.opacity == 0:
            return
        inside_content = inside_content or w.uid == content_uid
        x0, y0, x1, y1 = box(w)
        if w is not root and w.width > 0 and w.height > 0:
            lim = area if inside_content else (0, 0, win_w, win_h)
            if x0 < lim[0] - slack or y0 < lim[1] - slack or x1 > lim[2] + slack or y1 > lim[3] + slack:
                problem(w, "outside the screen area" if inside_content else "outside the window")
        if isinstance(w, Label) and w.text:
            tw, th = w.texture_size
            if th > w.height + slack or tw > w.width + slack:
                problem(w, "text larger than its box (clipped)", texture=[tw, th])
            if w.font_size < min_font - 0.5:
                problem(w, "text too small", font_size=w.font_size)
        if isinstance(w, Button) and not w.disabled and (w.width < target - slack or w.height < target - slack):
            problem(w, "touch target too small", size=[round(w.width), round(w.height)])
        for child in w.children:
            visit(child, inside_content)

    visit(root, False)
    return problems
