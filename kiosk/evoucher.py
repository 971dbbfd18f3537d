"""The national medical insurance electronic voucher (医保电子凭证) as the kiosk's scanner reads it.

The patient opens the voucher in WeChat, Alipay or the national insurance app and shows its QR
code; the kiosk then treats it like the insurance card: it identifies the patient and pays the
insurance part. In production the voucher is a signed token the kiosk hands to the national
insurance platform (through the hospital backend) to get the card number; the sandbox format,
documented in docs/hospital-backend.md, carries it in the clear: ``EC:<insurance card number>:<token>``.
"""
from __future__ import annotations

import re

_SANDBOX_VOUCHER = re.compile(r"^EC:([0-9A-Za-z]{4,32}):([0-9A-Za-z_-]{4,128})$")


def voucher_card_number(code: str) -> str | None:
    """The insurance card number behind a scanned e-voucher, or None if the code is not one."""
    match = _SANDBOX_VOUCHER.match(code.strip())
    return match.group(1) if match else None
