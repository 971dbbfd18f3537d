"""Kivy views of a call screen: ``DoorView`` and ``HallView`` over ``CallScreenViewModel`` (kv in call_screen.kv)."""
from __future__ import annotations

import math
from pathlib import Path

from kivy.core.text import DEFAULT_FONT, LabelBase
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
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
    show_history = BooleanProperty(True)
    """False when the rooms need the whole width to stay legible (``history_fits``)."""
    board_title = StringProperty("")
    board_subtitle = StringProperty("")

    _history_panel: Widget | None = None

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
        self._set_history(history_fits(len(tiles), self.width, self.height))
        self.grid_cols = best_columns(len(tiles), self.width, self.height, with_history=self.show_history)
        while len(grid.children) > len(tiles):
            grid.remove_widget(grid.children[0])
        while len(grid.children) < len(tiles):
            grid.add_widget(Factory.RoomTile())
        for widget, tile in zip(reversed(grid.children), tiles):
            for key in ("title", "title_short", "subtitle", "subtitle_short", "ticket", "name", "status",
                        "status_text", "highlight"):
                setattr(widget, key, tile[key])

    def _set_history(self, show: bool) -> None:
        if show == self.show_history:
            return
        self.show_history = show
        if self._history_panel is None:  # ids are weak proxies: keep the panel alive while it is out
            self._history_panel = self.ids.history_panel.__self__
        board, panel = self.ids.board, self._history_panel
        if show and panel.parent is None:
            board.add_widget(panel, index=0)
        elif not show and panel.parent is not None:
            board.remove_widget(panel)  # out of the tree: nothing in it is drawn or measured

    def _update_history(self, _: object, history: list[dict[str, object]]) -> None:
        box = self.ids.history
        box.clear_widgets()
        for entry in history:
            box.add_widget(Factory.HistoryRow(ticket=str(entry["ticket"]), room_title=str(entry["room_title"]),
                                              room_short=str(entry.get("room_short", "")),
                                              time_text=str(entry["time_text"]), kind_text=str(entry["kind_text"]),
                                              recall=bool(entry["recall"])))
        for _ in range(HISTORY_LENGTH - len(history)):  # keep rows the same height as the list fills
            box.add_widget(Widget())


def history_fits(rooms: int, width: float, height: float) -> bool:
    """Whether the latest-calls panel can share the board with ``rooms`` tiles.

    Beside it a landscape grid gets two thirds of the width; with many rooms on a small panel
    (20 rooms at 800x480) that leaves tiles too narrow for a room name at a legible size, and
    the rooms matter more: each tile shows its current number anyway.
    """
    return rooms <= 12 or min(width, height) >= 720


def best_columns(count: int, width: float, height: float, *, with_history: bool = True) -> int:
    """Columns for ``count`` room tiles that make the tiles largest, preferring slightly wide tiles."""
    landscape = width >= height
    grid_w = width * (0.66 if landscape and with_history else 1.0)
    grid_h = height * 0.78 * (0.6 if not landscape and with_history else 1.0)
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
