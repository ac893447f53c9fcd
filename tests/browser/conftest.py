"""Real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) against the app served by uvicorn.

``make test`` installs both first (``tests/browser/install_chromium.sh``); run alone, pytest
installs them here when they are missing and it is root. Selenium is handed both paths, so
Selenium Manager never downloads a browser or a driver.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from adapters.queue import build_broker
from adapters.settings import Settings
from devstack.procs import free_port
from ingress.composition import create_app
from tests.integration.api_support import FakeGateway, api_settings
from tests.integration.conftest import worker  # noqa: F401  (the fixture, for failures made by a real worker)
from tests.integration.test_ops_api import TOKEN

INSTALL = Path(__file__).with_name("install_chromium.sh")
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100")


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver, installed with apt if missing (as root)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.geteuid() != 0:
            pytest.skip("chromium and chromium-driver are missing; install them as root with " + str(INSTALL))
        subprocess.run(["bash", str(INSTALL)], check=True, timeout=900)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium or chromedriver still missing after install_chromium.sh"
    return browser, driver


def start_chrome(chromium: tuple[str, str], downloads: Path | None = None) -> webdriver.Chrome:
    """A headless Chromium driven through Debian's chromedriver; files it downloads go to ``downloads``."""
    binary, driver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ARGS:
        options.add_argument(arg)
    if downloads is not None:
        prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        options.add_experimental_option("prefs", prefs)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(30)
    return chrome


@pytest.fixture
def browser(chromium: tuple[str, str]) -> Iterator[webdriver.Chrome]:
    """A headless Chromium driven through Debian's chromedriver."""
    chrome = start_chrome(chromium)
    yield chrome
    chrome.quit()


def serve(settings: Settings, db: Any, stripe_gateway: Any, name: str) -> Iterator[str]:
    """The app (OPS_TOKEN set, Stripe the given stand-in) under a real uvicorn on a free port; its base URL."""
    broker = build_broker(settings)
    tuned = dataclasses.replace(api_settings(settings), ops_token=TOKEN)
    app = create_app(tuned, broker=broker, db=db, stripe_gateway=stripe_gateway)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, ws="none"))
    thread = threading.Thread(target=server.run, name=f"{name}-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    broker.close()


@pytest.fixture
def served(settings: Settings, db: Any) -> Iterator[str]:
    """The app with a fake Stripe, served (``serve``)."""
    yield from serve(settings, db, FakeGateway(), "dashboard")
