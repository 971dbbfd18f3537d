"""Receipt printer: what a patient finds on the paper, and what the kiosk learns when paper runs out."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from hardware import escpos_preview
from hardware.ticket_printer import (
    FS_CHINESE_OFF,
    FS_CHINESE_ON,
    PROFILES,
    EscposTicketPrinter,
    FakeTicketPrinter,
    PaperOutError,
    PaperState,
    PrinterError,
    Receipt,
    TicketPrinter,
    TicketSlip,
)
from protocol.errors import DeviceError
from tests.hardware_sims import PtyDevice, TcpDevice, decode_qr

STATUS_URL = "http://127.0.0.1:8000/t/7f3a9c?lang=zh"


def _slip(language: str = "zh", **kw) -> TicketSlip:
    base = dict(
        number="A012",
        department_name={"zh": "内科", "en": "Internal medicine"},
        room_name={"zh": "1 诊室", "en": "room 1"},
        status_url=STATUS_URL,
        issued_at=datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc),  # 09:30 in Shanghai, as the server sends it
        position=3,
        estimated_wait_min=15,
        language=language,
    )
    base.update(kw)
    return TicketSlip(**base)


def _printer_answering(paper: int = 0x12, printer: int = 0x12):
    """A device responder that answers DLE EOT 1 with ``printer`` and DLE EOT 4 with ``paper``."""
    def respond(chunk: bytes) -> bytes:
        out = b""
        if b"\x10\x04\x01" in chunk:
            out += bytes([printer])
        if b"\x10\x04\x04" in chunk:
            out += bytes([paper])
        return out
    return respond


def test_ticket_printer_chinese_profile_sends_gb18030_in_chinese_mode():
    printer = EscposTicketPrinter(device="dummy:", profile="cn-58")
    printer.print_ticket(_slip())
    data = printer.device.output
    assert FS_CHINESE_ON + "科室：内科".encode("gb18030") + FS_CHINESE_OFF in data
    # Chinese punctuation survives (python-escpos' text() would have printed '?').
    assert FS_CHINESE_ON + "请保管好本凭条，过号请到分诊台".encode("gb18030") + FS_CHINESE_OFF in data
    assert b"A012\n" in data
    text = escpos_preview.parse(data).text
    for expected in ("就诊排队凭条", "A012", "诊室：1 诊室", "前面还有 2 人", "预计等候约 15 分钟", "2026-11-23 09:30"):
        assert expected in text


def test_ticket_printer_native_qr_scans_back_to_the_status_page(artifacts_dir: Path):
    printer = EscposTicketPrinter(device="dummy:", profile="cn-80")
    printer.print_ticket(_slip())
    preview = escpos_preview.parse(printer.device.output)
    assert preview.native_qr_payloads == [STATUS_URL]
    png = preview.save_png(artifacts_dir / "receipt-cn-80.png", width_px=576)
    assert decode_qr(png) == [STATUS_URL]
    assert preview.cuts == 1  # 80 mm printers have a cutter


def test_ticket_printer_58mm_chinese_printer_prints_qr_as_raster(artifacts_dir: Path):
    printer = EscposTicketPrinter(device="dummy:", profile="cn-58")
    printer.print_ticket(_slip())
    preview = escpos_preview.parse(printer.device.output)
    assert preview.native_qr_payloads == [] and preview.cuts == 0  # no GS ( k, no cutter: tear-off
    assert decode_qr(preview.save_png(artifacts_dir / "receipt-cn-58.png")) == [STATUS_URL]


def test_ticket_printer_without_chinese_font_prints_chinese_as_an_image_and_qr_as_raster(artifacts_dir: Path):
    printer = EscposTicketPrinter(device="dummy:", profile="generic-58")
    printer.print_ticket(_slip())
    data = printer.device.output
    assert "内科".encode("gb18030") not in data and FS_CHINESE_ON not in data
    preview = escpos_preview.parse(data)
    images = [b.image for b in preview.blocks if b.image is not None]
    assert len(images) >= 6 and all(img.width <= PROFILES["generic-58"].width_px for img in images)
    # Every dot of the QR code came from our raster bytes: zbar reads it from the printed pixels.
    png = preview.save_png(artifacts_dir / "receipt-generic-58.png")
    assert decode_qr(png) == [STATUS_URL]
    # Lines with Chinese were drawn with ink (not blank images from a missing font).
    assert all(img.convert("L").getextrema()[0] == 0 for img in images)


def test_ticket_printer_english_slip_reads_in_english():
    fake = FakeTicketPrinter()
    fake.print_ticket(_slip("en", position=1, estimated_wait_min=None))
    text = fake.last_text
    assert "Department: Internal medicine" in text and "Room: room 1" in text
    assert "You are next" in text and "Estimated wait" not in text
    assert f"[QR] {STATUS_URL}" in text


def test_ticket_printer_serial_paper_out_raises_and_sends_no_job():
    device = PtyDevice(_printer_answering(paper=0x72))  # bits 5,6: paper end
    try:
        printer = EscposTicketPrinter(device=f"serial://{device.path}?baudrate=115200", profile="cn-58", timeout=0.5)
        status = printer.status()
        assert status.paper is PaperState.OUT and not status.ok
        with pytest.raises(PaperOutError) as err:
            printer.print_ticket(_slip())
        assert isinstance(err.value, DeviceError)
        assert b"A012" not in device.received
        printer.close()
    finally:
        device.close()


def test_ticket_printer_serial_prints_and_reports_low_paper():
    device = PtyDevice(_printer_answering(paper=0x1E))  # bits 2,3: near end
    try:
        printer = EscposTicketPrinter(device=f"serial://{device.path}", profile="cn-58", timeout=0.5)
        printer.print_ticket(_slip())
        got = device.wait_for(lambda b: b"\x1bd\x06" in b)  # the feed to the tear bar ends the job
        assert "内科".encode("gb18030") in got and b"A012" in got
        assert printer.status().paper is PaperState.LOW
        printer.close()
    finally:
        device.close()


def test_ticket_printer_silent_printer_is_reported_offline_without_hanging():
    device = PtyDevice(responder=None)  # switched off: never answers
    try:
        printer = EscposTicketPrinter(device=f"serial://{device.path}", profile="cn-58", timeout=0.2)
        status = printer.status()
        assert not status.online and status.paper is PaperState.UNKNOWN
        assert "no answer" in status.detail
        with pytest.raises(PrinterError, match="offline"):
            printer.print_ticket(_slip())
        # Switched back on: the same adapter prints again.
        device.responder = _printer_answering()
        printer.print_ticket(_slip())
        device.wait_for(lambda b: b"A012" in b)
        printer.close()
    finally:
        device.close()


def test_ticket_printer_garbled_status_byte_is_not_taken_for_paper_ok():
    device = PtyDevice(lambda chunk: b"\xff" if b"\x10\x04" in chunk else None)
    try:
        printer = EscposTicketPrinter(device=f"serial://{device.path}", profile="cn-58", timeout=0.2)
        assert printer.status().paper is PaperState.UNKNOWN
        printer.close()
    finally:
        device.close()


def test_ticket_printer_network_printer_receives_the_job():
    device = TcpDevice(_printer_answering())
    try:
        printer = EscposTicketPrinter(device=f"tcp://127.0.0.1:{device.port}", profile="cn-80", timeout=1.0)
        assert printer.status().paper is PaperState.OK
        printer.print_ticket(_slip())
        got = device.wait_for(lambda b: printer.last_job in b)
        assert got.endswith(printer.last_job)
        printer.close()
    finally:
        device.close()


def test_ticket_printer_missing_device_gives_a_clear_error(tmp_path: Path):
    printer = EscposTicketPrinter(device=f"serial://{tmp_path}/ttyUSB9", profile="cn-58", timeout=0.2)
    status = printer.status()
    assert not status.online and "cannot open" in status.detail
    with pytest.raises(PrinterError):
        printer.print_ticket(_slip())
    net = EscposTicketPrinter(device="tcp://127.0.0.1:9", profile="cn-58", timeout=0.5)
    with pytest.raises(PrinterError):
        net.print_ticket(_slip())


def test_ticket_printer_file_device_appends_every_job(tmp_path: Path):
    out = tmp_path / "receipts.bin"
    first = EscposTicketPrinter(device=f"file://{out}", profile="cn-58")
    first.print_ticket(_slip(number="A001"))
    first.close()
    second = EscposTicketPrinter(device=f"file://{out}", profile="cn-58")
    second.print_ticket(_slip(number="A002"))
    second.close()
    text = escpos_preview.parse(out.read_bytes()).text
    assert "A001" in text and "A002" in text
    assert second.status().online is False  # closed


def test_ticket_printer_receipt_prints_rows_and_qr(tmp_path: Path):
    printer = EscposTicketPrinter(device="dummy:", profile="cn-58")
    printer.print_receipt(Receipt(title="缴费凭条", rows=(("金额", "¥35.00"), ("医保", "¥20.00")), qr="PAY-1"))
    preview = escpos_preview.parse(printer.device.output)
    assert "金额：¥35.00" in preview.text
    assert decode_qr(preview.save_png(tmp_path / "receipt.png")) == ["PAY-1"]


def test_fake_ticket_printer_records_jobs_and_simulates_paper_out():
    fake = FakeTicketPrinter(profile="cn-58")
    assert isinstance(fake, TicketPrinter)
    fake.print_ticket(_slip())
    job = fake.jobs[0]
    assert "A012" in job.text and "科室：内科" in job.text
    assert FS_CHINESE_ON + "科室：内科".encode("gb18030") in job.data  # the bytes the real printer would get
    fake.simulate_paper_out()
    assert fake.status().paper is PaperState.OUT
    with pytest.raises(PaperOutError):
        fake.print_ticket(_slip(number="A013"))
    assert len(fake.jobs) == 1
    fake.refill_paper()
    fake.print_ticket(_slip(number="A013"))
    assert len(fake.jobs) == 2 and fake.status().ok


def test_ticket_printer_rejects_unknown_profile_and_device_url():
    with pytest.raises(ValueError, match="profile"):
        EscposTicketPrinter(device="dummy:", profile="laserjet")
    with pytest.raises(ValueError, match="scheme"):
        EscposTicketPrinter(device="lpt://1", profile="cn-58")


def test_ticket_printer_real_time_status_through_a_dummy_that_answers():
    from hardware.escpos_status_dummy import StatusReplyDummy

    dummy = StatusReplyDummy(paper="low")
    printer = EscposTicketPrinter(device=dummy, profile="cn-58")
    status = printer.status()
    assert status.paper is PaperState.LOW and status.online and status.detail == "paper near its end"
    dummy.cover_open = True  # a technician opened the cover to change the roll
    status = printer.status()
    assert not status.online and status.detail == "cover open"
    with pytest.raises(PrinterError, match="cover open"):
        printer.print_ticket(_slip())
    dummy.cover_open, dummy.paper = False, "out"
    assert printer.status().paper is PaperState.OUT and printer.status().detail == "out of paper"
    dummy.silent = True  # unplugged mid-way: no answer is not "ok"
    assert printer.status().paper is PaperState.UNKNOWN and not printer.status().online
    assert b"\x10\x04\x04" in dummy.output  # it really asked


def test_a_plain_dummy_printer_cannot_know_its_paper():
    assert EscposTicketPrinter(device="dummy:").status().paper is PaperState.UNKNOWN


def test_slip_prints_the_hospital_clock_whatever_the_machine_zone():
    """Issue time 09:30 in Shanghai is 01:30 UTC (what the server sends): the slip says 09:30."""
    from hardware.receipt_layout import lines_as_text, ticket_lines
    from zoneinfo import ZoneInfo

    utc = datetime(2026, 12, 3, 1, 30, tzinfo=timezone.utc)
    assert "取号时间：2026-12-03 09:30" in lines_as_text(ticket_lines(_slip(issued_at=utc)))
    same_instant = utc.astimezone(ZoneInfo("America/New_York"))  # whatever zone the value arrives in
    assert "取号时间：2026-12-03 09:30" in lines_as_text(ticket_lines(_slip(issued_at=same_instant)))
    london = lines_as_text(ticket_lines(_slip(issued_at=utc, timezone="Europe/London", language="en")))
    assert "Issued: 2026-12-03 01:30" in london


def test_slip_for_a_multi_room_department_says_where_to_wait_and_next_in_line():
    from hardware.receipt_layout import lines_as_text, ticket_lines

    text = lines_as_text(ticket_lines(_slip(room_name={}, where={"zh": "二楼内科候诊区", "en": "Internal medicine waiting area, 2nd floor"},
                                            position=1, estimated_wait_min=0)))
    assert "候诊：二楼内科候诊区" in text and "下一位就是您" in text and "0 分钟" not in text
    english = lines_as_text(ticket_lines(_slip(language="en", position=2)))
    assert "1 person ahead of you" in english and "1 people" not in english
