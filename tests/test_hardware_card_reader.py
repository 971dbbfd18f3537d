"""Card readers: a patient presents an ID or insurance card; damaged reads are refused, never misread."""
from __future__ import annotations

from datetime import date

import pytest

from hardware.card_reader import (
    CardData,
    CardReader,
    CardReadError,
    FakeCardReader,
    PcscCardReader,
    ReadTimeout,
    SerialCardReader,
    card_frame,
    id_number_valid,
)
from hardware.serial_frames import FrameParser, encode_frame
from tests.hardware_sims import PtyDevice


def _id_number(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


ID_NO = _id_number("11010519491231002")
ID_CARD = CardData("id", ID_NO, "张秀英", ID_NO, date(1949, 12, 31))
INSURANCE = CardData("insurance", "SH0012345678", "张秀英", ID_NO)


@pytest.fixture
def pty_reader():
    device = PtyDevice()
    reader = SerialCardReader(port=device.path, frame_timeout=0.1)
    try:
        yield device, reader
    finally:
        reader.close()
        device.close()


def test_id_number_check_digit():
    assert id_number_valid(ID_NO)
    wrong = ID_NO[:17] + ("0" if ID_NO[17] != "0" else "1")
    assert not id_number_valid(wrong) and not id_number_valid("12345")


def test_serial_card_reader_reads_an_id_card(pty_reader):
    device, reader = pty_reader
    assert isinstance(reader, CardReader)
    device.send(b"\x00\xff" + card_frame(ID_CARD))  # line noise before the frame is skipped
    card = reader.read(2)
    assert card == ID_CARD and card.birth_date == date(1949, 12, 31)
    assert "张秀英" not in repr(card) and ID_NO not in repr(card)
    assert card.masked == f"id card ****{ID_NO[-4:]} 张*英"


def test_serial_card_reader_reads_an_insurance_card(pty_reader):
    device, reader = pty_reader
    device.send(card_frame(INSURANCE))
    assert reader.read(2) == INSURANCE


def test_serial_card_reader_wrong_checksum_is_refused_and_the_next_card_works(pty_reader):
    device, reader = pty_reader
    frame = bytearray(card_frame(ID_CARD))
    frame[-2] ^= 0x5A  # corrupt the BCC
    device.send(bytes(frame))
    with pytest.raises(CardReadError, match="checksum"):
        reader.read(2)
    flipped = bytearray(card_frame(ID_CARD))
    flipped[6] ^= 0x01  # a flipped bit in the payload: the checksum catches it
    device.send(bytes(flipped))
    with pytest.raises(CardReadError, match="checksum"):
        reader.read(2)
    device.send(card_frame(ID_CARD))
    assert reader.read(2) == ID_CARD


def test_serial_card_reader_cut_off_frame_is_dropped(pty_reader):
    device, reader = pty_reader
    device.send(card_frame(ID_CARD)[:9])  # card pulled away mid-read
    with pytest.raises(CardReadError, match="cut off"):
        reader.read(2)
    device.send(card_frame(INSURANCE))
    assert reader.read(2) == INSURANCE


def test_serial_card_reader_refuses_a_frame_with_an_impossible_id_number(pty_reader):
    device, reader = pty_reader
    bad = ID_NO[:17] + ("0" if ID_NO[17] != "0" else "1")
    device.send(encode_frame("I", bad, "张秀英", "19491231"))
    with pytest.raises(CardReadError, match="check digit"):
        reader.read(2)
    device.send(encode_frame("I", ID_NO, "张秀英", "19500101"))
    with pytest.raises(CardReadError, match="birth date"):
        reader.read(2)


def test_serial_card_reader_passes_on_the_readers_own_error(pty_reader):
    device, reader = pty_reader
    device.send(encode_frame("E", "card removed too early"))
    with pytest.raises(CardReadError, match="card removed too early"):
        reader.read(2)
    with pytest.raises(ReadTimeout):
        reader.read(0.05)


def test_frame_parser_resynchronises_after_a_bad_length():
    parser = FrameParser()
    items = parser.feed(b"\x02\x00" + encode_frame("E", "x"))
    assert [type(i).__name__ for i in items] == ["FrameError", "Frame"]


def test_fake_card_reader_goes_through_the_same_checks():
    fake = FakeCardReader()
    fake.present(ID_CARD)
    fake.present_raw(card_frame(ID_CARD)[:-1])  # ETX lost
    assert fake.read(0) == ID_CARD
    with pytest.raises(CardReadError):
        fake.read(0)


def test_pcsc_reader_without_pyscard_or_readers_is_a_clear_error():
    with pytest.raises(OSError, match="pyscard|PC/SC|reader"):
        PcscCardReader(lookup=lambda uid: None)
