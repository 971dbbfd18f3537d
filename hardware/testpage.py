"""A minimal, valid one-page A4 PDF with a few lines of ASCII text, for printer self-tests.

Written by hand (about 1 KB, no PDF library needed on a kiosk): a page, the standard
Helvetica font, one content stream, and a correct cross-reference table.
"""
from __future__ import annotations

from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def test_page_pdf(lines: list[str]) -> bytes:
    """PDF bytes of an A4 page showing ``lines`` (ASCII) from the top left."""
    if any(not line.isascii() for line in lines):
        raise ValueError("the self-test page uses the PDF standard font: ASCII text only")
    ops = ["BT", "/F1 18 Tf", "72 770 Td", "24 TL"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_test_page(path: str | Path, lines: list[str]) -> Path:
    path = Path(path)
    path.write_bytes(test_page_pdf(lines))
    return path
