"""``KioskApp``: the Kivy application of the kiosk, a thin shell over ``KioskViewModel``.

It maps the view-model's ``screen`` to a ``ScreenManager``, the ``large_text`` mode to a font
scale and the high-contrast palette, ticks the idle timer once a second, and turns keyboard
input into scanner codes (keyboard-wedge scanners type the code and Enter) and the voice
mode's physical keys (F5 next, F6 select, F7 back, F8 voice; a gpiozero key panel calls the same
methods). A finger held anywhere on the glass for two seconds starts voice mode.
"""
from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.text import DEFAULT_FONT, LabelBase
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager

from kiosk.ui.theme import CJK_FONT, HIGH_CONTRAST, LARGE_SCALE, NORMAL, TARGET
from kiosk.viewmodels.kiosk import KioskViewModel

log = logging.getLogger(__name__)
KV = Path(__file__).with_name("frame.kv")  # not kiosk.kv: App would load that a second time
VOICE_KEYS = {286: "next", 287: "select", 288: "back", 289: "voice"}  # F5-F8 (Kivy key codes)
LONG_PRESS_S = 2.0


class KioskRoot(BoxLayout):
    """The frame; a touch held still for ``LONG_PRESS_S`` anywhere starts voice mode (and presses nothing)."""

    def on_touch_down(self, touch):
        app = App.get_running_app()
        touch.ud["long_press"] = Clock.schedule_once(lambda _dt: self._long_press(touch), LONG_PRESS_S)
        touch.ud["long_press_at"] = touch.pos
        return super().on_touch_down(touch) if app is not None else False

    def on_touch_move(self, touch):
        x0, y0 = touch.ud.get("long_press_at", touch.pos)
        if abs(touch.x - x0) > 30 or abs(touch.y - y0) > 30:  # a swipe, not a held finger
            self._cancel(touch)
        return super().on_touch_move(touch)

    def on_touch_up(self, touch):
        self._cancel(touch)
        if touch.ud.get("long_pressed"):
            return True  # the long press was the whole action: no button under it fires
        return super().on_touch_up(touch)

    @staticmethod
    def _cancel(touch) -> None:
        event = touch.ud.pop("long_press", None)
        if event is not None:
            event.cancel()

    def _long_press(self, touch) -> None:
        touch.ud.pop("long_press", None)
        touch.ud["long_pressed"] = True
        for ref in list(touch.grab_list):  # the button under the finger must not fire on release
            widget = ref()
            if widget is not None:
                touch.ungrab(widget)
                if hasattr(widget, "state"):
                    widget.state = "normal"
        App.get_running_app().vm.on_long_press()


