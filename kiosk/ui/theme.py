"""Palettes and sizes of the kiosk: normal, and large text (1.6x, high contrast, bigger targets).

Sizes are in pixels of a 10" 1280x800 panel (about 6 px a millimetre): a 15 mm finger
target is about 90 px, so every touch target is at least ``TARGET[large]`` in both directions
and every text at least ``BODY_FONT * scale``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
LARGE_SCALE = 1.6  # every font in large text (28 px -> 44.8 px)
BODY_FONT = 28  # px: the smallest text on any screen at normal size
TARGET = {False: 92, True: 124}  # px: the smallest touch target, normal / large text


@dataclass(frozen=True)
class Palette:
    bg: tuple[float, float, float, float]
    fg: tuple[float, float, float, float]
    muted: tuple[float, float, float, float]
    primary: tuple[float, float, float, float]
    on_primary: tuple[float, float, float, float]
    secondary: tuple[float, float, float, float]
    on_secondary: tuple[float, float, float, float]
    danger: tuple[float, float, float, float]
    on_danger: tuple[float, float, float, float]
    bar: tuple[float, float, float, float]
    on_bar: tuple[float, float, float, float]
    focus: tuple[float, float, float, float]


NORMAL = Palette(
    bg=(0.96, 0.97, 0.98, 1), fg=(0.10, 0.12, 0.16, 1), muted=(0.30, 0.34, 0.40, 1),
    primary=(0.0, 0.40, 0.70, 1), on_primary=(1, 1, 1, 1),
    secondary=(0.84, 0.88, 0.93, 1), on_secondary=(0.08, 0.10, 0.14, 1),
    danger=(0.75, 0.10, 0.10, 1), on_danger=(1, 1, 1, 1),
    bar=(0.0, 0.30, 0.52, 1), on_bar=(1, 1, 1, 1), focus=(1.0, 0.55, 0.0, 1),
)

# High contrast: white and yellow on black (contrast ratios above 15:1).
HIGH_CONTRAST = Palette(
    bg=(0, 0, 0, 1), fg=(1, 1, 1, 1), muted=(0.92, 0.92, 0.92, 1),
    primary=(1.0, 0.86, 0.0, 1), on_primary=(0, 0, 0, 1),
    secondary=(0.18, 0.18, 0.18, 1), on_secondary=(1, 1, 1, 1),
    danger=(1.0, 0.30, 0.30, 1), on_danger=(0, 0, 0, 1),
    bar=(0.12, 0.12, 0.12, 1), on_bar=(1.0, 0.86, 0.0, 1), focus=(0.0, 0.9, 1.0, 1),
)
