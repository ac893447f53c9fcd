"""The checkout page in real headless Chromium, against the whole local stack, across origins.

The page (``devstack.checkout_page``, clients/checkout with clients/payments-api compiled) is
served on an origin of its own, as the MERN frontend is: every call to the payments API is a
cross-origin call the browser lets through only when the API's CORS answer allows the page's
origin (``CORS_ORIGINS``). Stripe.js is the local Stripe's. Each test gets a customer, a specialist
and services of its own, named in the page's ``/config.json``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from devstack import pay
from devstack.demo import token
from devstack.procs import free_port
from devstack.stack import Stack
from tests.browser.conftest import start_chrome
from tests.conftest import TUNING, clean_environ
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]  # a first run may install chromium and npm packages

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "checkout.png"
CARD = "4242424242424242"
THREE_D_SECURE = "4000002500003155"
INSUFFICIENT_FUNDS = "4000000000009995"


@dataclass
class Checkout:
    stack: Stack
    db: Any
    #: The page as CORS_ORIGINS allows it, and the same page from an origin it does not list.
    page: str
    foreign_page: str


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    """The local stack with the checkout page on a free port; CORS_ORIGINS names the page's 127.0.0.1 origin only."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node 20+ with npm builds the checkout page's client")
    port = free_port()
    page = f"http://127.0.0.1:{port}"
    overrides = {**TUNING, "CORS_ORIGINS": page, "APP_BASE_URL": page}
    stack = Stack(
        tmp_path_factory.mktemp("checkout"),
        clean_environ(),
        ingress_port=free_port(),
        overrides=overrides,
        checkout_port=port,
    )
    client: MongoClient[dict[str, Any]] | None = None
    try:
        stack.start()
        assert "checkout" in stack.urls, f"the checkout page did not start: {stack.notices}"
        client = MongoClient(stack.urls["mongo"], tz_aware=True)
        yield Checkout(stack, client[stack.environ["MONGODB_DB"]], page + "/", f"http://localhost:{port}/")
    finally:
        if client is not None:
            client.close()
        stack.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def chrome(chromium: tuple[str, str], downloads: Path) -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module (each test loads the page afresh), downloading into ``downloads``."""
    browser = start_chrome(chromium, downloads)
    yield browser
    browser.quit()


@dataclass(frozen=True)
class Party:
    customer: ObjectId
    specialist: ObjectId
    services: list[dict[str, Any]]
    customer_jwt: str
    specialist_jwt: str


def new_party(checkout: Checkout, services: int = 1) -> Party:
    """A customer, a specialist and ``services`` courses of the specialist's at 499 INR; the page offers them."""
    db, tag = checkout.db, secrets.token_hex(4)
    customer = db.users.insert_one({"email": f"c-{tag}@example.test", "name": f"Cleo {tag}", "role": "customer"})
    specialist = db.users.insert_one({"email": f"s-{tag}@example.test", "name": f"Sam {tag}", "role": "specialist"})
    offered = []
    for n in range(services):
        name = f"Course {n + 1} {tag}"
        service = {"name": name, "type": "course", "price": 499, "currency": "INR", "active": True}
        inserted = db.services.insert_one({**service, "specialistId": specialist.inserted_id}).inserted_id
        offered.append({"id": str(inserted), "name": name, "type": "course", "amount": 49900, "currency": "INR"})
    secret = checkout.stack.app_env()["JWT_SECRET"]
    party = Party(
        customer.inserted_id,
        specialist.inserted_id,
        offered,
        token(customer.inserted_id, "customer", secret),
        token(specialist.inserted_id, "specialist", secret),
    )
    users = [
        {"role": "customer", "name": f"Cleo {tag}", "token": party.customer_jwt},
        {"role": "specialist", "name": f"Sam {tag}", "token": party.specialist_jwt},
    ]
    checkout.stack.write_checkout_config(users=users, services=offered)
    return party


# -- driving the page ------------------------------------------------------------------------------


def open_page(browser: webdriver.Chrome, url: str, role: str) -> None:
    """Load the page, wait until its script has run, and sign in as ``role``."""
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.find_element(By.CSS_SELECTOR, f'#users button[data-role="{role}"]').click()


def pay_with(browser: webdriver.Chrome, number: str, service: int = 0) -> None:
    """Pick the ``service``-th service, type the card into Stripe's card element and press Pay."""
    browser.find_elements(By.CSS_SELECTOR, "input[name=service]")[service].click()
    for field, value in (("number", number), ("exp_month", "12"), ("exp_year", "30"), ("cvc", "123")):
        box = browser.find_element(By.CSS_SELECTOR, f'#card-element input[placeholder="{field}"]')
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "pay").click()


