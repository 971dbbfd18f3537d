"""The dashboard page in Chromium at desktop and tablet sizes, in Chinese and English (screenshots written)."""
from __future__ import annotations


import pytest

from tests.dashboard_day import expected
from tests.test_dashboard_api import SH, history, server  # noqa: F401  (module fixtures shared with the API tests)

SIZES = {"desktop": (1440, 900), "tablet": (820, 1180)}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", ["desktop", "tablet"])
def test_manager_sees_plots_with_their_numbers(browser, server, history, artifacts_dir, lang, size):  # noqa: F811
    _, ledgers = history
    days = sorted(ledgers)
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN" if lang == "zh" else "en-US",
                                  bypass_csp=True)  # the page's CSP forbids eval, which Playwright's waits use
    context.set_default_timeout(20000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{server.base_url}/dashboard?lang={lang}&first={days[0]}&last={days[-1]}"
                  f"#token={server.tokens['manager']}")
        page.wait_for_function("document.querySelectorAll('#plots figure img[src^=blob]').length == 6")
        page.wait_for_function("document.querySelectorAll('#plots figure table tbody tr').length > 0")
        want = expected([v for d in days for v in ledgers[d]], long_wait_min=30)
        assert page.text_content("#card-arrivals .v") == str(want["arrivals"])
        assert float(page.text_content("#card-median_wait_min .v")) == want["median_wait_min"]
        assert float(page.text_content("#card-p90_wait_min .v")) == want["p90_wait_min"]
        # the numbers under the days plot: one row per day, the ledger's arrivals
        page.click("#plot-days summary")
        cells = page.eval_on_selector_all("#plot-days tbody tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
        assert {d: int(n) for d, n in cells if d in ledgers} == {d: len(ledgers[d]) for d in days}
        # every column of the opened table is in view: none hidden behind a scrollbar (Service time was cut once)
        hidden = page.eval_on_selector("#plot-days .scroll", "s => s.scrollWidth - s.clientWidth")
        assert hidden <= 1, f"the day-by-day table is {hidden} px wider than its panel"
        title = page.text_content("#plot-departments h3")
        assert title == ("各科室等候时间" if lang == "zh" else "Waits by department")
        page.wait_for_function("document.querySelectorAll('#kiosk-plots figure img[src^=blob]').length == 2")
        page.wait_for_function("document.querySelectorAll('#kiosk-plots figure table').length == 3")
        page.screenshot(path=str(artifacts_dir / f"dashboard-{size}-{lang}.png"), full_page=True)
        assert not errors
    finally:
        context.close()


def test_before_after_comparison_on_the_page(browser, server, history, artifacts_dir):  # noqa: F811
    _, ledgers = history
    days = sorted(ledgers)
    page = browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    page.set_default_timeout(20000)
    try:
        page.goto(f"{server.base_url}/dashboard?lang=en&first={days[0]}&last={days[-1]}#token={server.tokens['manager']}")
        page.wait_for_selector("#plots figure")
        page.fill("#b-first", days[0]), page.fill("#b-last", days[1])
        page.fill("#a-first", days[2]), page.fill("#a-last", days[3])
        page.click("#compare")
        page.wait_for_function("document.querySelectorAll('#plot-compare img[src^=blob]').length == 1")
        page.wait_for_function("document.querySelectorAll('#plot-compare tbody tr').length > 0")
        page.click("#plot-compare summary")
        total = page.eval_on_selector("#plot-compare tbody tr", "r => Array.from(r.cells).map(c => c.textContent)")
        before = expected(ledgers[days[0]] + ledgers[days[1]], long_wait_min=30)["median_wait_min"]
        after = expected(ledgers[days[2]] + ledgers[days[3]], long_wait_min=30)["median_wait_min"]
        assert total[0] == "Whole site"
        assert float(total[4]) == before and float(total[5]) == after  # arrivals per day first, then median wait
        page.locator("#compare-section").screenshot(path=str(artifacts_dir / "dashboard-compare-en.png"))
    finally:
        page.close()


def test_page_is_served_with_a_strict_content_security_policy(server):  # noqa: F811
    r = server.client(None).get("/dashboard")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
