"""The payment page in real headless Chromium: search from the dashboard, open the payment, read its
diagnosis; the screenshot is the README's (docs/payment-page.png is a copy of var/payment-page.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from adapters.queue import Broker
from adapters.settings import Settings
from tests.browser.conftest import serve
from tests.browser.test_dashboard_browser import arrived
from tests.integration.conftest import broker  # noqa: F401  (the fixture)
from tests.integration.test_dashboard import NAME
from tests.integration.test_ops_api import TOKEN
from tests.integration.test_payment_story import StoredStripe, paid_and_refunded

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "payment-page.png"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def stripe_views() -> StoredStripe:
    return StoredStripe()


@pytest.fixture
def served_story(settings: Settings, db: Any, stripe_views: StoredStripe) -> Iterator[str]:
    """The app with Stripe a store of views, served (``serve``)."""
    yield from serve(settings, db, stripe_views, "story")


def test_search_open_the_payment_and_see_its_diagnosis(
    browser: webdriver.Chrome,
    served_story: str,
    db: Any,
    broker: Broker,  # noqa: F811
    stripe_views: StoredStripe,
) -> None:
    """A refunded payment whose welcome email bounced: found by the customer's email, its page names email_failed."""
    doc = paid_and_refunded(db, broker, stripe_views)
    db.notifications.update_many(
        {"template": "enrollment_confirmation"},
        {"$set": {"status": "failed", "lastError": "550 5.1.1 mailbox unavailable", "failedAt": doc["updatedAt"]}},
    )
    browser.get(f"{served_story}/ops/login")
    browser.find_element(By.ID, "name").send_keys(NAME)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    arrived(browser, lambda url: url == f"{served_story}/ops")

    box = browser.find_element(By.CSS_SELECTOR, "#payment-search input[name=q]")
    box.send_keys(doc["customerEmail"])
    box.submit()
    arrived(browser, lambda url: url.startswith(f"{served_story}/ops/payments?q="))
    browser.find_element(By.CSS_SELECTOR, f'tr[data-payment="{doc["paymentId"]}"] a').click()
    arrived(browser, lambda url: url == f"{served_story}/ops/payments/{doc['paymentId']}")

    assert browser.find_element(By.TAG_NAME, "h1").text == f"Payment {doc['paymentId']}"
    findings = browser.find_elements(By.CSS_SELECTOR, "#diagnosis [data-code]")
    assert [f.get_attribute("data-code") for f in findings] == ["email_failed"]
    assert findings[0].find_element(By.TAG_NAME, "button").text == "Replay failed emails…"
    timeline = browser.find_elements(By.CSS_SELECTOR, "#timeline tr")
    assert len(timeline) > 10
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height + 40, 900), 4000))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000
