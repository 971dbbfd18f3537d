"""Choosing gpiozero's pin factory by name, in one place for every GPIO app.

Production code never asks "am I on a Pi?": it passes the factory a device file names
(``[hardware.buttons] pin_factory``) or None, and gpiozero then resolves its default
(``$GPIOZERO_PIN_FACTORY``, else the first library that loads). On a Pi 5 only ``lgpio``
works; ``mock`` gives gpiozero's ``MockFactory`` for demos and tests.
"""
from __future__ import annotations

from typing import Any

FACTORIES = {
    "mock": ("gpiozero.pins.mock", "MockFactory"),
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}


def make_pin_factory(name: str | None) -> Any:
    """A gpiozero pin factory for ``name`` (mock, lgpio, rpigpio, native), or None for gpiozero's default."""
    if not name:
        return None
    try:
        module_name, class_name = FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown pin factory {name!r}; use {', '.join(FACTORIES)}") from None
    import importlib

    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except Exception as exc:  # the library is missing or this is not a Pi
        from protocol.errors import DeviceError

        raise DeviceError(f"GPIO pin factory {name!r} is not usable here: {exc}") from exc
