"""Read ESC/POS bytes back as a person would see the paper: text lines and a PNG preview.

Used by the tests (decode the printed QR code with ``zbarimg``, read the GB18030 text)
and by ``clinicflow selftest --preview`` to show a technician what a printer would print.
It understands the commands clinicflow sends (python-escpos' text styles, ``FS &``/``FS .``
Chinese mode, ``GS v 0`` raster images, ``GS ( k`` QR codes, cuts, real-time status
requests) and raises ``ValueError`` for anything else, so junk in a job is noticed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10

# ESC commands with a fixed number of parameter bytes.
_ESC_ARGS = {0x40: 0, 0x61: 1, 0x45: 1, 0x21: 1, 0x74: 1, 0x4D: 1, 0x2D: 1, 0x47: 1, 0x7B: 1,
             0x32: 0, 0x33: 1, 0x64: 1, 0x70: 3, 0x56: 1, 0x20: 1, 0x52: 1}
_GS_ARGS = {0x21: 1, 0x42: 1, 0x62: 1, 0x48: 1, 0x66: 1, 0x68: 1, 0x77: 1}


@dataclass
class PreviewBlock:
    """A printed line of text (``text``) or an image (``image``, a PIL image), with its alignment."""

    text: str | None = None
    image: Any = None
    align: str = "left"
    scale: int = 1
    qr: str | None = None  # payload of a native QR code (the printer draws it)


@dataclass
class Preview:
    blocks: list[PreviewBlock] = field(default_factory=list)
    cuts: int = 0
    status_requests: int = 0

    @property
    def text(self) -> str:
        """The printed text lines, joined by newlines (images are left out)."""
        return "\n".join(b.text for b in self.blocks if b.text is not None)

    @property
    def native_qr_payloads(self) -> list[str]:
        return [b.qr for b in self.blocks if b.qr is not None]

    def render(self, width_px: int = 384) -> Any:
        """The slip as a white PIL image ``width_px`` wide, text drawn with the CJK font."""
        from PIL import Image, ImageDraw, ImageFont
        import qrcode

        from hardware.ticket_printer import CJK_FONT

        pieces: list[tuple[Any, str]] = []
        for block in self.blocks:
            if block.qr is not None:
                qr = qrcode.QRCode(border=2, box_size=max(1, block.scale))
                qr.add_data(block.qr.encode("utf-8"))
                qr.make(fit=True)
                pieces.append((qr.make_image().get_image().convert("L"), block.align))
            elif block.image is not None:
                pieces.append((block.image.convert("L"), block.align))
            else:
                px = 24 * block.scale
                font = ImageFont.truetype(str(CJK_FONT), px)
                text = block.text or ""
                w = max(1, int(font.getlength(text)) + 2)
                img = Image.new("L", (w, int(px * 1.3)), 255)
                ImageDraw.Draw(img).text((0, px * 0.1), text, font=font, fill=0)
                pieces.append((img, block.align))
        height = sum(p.height for p, _ in pieces) + 40
        width = max([width_px] + [p.width for p, _ in pieces]) + 40
        page = Image.new("L", (width, height), 255)
        y = 20
        for img, align in pieces:
            x = {"left": 20, "center": (width - img.width) // 2, "right": width - 20 - img.width}[align]
            page.paste(img, (x, y))
            y += img.height
        return page

    def save_png(self, path: str | Path, width_px: int = 384) -> Path:
        path = Path(path)
        self.render(width_px).save(path)
        return path


def _raster_image(width_bytes: int, height: int, data: bytes) -> Any:
    from PIL import Image

    # GS v 0 data: 1 = black dot, MSB first; PIL mode "1" uses 1 = white, so invert.
    img = Image.frombytes("1", (width_bytes * 8, height), bytes(b ^ 0xFF for b in data))
    return img


def parse(data: bytes) -> Preview:
    """Parse ESC/POS bytes into a Preview; ValueError for a command this reader does not know."""
    out = Preview()
    i, n = 0, len(data)
    align, scale, chinese = "left", 1, False
    buf = bytearray()
    qr_data: bytes | None = None
    qr_size = 3

    def flush_line() -> None:
        text = bytes(buf).decode("gb18030" if chinese or any(b > 0x7F for b in buf) else "cp437", "replace")
        out.blocks.append(PreviewBlock(text=text, align=align, scale=scale))
        buf.clear()

    while i < n:
        b = data[i]
        if b == 0x0A:
            flush_line()
            i += 1
        elif b == ESC:
            cmd = data[i + 1]
            if cmd not in _ESC_ARGS:
                raise ValueError(f"unknown command ESC 0x{cmd:02x} at byte {i}")
            args = data[i + 2:i + 2 + _ESC_ARGS[cmd]]
            if cmd == 0x61:
                align = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}[args[0]]
            elif cmd == 0x40:
                align, scale, chinese = "left", 1, False
            elif cmd == 0x21:
                scale = 2 if args[0] & 0x30 else 1
            i += 2 + _ESC_ARGS[cmd]
        elif b == FS:
            cmd = data[i + 1]
            if cmd == 0x26:
                chinese = True
            elif cmd == 0x2E:
                chinese = False
            else:
                raise ValueError(f"unknown command FS 0x{cmd:02x} at byte {i}")
            i += 2
        elif b == DLE:
            if data[i + 1] != 0x04:
                raise ValueError(f"unknown command DLE 0x{data[i + 1]:02x} at byte {i}")
            out.status_requests += 1
            i += 3
        elif b == GS:
            cmd = data[i + 1]
            if cmd == 0x21:
                scale = (data[i + 2] & 0x0F) + 1
                i += 3
            elif cmd in _GS_ARGS:
                i += 2 + _GS_ARGS[cmd]
            elif cmd == 0x56:  # GS V m [n]: cut
                out.cuts += 1
                i += 4 if data[i + 2] in (65, 66, 97, 98) else 3
            elif cmd == 0x76 and data[i + 2] == 0x30:  # GS v 0 m xL xH yL yH d...
                wb = data[i + 4] | data[i + 5] << 8
                h = data[i + 6] | data[i + 7] << 8
                body = data[i + 8:i + 8 + wb * h]
                if len(body) != wb * h:
                    raise ValueError("truncated raster image")
                out.blocks.append(PreviewBlock(image=_raster_image(wb, h, body), align="left"))
                i += 8 + wb * h
            elif cmd == 0x28 and data[i + 2] == 0x6B:  # GS ( k pL pH cn fn ...
                length = data[i + 3] | data[i + 4] << 8
                cn, fn, rest = data[i + 5], data[i + 6], data[i + 7:i + 5 + length]
                if cn == 0x31 and fn == 0x43:
                    qr_size = rest[0]
                elif cn == 0x31 and fn == 0x50:
                    qr_data = bytes(rest[1:])
                elif cn == 0x31 and fn == 0x51:
                    if qr_data is None:
                        raise ValueError("QR print command without stored data")
                    out.blocks.append(PreviewBlock(qr=qr_data.decode("utf-8"), align=align, scale=qr_size))
                    qr_data = None
                i += 5 + length
            else:
                raise ValueError(f"unknown command GS 0x{cmd:02x} at byte {i}")
        else:
            buf.append(b)
            i += 1
    if buf:
        flush_line()
    return out