class KioskApp(App):
    scale = NumericProperty(1.0)
    target = NumericProperty(TARGET[False])  # smallest touch target (px) in the current text size
    palette = ObjectProperty(NORMAL)  # for Python widgets; kv binds the colour properties below
    c_bg = ListProperty(NORMAL.bg)
    c_bar = ListProperty(NORMAL.bar)
    c_on_bar = ListProperty(NORMAL.on_bar)
    c_secondary = ListProperty(NORMAL.secondary)
    c_on_secondary = ListProperty(NORMAL.on_secondary)
    c_primary = ListProperty(NORMAL.primary)
    c_danger = ListProperty(NORMAL.danger)
    c_on_danger = ListProperty(NORMAL.on_danger)
    idle_warning = BooleanProperty(False)
    large = BooleanProperty(False)
    voice_on = BooleanProperty(False)
    vm_language = StringProperty("zh")
    vm_screen = StringProperty("home")
    countdown_text = StringProperty("")

    def __init__(self, vm: KioskViewModel, **kw) -> None:
        super().__init__(**kw)
        self.vm = vm
        self.title = "clinicflow kiosk"
        self._scan_buffer = ""
        self.screens: dict[str, object] = {}

    # -- texts ----------------------------------------------------------------------------------
    def t(self, message: str, *_bindings) -> str:
        """Translate for kv (extra arguments only make kv re-evaluate when they change)."""
        return self.vm.tr(message)

    # -- build ----------------------------------------------------------------------------------
    def build(self):
        from kiosk.ui.screens import SCREENS

        if CJK_FONT.exists():  # Kivy's Roboto has no Chinese glyphs
            LabelBase.register(DEFAULT_FONT, str(CJK_FONT), fn_bold=str(CJK_FONT))
        Builder.load_file(str(KV))
        root = KioskRoot()
        manager: ScreenManager = root.ids.screens
        manager.transition = NoTransition()
        for cls in SCREENS:
            screen = cls(self.vm)
            self.screens[screen.name] = screen
            manager.add_widget(screen)
        self.manager = manager
        vm = self.vm
        vm.bind(screen=self._on_screen, large_text=self._on_mode, language=self._sync, voice=self._sync,
                idle_remaining=self._sync, idle_warning=self._sync)
        self.root_widget = root
        # Strong references: ids are weak, and the keys are off the bar (out of the tree) on Home.
        nav = {root.ids[name].uid: name for name in ("back", "restart", "call_staff")}
        by_name = {nav[w.uid]: w for w in root.ids.bar.children if w.uid in nav}
        self._nav_keys = [by_name["back"], by_name["restart"], by_name["call_staff"]]
        self._on_mode()
        self._sync()
        manager.current = vm.screen
        Window.bind(on_key_down=self._on_key_down)
        Window.clearcolor = self.palette.bg
        Clock.schedule_interval(lambda dt: vm.tick(dt), 1.0)
        return root

    def _on_screen(self, *_):
        self._sync()
        if self.manager.current != self.vm.screen:
            self.manager.current = self.vm.screen
        else:
            self.screens[self.vm.screen].render()

    def _on_mode(self, *_):
        self.large = self.vm.large_text
        self.scale = LARGE_SCALE if self.large else 1.0
        self.target = TARGET[self.large]
        self.palette = p = HIGH_CONTRAST if self.large else NORMAL
        self.c_bg, self.c_bar, self.c_on_bar = p.bg, p.bar, p.on_bar
        self.c_secondary, self.c_on_secondary, self.c_primary = p.secondary, p.on_secondary, p.primary
        self.c_danger, self.c_on_danger = p.danger, p.on_danger
        Window.clearcolor = self.palette.bg
        self.screens[self.vm.screen].render()

    def _show_nav_keys(self) -> None:
        """Back / Start again / Call staff on the bar everywhere but Home (where Call staff is a service)."""
        bar, keys = self.root_widget.ids.bar, self._nav_keys
        on_bar = keys[0].parent is not None
        if self.vm.screen == "home" and on_bar:
            for key in keys:
                bar.remove_widget(key)
        elif self.vm.screen != "home" and not on_bar:
            for key in reversed(keys):  # back at the left end, in their order
                bar.add_widget(key, index=len(bar.children))

    def _sync(self, *_):
        vm = self.vm
        self._show_nav_keys()
        self.vm_language = vm.language
        self.vm_screen = vm.screen
        self.voice_on = vm.voice
        self.idle_warning = bool(vm.idle_warning)
        self.countdown_text = vm.countdown_text()

    # -- keyboard: scanner and voice keys --------------------------------------------------------
    def _on_key_down(self, _window, key, _scancode, codepoint, _modifiers):
        if key in VOICE_KEYS:
            self.vm.on_panel_key(VOICE_KEYS[key])
            return True
        if key in (13, 271):  # Enter / keypad Enter ends a scanned code
            code, self._scan_buffer = self._scan_buffer, ""
            if code:
                self.vm.on_scan(code)
            return True
        if codepoint and codepoint.isprintable() and len(self._scan_buffer) < 64:
            self._scan_buffer += codepoint
            return True
        return False
