"""Draw the demo hospital's floor maps (queueserver/demo_floor2.png, demo_floor3.png).

    python scripts/make_demo_maps.py

Small on purpose (480x270, a few colours, well under 30 KB): a hospital's own maps should be the
same kind of thing, a plan of one floor with the rooms named and the way from the lifts.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
OUT = Path(__file__).resolve().parent.parent / "queueserver"
W, H = 480, 270
WALL, ROOM, HALL, WAIT, LIFT, ARROW, TEXT = "#5a6b7d", "#dbe8f5", "#f4f1ea", "#e3f2df", "#c9c9c9", "#d2452b", "#1d2733"


def draw(name: str, title: str, rooms: list[tuple[str, str, int]], waiting: tuple[str, int, int], left: bool) -> None:
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    big, small = ImageFont.truetype(FONT, 17), ImageFont.truetype(FONT, 13)
    d.text((10, 6), title, font=big, fill=TEXT)
    d.rectangle((10, 110, W - 10, 160), fill=HALL, outline=WALL, width=2)  # the corridor
    for zh_en, en, x in rooms:  # rooms above the corridor, doors on it
        d.rectangle((x, 40, x + 100, 110), fill=ROOM, outline=WALL, width=2)
        d.text((x + 8, 52), zh_en, font=big, fill=TEXT)
        d.text((x + 8, 78), en, font=small, fill=TEXT)
        d.rectangle((x + 40, 106, x + 62, 114), fill="white")  # the door
    label, x0, x1 = waiting
    d.rectangle((x0, 160, x1, 222), fill=WAIT, outline=WALL, width=2)
    d.text((x0 + 10, 180), label, font=small, fill=TEXT)
    d.rectangle((210, 160, 270, 222), fill=LIFT, outline=WALL, width=2)  # the lifts, below the corridor
    d.text((222, 172), "电梯", font=small, fill=TEXT)
    d.text((222, 192), "Lifts", font=small, fill=TEXT)
    d.text((W - 150 if left else 30, 128), "走廊 corridor", font=small, fill=WALL)  # clear of the arrow
    tip = 70 if left else W - 70
    d.line((240, 150, 240, 135, tip + (14 if left else -14), 135), fill=ARROW, width=5, joint="curve")
    d.polygon([(tip, 135), (tip + (16 if left else -16), 125), (tip + (16 if left else -16), 145)], fill=ARROW)
    d.text((10, H - 36), "从电梯出来沿红色箭头走  Follow the red arrow from the lifts", font=small, fill=ARROW)
    img.quantize(colors=16).save(OUT / name, optimize=True)


if __name__ == "__main__":
    draw("demo_floor2.png", "门诊楼 2 楼 Clinic building, floor 2",
         [("2 诊室", "room 2", 30), ("1 诊室", "room 1", 140)], ("内科候诊区 waiting area", 20, 200), left=True)
    draw("demo_floor3.png", "门诊楼 3 楼 Clinic building, floor 3",
         [("3 诊室", "room 3", 320)], ("外科候诊区 waiting area", 280, 460), left=False)
    for f in sorted(OUT.glob("demo_floor*.png")):
        print(f, f.stat().st_size, "bytes")
