"""View-models of the kiosk's flows: Kivy ``EventDispatcher``s, no widgets, testable without a window.

Start at :class:`KioskViewModel`; it owns one view-model per flow.
"""
from kiosk.viewmodels.kiosk import KioskSettings, KioskViewModel

__all__ = ["KioskSettings", "KioskViewModel"]
