"""Kivy views of a call screen: ``DoorView`` and ``HallView`` over ``CallScreenViewModel`` (kv in call_screen.kv)."""
from __future__ import annotations

import math
from pathlib import Path

from kivy.core.text import DEFAULT_FONT, LabelBase
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from display import widgets
from display.strings import label
from display.viewmodel import HISTORY_LENGTH, CallScreenViewModel

KV = Path(__file__).with_name("call_screen.kv")
_loaded = False


def load_kv(font: str = widgets.CJK_FONT) -> None:
    """Register the CJK font as Kivy's default (Roboto draws boxes for Chinese) and load the kv once."""
    global _loaded
    if _loaded:
        return
    if Path(font).exists():
        LabelBase.register(DEFAULT_FONT, font)
    for cls in (widgets.Panel, widgets.FitLabel, widgets.Marquee, widgets.RoomTile, widgets.HistoryRow):
        Factory.register(cls.__name__, cls=cls)
    Builder.load_file(str(KV))
    _loaded = True


class DoorView(BoxLayout):
    """Door screen: one room's current number, very large, and who is next."""

    vm = ObjectProperty(None, allownone=True, rebind=True)


class HallView(BoxLayout):
    """Hall board: a grid of rooms and the latest calls."""

    vm = ObjectProperty(None, allownone=True, rebind=True)
    grid_cols = NumericProperty(2)
    board_title = StringProperty("")
    board_subtitle = StringProperty("")

    def on_vm(self, _: Widget, vm: CallScreenViewModel | None) -> None:
        if vm is None:
            return
        vm.bind(tiles=self._update_tiles, history=self._update_history)
        self.board_title = label(vm.primary, "board")
        self.board_subtitle = label(vm.secondary, "board") if vm.secondary else ""
        self._update_tiles(vm, vm.tiles)
        self._update_history(vm, vm.history)

    def on_size(self, *_: object) -> None:
        if self.vm is not None:
            self._update_tiles(self.vm, self.vm.tiles)

    def _update_tiles(self, _: object, tiles: list[dict[str, object]]) -> None:
        grid = self.ids.grid
        self.grid_cols = best_columns(len(tiles), self.width, self.height)
        while len(grid.children) > len(tiles):
            grid.remove_widget(grid.children[0])
        while len(grid.children) < len(tiles):
            grid.add_widget(Factory.RoomTile())
        for widget, tile in zip(reversed(grid.children), tiles):
            for key in ("title", "subtitle", "ticket", "name", "status", "status_text", "highlight"):
                setattr(widget, key, tile[key])

    def _update_history(self, _: object, history: list[dict[str, object]]) -> None:
        box = self.ids.history
        box.clear_widgets()
        for entry in history:
            box.add_widget(Factory.HistoryRow(ticket=str(entry["ticket"]), room_title=str(entry["room_title"]),
                                              time_text=str(entry["time_text"]), kind_text=str(entry["kind_text"]),
                                              recall=bool(entry["recall"])))
        for _ in range(HISTORY_LENGTH - len(history)):  # keep rows the same height as the list fills
            box.add_widget(Widget())


def best_columns(count: int, width: float, height: float) -> int:
    """Columns for ``count`` room tiles that make the tiles largest, preferring slightly wide tiles."""
    landscape = width >= height
    grid_w = width * (0.66 if landscape else 1.0)
    grid_h = height * 0.78 * (1.0 if landscape else 0.6)
    best, best_score = 1, 0.0
    for cols in range(1, max(count, 1) + 1):
        rows = math.ceil(max(count, 1) / cols)
        score = min(grid_w / cols / 1.4, grid_h / rows)
        if score > best_score:
            best, best_score = cols, score
    return best


def make_view(vm: CallScreenViewModel) -> Widget:
    """The view for the view-model's layout."""
    load_kv()
    view = DoorView() if vm.layout == "door" else HallView()
    view.vm = vm
    return view


def labels_in(widget: Widget) -> list[Label]:
    """Every label under ``widget`` (for fit checks and tests)."""
    return [w for w in widget.walk(restrict=True) if isinstance(w, Label)]
