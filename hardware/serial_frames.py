"""The framed serial protocol clinicflow's card readers and payment terminals speak (see docs/hardware.md).

One frame::

    STX  LEN  TYPE  PAYLOAD...  BCC  ETX
    0x02 1 B  1 B   LEN-1 B     1 B  0x03

* ``LEN`` counts TYPE + PAYLOAD (1..250).
* ``TYPE`` is one ASCII letter (``I`` ID card, ``M`` insurance card, ``E`` reader error,
  ``S`` sale, ``C`` cancel, ``Q`` query, ``R`` result).
* ``PAYLOAD`` is UTF-8 text; fields are separated by US (0x1F).
* ``BCC`` is the XOR of LEN, TYPE and every PAYLOAD byte.

Single bytes ACK (0x06) and NAK (0x15) acknowledge a frame on links that use them.
``FrameParser`` resynchronises after any error by rescanning the bytes the damaged
frame took for the next STX (a noise-corrupted LEN that claimed too many bytes must
not swallow the frames behind it), so a burst of line noise costs the frames it hit and
nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import DeviceError

STX, ETX, ACK, NAK, US = 0x02, 0x03, 0x06, 0x15, 0x1F
MAX_LEN = 250


class FrameError(DeviceError, ValueError):
    """A frame that arrived damaged: bad length, wrong checksum, missing ETX, not UTF-8, cut off."""


@dataclass(frozen=True)
class Frame:
    type: str
    fields: tuple[str, ...]


def bcc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(type_: str, *fields: str) -> bytes:
    """Bytes of one frame; ValueError if a field holds the separator or the frame is too long."""
    if len(type_) != 1 or not type_.isascii() or not type_.isalpha():
        raise ValueError(f"frame type must be one ASCII letter, not {type_!r}")
    if any("\x1f" in f for f in fields):
        raise ValueError("a field may not contain the unit separator 0x1F")
    body = type_.encode("ascii") + "\x1f".join(fields).encode("utf-8")
    if len(body) > MAX_LEN:
        raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_LEN}")
    head = bytes([len(body)]) + body
    return bytes([STX]) + head + bytes([bcc(head), ETX])


class FrameParser:
    """Feed bytes as they arrive; get back frames, FrameErrors (for damaged frames) and ACK/NAK bytes.

    ``feed`` returns a list of items: ``Frame``, ``FrameError`` or the ints ``ACK``/``NAK``.
    Bytes outside a frame that are not ACK/NAK are counted in ``noise`` and skipped.
    ``reset()`` drops a partial frame (call it when the line went quiet mid-frame).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self.noise = 0

    @property
    def partial(self) -> bool:
        """True while a frame has started but not ended."""
        return self._in_frame

    def reset(self) -> FrameError | None:
        """Drop a partial frame; return the error describing it (None if there was none).

        Frames inside the dropped bytes are lost: call ``flush()`` to get them too.
        """
        items = self.flush()
        return next((i for i in items if isinstance(i, FrameError)), None)

    def flush(self) -> list[object]:
        """The line went quiet: end a partial frame (a ``FrameError``) and return it with whatever its bytes held."""
        if not self._in_frame:
            return []
        taken = bytes(self._buf)
        self._buf.clear()
        self._in_frame = False
        found = self._rescan(taken)
        if self._in_frame:  # the rescan started another frame: the line is quiet, so it is cut off too
            found += [item for item in self.flush() if not isinstance(item, FrameError)]
        return [FrameError("frame cut off: the device stopped sending mid-frame"), *found]

    def _rescan(self, taken: bytes) -> list[object]:
        """Feed again what a damaged frame consumed, from its first STX (the start of a frame behind it)."""
        start = taken.find(bytes([STX]))
        return self.feed(taken[start:]) if start >= 0 else []

    def feed(self, data: bytes) -> list[object]:
        out: list[object] = []
        for i, byte in enumerate(data):
            if not self._in_frame:
                if byte == STX:
                    self._in_frame = True
                    self._buf.clear()
                elif byte in (ACK, NAK):
                    out.append(byte)
                else:
                    self.noise += 1
                continue
            self._buf.append(byte)
            n = self._buf[0]
            if n == 0 or n > MAX_LEN:
                out.append(FrameError(f"bad frame length {n}"))
                self._buf.clear()
                self._in_frame = False
                # The bad LEN byte may itself be the STX of the next frame: look again from there.
                return out + self.feed(data[i:] if byte == STX else data[i + 1:])
            if len(self._buf) < n + 3:  # LEN + body + BCC + ETX
                if byte == ETX and (inner := self._frame_inside()) is not None:
                    # LEN claimed more bytes than this frame has: a whole good frame ended inside it.
                    self._buf.clear()
                    self._in_frame = False
                    out += [FrameError(f"bad frame length {n} (a complete frame followed)"), inner]
                continue
            frame = bytes(self._buf)
            self._buf.clear()
            self._in_frame = False
            decoded = self._decode(frame)
            out.append(decoded)
            if isinstance(decoded, FrameError):
                # A wrong LEN makes a frame span the next ones: they are in ``frame``; take them back.
                return out + self._rescan(frame) + self.feed(data[i + 1:])
        return out

    def _frame_inside(self) -> Frame | None:
        """A valid frame that ends at the buffer's last byte and started at an STX inside it, if any."""
        buf = bytes(self._buf)
        start = buf.find(STX, 1)
        while start >= 0:
            candidate = buf[start + 1:]
            if candidate and candidate[0] == len(candidate) - 3:
                decoded = self._decode(candidate)
                if isinstance(decoded, Frame):
                    return decoded
            start = buf.find(STX, start + 1)
        return None

    @staticmethod
    def _decode(frame: bytes) -> Frame | FrameError:
        n = frame[0]
        head, check, end = frame[: n + 1], frame[n + 1], frame[n + 2]
        if end != ETX:
            return FrameError("frame does not end with ETX")
        if bcc(head) != check:
            return FrameError(f"checksum mismatch (got 0x{check:02x}, computed 0x{bcc(head):02x})")
        type_ = chr(head[1])
        if not type_.isascii() or not type_.isalpha():
            return FrameError(f"unknown frame type 0x{head[1]:02x}")
        try:
            text = head[2:].decode("utf-8")
        except UnicodeDecodeError:
            return FrameError("frame payload is not UTF-8 text")
        return Frame(type_, tuple(text.split("\x1f")) if text else ())
