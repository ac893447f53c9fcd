"""devstack.checkout_page: the page's files, the compiled client and /config.json; nothing else."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.checkout_page import CheckoutServer, write_config


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<!doctype html><title>checkout</title>")
    (tmp_path / "page" / "app.js").write_text("export {};")
    (tmp_path / "client" / "dist").mkdir(parents=True)
    (tmp_path / "client" / "dist" / "paymentAPI.js").write_text("export const api = 1;")
    (tmp_path / "client" / "package.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    config = tmp_path / "checkout.json"
    write_config(config, "http://127.0.0.1:5001", "http://127.0.0.1:9/js.stripe.com/v3/", "pk_test_x", [], [])
    server = CheckoutServer(("127.0.0.1", 0), config, page=tmp_path / "page", client=tmp_path / "client")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1], config
    server.shutdown()
    server.server_close()
    thread.join(5)


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """``path`` sent as written (no client-side normalisation of ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_the_page_the_client_and_the_config_are_served(page: tuple[int, Path]) -> None:
    port, config = page
    status, headers, body = get(port, "/")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8") and b"checkout" in body
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    status, headers, body = get(port, "/payments-api/paymentAPI.js")
    assert (status, headers["content-type"], body) == (200, "text/javascript; charset=utf-8", b"export const api = 1;")
    assert get(port, "/app.js")[0] == 200
    assert json.loads(get(port, "/config.json")[2])["apiBaseUrl"] == "http://127.0.0.1:5001"
    write_config(config, "http://127.0.0.1:6001", "http://127.0.0.1:9/js.stripe.com/v3/", "pk_test_x", [], [])
    assert json.loads(get(port, "/config.json")[2])["apiBaseUrl"] == "http://127.0.0.1:6001"  # read per request
    assert get(port, "/", method="HEAD")[:1] == (200,)


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/payments-api/../package.json",
        "/payments-api/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/nope.js",
    ],
)
def test_nothing_outside_the_page_and_the_build_is_served(page: tuple[int, Path], path: str) -> None:
    assert get(page[0], path)[0] == 404


def test_only_get_and_head(page: tuple[int, Path]) -> None:
    assert get(page[0], "/", method="POST")[0] == 501