def payment_state(browser: webdriver.Chrome, *states: str, timeout: float = 30) -> str:
    """Wait until the payment line is in one of ``states``; its text."""
    line = browser.find_element(By.ID, "payment-status")
    WebDriverWait(browser, timeout).until(lambda b: line.get_attribute("data-state") in states)
    return str(line.text)


def downloaded(browser: webdriver.Chrome, folder: Path, button: str) -> list[Path]:
    """Press ``button`` and wait for the file(s) it saves into ``folder`` (Chrome's download directory)."""
    before = set(folder.iterdir())
    browser.find_element(By.ID, button).click()

    def done() -> list[Path]:
        new = set(folder.iterdir()) - before
        finished = [p for p in new if not p.name.endswith(".crdownload")]
        return sorted(finished) if finished and len(finished) == len(new) else []

    return wait_for(done, 15, f"the download of {button}")


def access_log(checkout: Checkout) -> list[dict[str, Any]]:
    """The ingress's access lines so far."""
    lines = checkout.stack.children["ingress"].log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [entry for entry in entries if entry.get("logger") == "ingress.access"]


def error_text(browser: webdriver.Chrome, timeout: float = 15) -> str:
    box = browser.find_element(By.ID, "error")
    WebDriverWait(browser, timeout).until(lambda b: box.is_displayed() and box.text)
    return str(box.text)


