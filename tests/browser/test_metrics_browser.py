"""The success-metrics page in real headless Chromium, JavaScript off: each metric against its target, a chart each."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from selenium import webdriver
from selenium.webdriver.common.by import By

from adapters.mongo import now
from tests.browser.conftest import start_chrome
from tests.browser.test_dashboard_browser import arrived
from tests.integration.test_dashboard import NAME
from tests.integration.test_ops_api import TOKEN

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "metrics-page.png"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def no_script_browser(chromium: tuple[str, str]) -> Iterator[webdriver.Chrome]:
    """Chromium with JavaScript disabled (the page must read without it), tall enough for every card."""
    chrome = start_chrome(chromium)
    chrome.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    chrome.set_window_size(1280, 1500)
    yield chrome
    chrome.quit()


def a_day_of_payments(db: Any) -> None:
    """About 300 payments over the last 24 hours: mostly paid, a few declined, a few refunded, two currencies,
    and their events, a few found by reconcile; the afternoon slower than the morning."""
    rnd, t = random.Random(21), now()
    services = [(ObjectId(), "Yoga for beginners"), (ObjectId(), "Chess openings"), (ObjectId(), "Guitar")]
    payments, events = [], []
    for n in range(300):
        created = t - timedelta(minutes=rnd.uniform(1, 24 * 60))
        service_id, service_name = services[n % 3]
        draw = rnd.random()
        status = "completed" if draw < 0.93 else "failed" if draw < 0.98 else "pending"
        refunded = 1500 if status == "completed" and rnd.random() < 0.03 else 0
        doc: dict[str, Any] = {"_id": ObjectId(), "paymentId": f"pi_page{n}", "status": status,
                               "amount": 4900 if n % 4 else 2500, "currency": "INR" if n % 4 else "USD",
                               "amountRefunded": refunded, "serviceId": service_id, "serviceName": service_name,
                               "createdAt": created, "updatedAt": created + timedelta(seconds=40)}  # fmt: skip
        if status == "completed":
            paid = created + timedelta(seconds=30)
            slow = 4.0 if paid.hour >= 12 else 0.0
            doc.update(paidAt=paid, activatedAt=paid + timedelta(seconds=rnd.uniform(0.5, 3) + slow))
            received = paid + timedelta(seconds=rnd.uniform(0.1, 1))
            events.append({"_id": f"evt_page{n}", "status": "processed", "receivedAt": received,
                           "processedAt": received + timedelta(seconds=rnd.uniform(0.1, 1.2)),
                           "source": "reconcile" if rnd.random() < 0.01 else "webhook"})  # fmt: skip
        payments.append(doc)
    db.payments.insert_many(payments)
    db.stripe_events.insert_many(events)


def test_the_metrics_page_shows_each_metric_against_its_target(
    no_script_browser: webdriver.Chrome, served: str, db: Any
) -> None:
    browser = no_script_browser
    a_day_of_payments(db)
    browser.get(f"{served}/ops/login")
    browser.find_element(By.ID, "name").send_keys(NAME)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    arrived(browser, lambda url: url == f"{served}/ops")
    browser.find_element(By.LINK_TEXT, "Success metrics").click()
    arrived(browser, lambda url: url == f"{served}/ops/metrics")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Success metrics, last 24h"
    cards = browser.find_elements(By.CSS_SELECTOR, ".card[data-state]")
    assert len(cards) == 6
    for card in cards:
        badge = card.find_element(By.CLASS_NAME, "badge").text
        assert badge in {"On target", "Off target", "No target", "No data"}, badge
        assert card.find_elements(By.CSS_SELECTOR, "svg rect.bar"), "a chart with bars"
        assert card.find_element(By.CSS_SELECTOR, "svg").size["height"] > 50
    activation = browser.find_element(By.ID, "activationSeconds")
    assert activation.find_elements(By.CSS_SELECTOR, "rect.bar.off") and activation.find_elements(
        By.CSS_SELECTOR, "rect.bar.ok"
    ), "the slow afternoon's steps red, the morning's green"
    browser.find_element(By.LINK_TEXT, "7d").click()
    arrived(browser, lambda url: url.endswith("window=7d"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Success metrics, last 7d"
    browser.find_element(By.LINK_TEXT, "24h").click()
    arrived(browser, lambda url: url.endswith("window=24h"))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000
