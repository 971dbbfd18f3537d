"""Line noise on a serial card reader or terminal costs the frame it hit, never the frames behind it."""
from __future__ import annotations

import random

import pytest

from hardware.card_reader import CardData, CardReadError, SerialCardReader, card_frame
from hardware.serial_frames import STX, Frame, FrameError, FrameParser, encode_frame
from tests.hardware_sims import PtyDevice

FRAMES = [encode_frame("I", "110105194912310021", "张秀英"), encode_frame("M", "SH0012345678"), encode_frame("E", "x")]


def _frames(items: list[object]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


@pytest.mark.parametrize("bad_len", [200, 40, 3, STX, 0, 251])
def test_a_corrupted_length_byte_loses_only_its_own_frame(bad_len):
    damaged = bytearray(FRAMES[0])
    damaged[1] = bad_len
    for chunks in ([bytes(damaged) + FRAMES[1] + FRAMES[2]],                      # in one read
                   [bytes([b]) for b in bytes(damaged) + FRAMES[1] + FRAMES[2]]):  # byte by byte
        parser = FrameParser()
        items = [item for chunk in chunks for item in parser.feed(chunk)]
        assert [f.type for f in _frames(items)] == ["M", "E"], items
        assert any(isinstance(i, FrameError) for i in items)  # the damaged one is reported, not passed on
        assert not parser.partial  # nothing left waiting for bytes that will never come


def test_random_noise_on_length_bytes_never_costs_an_undamaged_frame():
    rng = random.Random(20261203)
    for _ in range(300):
        frames = [encode_frame(rng.choice("IMESR"), str(rng.randrange(10**8))) for _ in range(6)]
        hit = rng.randrange(len(frames))
        damaged = bytearray(frames[hit])
        damaged[1] = rng.choice([b for b in range(256) if b != damaged[1]])
        stream = b"".join(frames[:hit]) + bytes(damaged) + b"".join(frames[hit + 1:])
        parser = FrameParser()
        items = parser.feed(stream) + parser.flush()
        expected = [FrameParser().feed(f)[0] for i, f in enumerate(frames) if i != hit]
        assert _frames(items) == expected, (hit, damaged, items)


def test_a_card_reader_reads_the_card_behind_a_damaged_frame():
    device = PtyDevice()
    reader = SerialCardReader(port=device.path, frame_timeout=0.1)
    try:
        first17 = "11010519491231002"
        weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        id_no = first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]
        card = CardData("insurance", "SH0012345678", "张秀英", id_no)
        damaged = bytearray(card_frame(card))
        damaged[1] = 240  # noise on LEN: it now claims the next frame's bytes as its own
        device.send(bytes(damaged) + card_frame(card))
        with pytest.raises(CardReadError, match="damaged card data"):
            reader.read(2)
        assert reader.read(2) == card
    finally:
        reader.close()
        device.close()


def test_a_quiet_line_leaves_no_half_frame_behind():
    parser = FrameParser()
    parser.feed(b"\x02\x30IAB\x02\x20M12")  # two starts, neither finished, then silence
    assert isinstance(parser.reset(), FrameError) and not parser.partial
    assert _frames(parser.feed(FRAMES[1])) == _frames(FrameParser().feed(FRAMES[1]))
