"""Render call-screen layouts in a real Kivy window, check every text fits, save screenshots.

Run in its own process (Kivy's Window is one per process), under Xvfb or on a real display:

    python -m display.driver --out DIR [--case door:zh,en:1920x1080 ...]

Writes ``DIR/<layout>-<langs>-<WxH>.png`` and ``DIR/report.json``: per case the texts shown,
labels whose text does not fit, labels outside the window, texts drawn outside their room's
tile, the smallest font drawn against the legible minimum for the window, and each text's font size. Sample data comes
from ``display.samples`` (the demo hospital; ``board20``: a hall board of 20 rooms with long
department names and configured short names), fed straight into the view-model: no broker needed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

DEFAULT_CASES = [
    f"{layout}:{langs}:{size}"
    for layout in ("door", "hall")
    for langs in ("zh,en", "en")
    for size in ("1920x1080", "800x480")
] + ["door:zh:480x800", "hall:en,zh:480x800", "board20:zh,en:1920x1080", "board20:zh,en:800x480",
       "door-empty:zh,en:1920x1080"]


def sample_view_model(layout: str, languages: list[str]):  # -> CallScreenViewModel
    from display import samples
    from display.viewmodel import CallScreenViewModel

    if layout == "board20":
        states, short = samples.board(20)
        vm = CallScreenViewModel(layout="hall", rooms=[s.room for s in states], languages=languages,
                                 short_names=short)
        for state in states:
            vm.show_state(state)
        for state in states[:8]:
            if state.current is not None:
                event = samples.call_event(state.room, state.seq, state.current.ticket)
                vm.show_call(event.model_copy(update={"room_name": state.room_name, "room_where": state.room_where}))
    elif layout == "door-empty":
        vm = CallScreenViewModel(layout="door", rooms=["r1"], languages=languages)
        vm.show_state(samples.room_state("r1", 1, None, waiting=0))
    elif layout == "door":
        vm = CallScreenViewModel(layout="door", rooms=["r1"], languages=languages)
        vm.show_state(samples.room_state("r1", 12, "A012", name="张三丰", next_tickets=("A013", "A014", "A015"), waiting=7))
        vm.show_call(samples.call_event("r1", 12, "A012"))
    else:
        vm = CallScreenViewModel(layout="hall", rooms=["r1", "r2", "r3", "r4", "r9"], languages=languages)
        vm.show_state(samples.room_state("r1", 5, "A012", name="张三丰", next_tickets=("A013",)))
        vm.show_state(samples.room_state("r2", 3, "A010", name="John Smith"))
        vm.show_state(samples.room_state("r3", 8, "B004", status="paused"))
        vm.show_state(samples.room_state("r4", 2, "C021", name="李小龙"))
        vm.show_state(samples.room_state("r9", 1, None, status="closed"))
        for room, seq, ticket, kind in [("r2", 3, "A010", "call"), ("r3", 8, "B004", "call"), ("r4", 2, "C021", "call"),
                                        ("r1", 5, "A012", "call"), ("r1", 6, "A012", "recall")]:
            vm.show_call(samples.call_event(room, seq, ticket, kind=kind))
        vm.set_server_online(False)
    vm.show_notice(samples.notice())
    vm.tick(datetime.now().astimezone().replace(hour=9, minute=41))
    return vm


def _parents(widget):  # type: ignore[no-untyped-def]
    while widget.parent is not None and widget.parent is not widget:
        widget = widget.parent
        yield widget


def _drawn_inside(label, box) -> bool:  # type: ignore[no-untyped-def]
    """Whether the label's drawn text (its texture, centred on the label) lies inside ``box`` (window coords)."""
    tw, th = label.texture_size
    cx, cy = label.to_window(label.center_x, label.center_y)
    bx, by = box.to_window(box.x, box.y)
    return (cx - tw / 2 >= bx - 1 and cx + tw / 2 <= bx + box.width + 1
            and cy - th / 2 >= by - 1 and cy + th / 2 <= by + box.height + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--case", action="append", help="layout:languages:WxH (repeatable)")
    args = parser.parse_args(argv)
    cases = args.case or DEFAULT_CASES
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    first_w, first_h = (int(v) for v in cases[0].split(":")[2].split("x"))

    from kivy.config import Config

    Config.set("graphics", "width", str(first_w))
    Config.set("graphics", "height", str(first_h))
    Config.set("graphics", "resizable", "1")
    Config.set("kivy", "exit_on_escape", "0")

    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.floatlayout import FloatLayout

    from display.views import labels_in, make_view
    from display.widgets import FitLabel, RoomTile, legible_min

    report: dict[str, object] = {"cases": [], "started": time.time()}

    class DriverApp(App):
        def build(self) -> FloatLayout:
            self.root_box = FloatLayout()
            self.index = 0
            Clock.schedule_once(self.next_case, 0.2)
            return self.root_box

        def next_case(self, _dt: float) -> None:
            if self.index >= len(cases):
                (args.out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
                self.stop()
                return
            layout, langs, size = cases[self.index].split(":")
            w, h = (int(v) for v in size.split("x"))
            Window.size = (w, h)
            self.root_box.clear_widgets()
            self.vm = sample_view_model(layout, langs.split(","))
            self.view = make_view(self.vm)
            self.root_box.add_widget(self.view)
            self.case = (layout, langs, size)
            # Several frames: layout, then FitLabel's font fitting, then the marquee's layout.
            Clock.schedule_once(self.check_case, 0.6)

        def check_case(self, _dt: float) -> None:
            layout, langs, size = self.case
            name = f"{layout}-{langs.replace(',', '+')}-{size}"
            labels = [lb for lb in labels_in(self.view) if lb.text and lb.opacity > 0]
            win_w, win_h = Window.size
            unfit, outside, outside_tile = [], [], []
            for lb in labels:
                if isinstance(lb, FitLabel):
                    lb.texture_update()
                    if not lb.fits():
                        unfit.append({"text": lb.text, "texture": list(lb.texture_size), "size": list(lb.size)})
                    x, y = lb.to_window(lb.x, lb.y)
                    if x < -1 or y < -1 or x + lb.width > win_w + 1 or y + lb.height > win_h + 1:
                        outside.append({"text": lb.text, "pos": [x, y], "size": list(lb.size)})
                    tile = next((p for p in _parents(lb) if isinstance(p, RoomTile)), None)
                    if tile is not None and not _drawn_inside(lb, tile):
                        outside_tile.append({"text": lb.text, "tile": tile.title})
            shot = Window.screenshot(name=str(args.out / f"{name}.png"))
            final = args.out / f"{name}.png"
            if shot and Path(shot).exists():
                Path(shot).replace(final)
            report["cases"].append({
                "name": name, "layout": layout, "languages": langs.split(","), "size": [win_w, win_h],
                "requested": size, "texts": [lb.text for lb in labels], "unfit": unfit, "outside": outside,
                "outside_tile": outside_tile, "legible_min": legible_min(min(win_w, win_h)),
                "screenshot": str(final), "min_font": min((lb.font_size for lb in labels if isinstance(lb, FitLabel)), default=0),
                "fonts": {lb.text: lb.font_size for lb in labels if isinstance(lb, FitLabel)},
                "smallest": sorted(({"text": lb.text, "font": lb.font_size} for lb in labels
                                    if isinstance(lb, FitLabel)), key=lambda e: e["font"])[:3],
            })
            self.index += 1
            Clock.schedule_once(self.next_case, 0)

    DriverApp().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