def paid_through_the_api(checkout: Checkout, party: Party, service: int, card: str = "pm_card_visa") -> str:
    """A payment made without the page (create-intent, then the card at the local Stripe); its intent id."""
    answer = httpx.post(
        checkout.stack.urls["ingress"] + "/api/payments/create-intent",
        json={"serviceId": party.services[service]["id"], "serviceType": "course"},
        headers={"Authorization": f"Bearer {party.customer_jwt}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    intent = str(answer.json()["paymentId"])
    pay.pay(checkout.stack.urls["stripe"], intent, card)
    return intent


def payment_of(checkout: Checkout, party: Party, service: int = 0) -> dict[str, Any]:
    found: dict[str, Any] | None = checkout.db.payments.find_one(
        {"customerId": party.customer, "serviceId": ObjectId(party.services[service]["id"])}
    )
    assert found is not None
    return found


def settled(checkout: Checkout, party: Party, service: int, status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (doc := payment_of(checkout, party, service))["status"] == status and doc,
        20,
        f"the payment {status}",
    )


def enrollment(checkout: Checkout, party: Party, service: int = 0) -> dict[str, Any] | None:
    found: dict[str, Any] | None = checkout.db.enrollments.find_one(
        {"customerId": party.customer, "serviceId": ObjectId(party.services[service]["id"])}
    )
    return found


# -- the tests -------------------------------------------------------------------------------------


def test_a_card_pays_and_the_customer_is_enrolled(checkout: Checkout, chrome: webdriver.Chrome) -> None:
    """4242…: processing, then enrolled; the payment is completed and its enrollment active in MongoDB."""
    party = new_party(checkout)
    open_page(chrome, checkout.page, "customer")
    pay_with(chrome, CARD)
    text = payment_state(chrome, "enrolled", "declined", "error")
    assert text == f"Enrolled in {party.services[0]['name']}.", text
    payment = payment_of(checkout, party)
    assert payment["status"] == "completed"
    active = enrollment(checkout, party)
    assert active is not None and active["status"] == "active" and active["_id"] == payment["enrollmentId"]
    assert chrome.find_element(By.ID, "payment-status").get_attribute("data-enrollment") == str(active["_id"])
    WebDriverWait(chrome, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#history-rows tr"))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert chrome.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000

    # Paying again: the API's 409 reaches the page as the client's PaymentApiError (status, code, message).
    chrome.find_element(By.ID, "pay").click()
    assert payment_state(chrome, "error") == "The payment could not be made."
    assert re.search(r"\(409 already_enrolled; request [0-9a-f]{32}\)$", error_text(chrome)), error_text(chrome)
    assert chrome.find_element(By.ID, "error").get_attribute("data-code") == "already_enrolled"


def test_without_the_webhook_confirm_payment_enrolls(checkout: Checkout, chrome: webdriver.Chrome) -> None:
    """With the worker stopped no webhook is processed: the page polls, then calls confirm-payment, which
    asks Stripe and activates the enrollment (the seed's fallback)."""
    party = new_party(checkout)
    checkout.stack.stop_part("worker")
    try:
        open_page(chrome, checkout.page, "customer")
        pay_with(chrome, CARD)
        assert payment_state(chrome, "processing", "enrolled", "declined", "error").startswith("Processing")
        assert payment_state(chrome, "enrolled", "declined", "error", timeout=30).startswith("Enrolled in")
        assert payment_of(checkout, party)["status"] == "completed"
        found = enrollment(checkout, party)
        assert found is not None and found["status"] == "active"
        posted = [line for line in access_log(checkout) if line.get("path") == "/api/payments/confirm-payment"]
        assert [(line["method"], line["status"]) for line in posted][-1] == ("POST", 200)
    finally:
        checkout.stack.start_worker()


def test_a_3d_secure_card_pays_once_authenticated(checkout: Checkout, chrome: webdriver.Chrome) -> None:
    """4000 0025 0000 3155: the local Stripe's 3-D Secure dialog. Failed, the page says so and nothing is
    paid; the same intent then pays once the dialog is completed, and the customer is enrolled."""
    party = new_party(checkout)
    open_page(chrome, checkout.page, "customer")

    def dialog(answer: str) -> None:
        button = WebDriverWait(chrome, 15).until(
            lambda b: b.find_element(By.XPATH, f"//button[normalize-space()='{answer} authentication']")
        )
        assert payment_of(checkout, party)["status"] in ("pending", "requires_action")  # nothing paid before it
        button.click()

    pay_with(chrome, THREE_D_SECURE)
    dialog("Fail")
    text = payment_state(chrome, "declined", "enrolled", "error")
    assert text == "Payment declined: The provided PaymentMethod has failed authentication.", text
    first = payment_of(checkout, party)
    assert first["status"] != "completed" and enrollment(checkout, party) is None

    pay_with(chrome, THREE_D_SECURE)
    dialog("Complete")
    assert payment_state(chrome, "enrolled", "declined", "error").startswith("Enrolled in")
    paid = payment_of(checkout, party)
    assert (paid["status"], paid["paymentId"]) == ("completed", first["paymentId"])  # the same intent, paid
    found = enrollment(checkout, party)
    assert found is not None and found["status"] == "active"


def test_a_declined_card_says_why_and_leaves_nothing_active(checkout: Checkout, chrome: webdriver.Chrome) -> None:
    """4000 0000 0000 9995: "insufficient funds" on the page; the payment ends failed, no enrollment."""
    party = new_party(checkout)
    open_page(chrome, checkout.page, "customer")
    pay_with(chrome, INSUFFICIENT_FUNDS)
    text = payment_state(chrome, "declined", "enrolled", "error")
    assert text == "Payment declined: Your card has insufficient funds.", text
    settled(checkout, party, 0, "failed")  # Stripe's payment_intent.payment_failed, through the worker
    assert enrollment(checkout, party) is None
    assert checkout.db.enrollments.count_documents({"customerId": party.customer, "status": "active"}) == 0


def test_the_history_filters_refunds_and_downloads_as_csv(
    checkout: Checkout, chrome: webdriver.Chrome, downloads: Path
) -> None:
    """A paid and a declined payment: the status filter shows each alone; the refund makes the paid one
    refunded and cancels its enrollment; the CSV export downloads the customer's payments, refund included."""
    party = new_party(checkout, services=2)
    paid = paid_through_the_api(checkout, party, 0)
    declined = paid_through_the_api(checkout, party, 1, card="pm_card_chargeCustomerFail")
    settled(checkout, party, 0, "completed")
    settled(checkout, party, 1, "failed")
    open_page(chrome, checkout.page, "customer")

    def listed() -> dict[str, str]:
        """Each listed payment's status, read in one go (the page redraws the rows as it reloads them)."""
        rows = chrome.execute_script(
            "return [...document.querySelectorAll('#history-rows tr')].map(r => [r.dataset.payment, r.dataset.status])"
        )
        return {str(intent): str(status) for intent, status in rows}

    WebDriverWait(chrome, 10).until(lambda b: listed() == {paid: "completed", declined: "failed"})
    for status, intent in (("completed", paid), ("failed", declined)):
        chrome.find_element(By.CSS_SELECTOR, f'#status-filter option[value="{status}"]').click()
        only = {intent: status}
        wait_for(lambda: listed() == only, 10, f"only the {status} one")  # noqa: B023 - called at once

    chrome.find_element(By.CSS_SELECTOR, '#status-filter option[value=""]').click()
    WebDriverWait(chrome, 10).until(lambda b: len(listed()) == 2)
    chrome.find_element(By.CSS_SELECTOR, f'#history-rows tr[data-payment="{paid}"] button.refund').click()
    refunded = settled(checkout, party, 0, "refunded")
    assert refunded["amountRefunded"] == 49900
    WebDriverWait(chrome, 15).until(lambda b: listed().get(paid) == "refunded")
    assert enrollment(checkout, party, 0)["status"] == "cancelled"  # type: ignore[index]

    [path] = downloaded(chrome, downloads, "export-csv")
    assert path.name == f"payments-{datetime.now(UTC):%Y%m%d}.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    by_intent = {row["paymentId"]: row for row in rows}
    assert set(by_intent) == {paid, declined}
    assert (by_intent[paid]["status"], by_intent[paid]["amount"], by_intent[paid]["amountRefunded"]) == (
        "refunded",
        "499.00",
        "499.00",
    )
    assert by_intent[declined]["status"] == "failed" and by_intent[declined]["currency"] == "INR"


def test_the_specialists_statistics_are_drawn(checkout: Checkout, chrome: webdriver.Chrome, downloads: Path) -> None:
    """The specialist's earnings: the totals, a bar for this month in the revenue chart, the CSV."""
    party = new_party(checkout, services=2)
    for service in (0, 1):
        paid_through_the_api(checkout, party, service)
        settled(checkout, party, service, "completed")
    open_page(chrome, checkout.page, "specialist")
    month = f"{datetime.now(UTC):%Y-%m}"
    bar = WebDriverWait(chrome, 15).until(
        lambda b: b.find_element(By.CSS_SELECTOR, f'#revenue-chart svg[data-currency="INR"] rect[data-month="{month}"]')
    )
    assert bar.get_attribute("data-net") == str(2 * 49900)
    assert float(str(bar.get_attribute("height"))) > 50
    [total] = chrome.find_elements(By.CSS_SELECTOR, "#totals tr")
    assert total.find_elements(By.TAG_NAME, "td")[1].text == "2"
    [path] = downloaded(chrome, downloads, "statistics-csv")
    assert path.name == f"statistics-{datetime.now(UTC):%Y%m%d}.csv"
    [row] = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert (row["month"], row["currency"], row["count"]) == (month, "INR", "2"), row


def test_an_origin_cors_does_not_list_is_refused_by_the_browser(checkout: Checkout, chrome: webdriver.Chrome) -> None:
    """The same page from http://localhost (CORS_ORIGINS names 127.0.0.1 only): every call is refused by
    the browser, the page says so, and nothing is created."""
    party = new_party(checkout)
    seen = len(access_log(checkout))
    open_page(chrome, checkout.foreign_page, "customer")
    assert "could not be reached" in error_text(chrome)  # the history, refused
    chrome.execute_script("document.getElementById('error').hidden = true")
    pay_with(chrome, CARD)
    assert payment_state(chrome, "error", "enrolled", "declined") == "The payment could not be made."
    assert "CORS" in error_text(chrome)
    time.sleep(0.5)
    assert checkout.db.payments.count_documents({"customerId": party.customer}) == 0
    # The browser asked first (a preflight, refused) and never sent the calls themselves.
    calls = {(line["method"], line["path"], line["status"]) for line in access_log(checkout)[seen:]}
    assert calls == {
        ("OPTIONS", "/api/payments/history/customer", 400),
        ("OPTIONS", "/api/payments/create-intent", 400),
    }, calls


def test_the_apis_own_failure_reaches_the_page_with_its_request_id(
    checkout: Checkout, chrome: webdriver.Chrome
) -> None:
    """MongoDB stopped: the history's call fails on the API (500 internal_error). The page shows the API's
    error and its request id (the one the ingress logged the traceback under), not a refused call."""
    new_party(checkout)
    open_page(chrome, checkout.page, "customer")
    WebDriverWait(chrome, 10).until(lambda b: b.find_element(By.ID, "history").is_displayed())
    checkout.stack.stop_part("mongo")
    try:
        chrome.find_element(By.CSS_SELECTOR, '#status-filter option[value="completed"]').click()
        text = error_text(chrome, timeout=30)
        found = re.search(r"\(500 internal_error; request ([0-9a-f]{32})\)$", text)
        assert found, text
        log = checkout.stack.children["ingress"].log_path.read_text()
        assert f"unhandled error (request {found[1]})" in log
    finally:
        checkout.stack.restart_part("mongo")
        wait_for(lambda: httpx.get(checkout.stack.urls["ingress"] + "/api/webhooks/health").status_code == 200, 30)
