"""The ops dashboard in real headless Chromium: log in, see the failures, replay one through the confirmation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.test_dashboard import NAME, broken_failures
from tests.integration.test_ops_api import TOKEN
from workers.composition import Worker

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "dashboard.png"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]  # a first run may install chromium with apt


def arrived(browser: webdriver.Chrome, where: Callable[[str], bool]) -> None:
    """Wait until the page a click led to is the one expected (a form's navigation finishes after click())."""
    WebDriverWait(browser, 15).until(
        lambda b: where(b.current_url) and b.execute_script("return document.readyState") == "complete"
    )


def rows(browser: webdriver.Chrome) -> set[str]:
    """Ids of the failures the dashboard lists."""
    found = browser.find_elements(By.CSS_SELECTOR, "tr[data-failure]")
    return {str(row.get_attribute("data-failure")) for row in found}


def test_log_in_see_the_failures_replay_one_and_see_it_gone(
    browser: webdriver.Chrome, served: str, worker: Worker, db: Any
) -> None:
    """Two dead emails; the browser logs in, replays one after the confirmation page, and only the other is left."""
    first, second = broken_failures(db, worker, 2)
    browser.get(f"{served}/ops")
    assert browser.current_url == f"{served}/ops/login"
    browser.find_element(By.ID, "name").send_keys(NAME)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    arrived(browser, lambda url: url == f"{served}/ops")
    [cookie] = browser.get_cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ops")
    assert rows(browser) == {first, second}

    browser.find_element(By.CSS_SELECTOR, f'tr[data-failure="{first}"] button').click()
    arrived(browser, lambda url: url != f"{served}/ops")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Replay 1 failure?"
    assert db.job_failures.find_one({"state": "replayed"}) is None
    browser.find_element(By.XPATH, "//button[normalize-space()='Replay 1']").click()
    arrived(browser, lambda url: url.startswith(f"{served}/ops?done=replay"))
    assert "Replayed 1 failure(s)." in browser.find_element(By.CLASS_NAME, "notice").text
    assert rows(browser) == {second}
    assert db.job_failures.find_one({"state": "replayed"})["replayedBy"] == NAME
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000


def test_a_form_posted_without_its_csrf_token_is_refused(browser: webdriver.Chrome, served: str, db: Any) -> None:
    """The reconcile form with its hidden CSRF field removed is answered 403, and nothing runs."""
    browser.get(f"{served}/ops/login")
    browser.find_element(By.ID, "name").send_keys(NAME)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    arrived(browser, lambda url: url == f"{served}/ops")
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/ops/reconcile']")
    browser.execute_script("arguments[0].querySelector('input[name=csrf]').remove()", form)
    form.find_element(By.TAG_NAME, "button").click()
    arrived(browser, lambda url: url == f"{served}/ops/reconcile")
    assert browser.find_element(By.TAG_NAME, "h1").text == "403"
    assert "did not come from this dashboard" in browser.page_source
    assert db.ops_audit.count_documents({}) == 0
