"""The patient's phone status page (``/t/<ticket>``) as a patient uses it in Chromium."""
from __future__ import annotations

from typing import Any


def open_phone_page(page: Any, status_url: str, *, height: int = 1400) -> None:
    """Open a ticket's status page on a phone-sized viewport (390 px wide)."""
    page.set_viewport_size({"width": 390, "height": height})
    page.goto(status_url)


def identify_on_phone_page(page: Any, phone: str, id_last4: str) -> None:
    """Identify with the phone number and the last four characters of the ID card, as the page asks."""
    page.fill("#results-phone", phone)
    page.fill("#results-last4", id_last4)
    page.get_by_role("button", name="查看报告 See my reports").click()
