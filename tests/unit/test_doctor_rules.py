"""The doctor's rules (``domain.doctor``), its use case over dumb ports, and the index list it reads off the code."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import mongomock
import pytest

from adapters.doctor import expected_indexes
from adapters.indexes import ensure_all_indexes
from domain import doctor
from domain.doctor import Endpoint, Finding, IndexSpec, SecretFacts
from usecases import doctor as run_doctor
from usecases.handlers import SUBSCRIBED
from usecases.ports import DoctorPorts

URLS = run_doctor.webhook_urls("https://pay.example.com")


@pytest.mark.parametrize(
    ("app_env", "key", "ok"),
    [
        ("production", "sk_live_abc", True),
        ("production", "rk_live_abc", True),
        ("production", "sk_test_abc", False),
        ("development", "sk_test_abc", True),
        ("development", "sk_live_abc", False),
        ("test", "rk_live_abc", False),
    ],
)
def test_keys_and_app_env(app_env: str, key: str, ok: bool) -> None:
    finding = doctor.keys_agree(app_env, key)
    assert finding.ok is ok
    assert (finding.fix is None) is ok
    assert "abc" not in finding.found  # never more of a key than its mode


def test_webhook_urls_are_the_path_and_its_alias_or_the_url_given() -> None:
    assert URLS == (
        "https://pay.example.com/api/webhooks/stripe",
        "https://pay.example.com/api/payments/webhooks/stripe",
    )
    given = "https://pay.example.com/api/payments/webhooks/stripe"
    assert run_doctor.webhook_urls(given + "/") == (given,)


def endpoint_finding(*endpoints: Endpoint) -> Finding:
    return doctor.endpoint_covers(list(endpoints), URLS, SUBSCRIBED, "Stripe", "create it")


def test_an_endpoint_for_the_alias_sending_everything_passes() -> None:
    assert endpoint_finding(Endpoint(URLS[1].upper() + "/", ("*",))).ok


def test_missing_disabled_or_partial_endpoints_fail_with_the_fix() -> None:
    missing = endpoint_finding(Endpoint("https://other.example.com/api/webhooks/stripe", ("*",)))
    assert not missing.ok and "no endpoint for" in missing.found and missing.fix == "create it"
    disabled = endpoint_finding(Endpoint(URLS[0], ("*",), enabled=False))
    assert not disabled.ok and "disabled" in disabled.found
    partial = endpoint_finding(Endpoint(URLS[0], tuple(sorted(SUBSCRIBED - {"refund.failed"}))))
    assert not partial.ok and partial.found.endswith("does not send 1 handled types: refund.failed")
    both = endpoint_finding(Endpoint(URLS[0], ("*",), enabled=False), Endpoint(URLS[0], tuple(SUBSCRIBED)))
    assert both.ok


@pytest.mark.parametrize(
    ("facts", "ok", "words"),
    [
        (SecretFacts((200, 200), 400, True), True, "the endpoint signs with one of them"),
        (SecretFacts((200,), 400, None, 0), True, "cannot be read from Stripe; Stripe delivered every"),
        (SecretFacts((200, 400), 400, True), False, "secret 2 of 2"),
        (SecretFacts((200,), 200, None), False, "accepted a test event signed with a random secret"),
        (SecretFacts((200,), 400, False), False, "signs with another one"),
        (SecretFacts((200,), 400, None, 3), False, "3 handled events of the last day not delivered"),
    ],
)
def test_secret_findings(facts: SecretFacts, ok: bool, words: str) -> None:
    finding = doctor.secrets_verify(facts, URLS[0])
    assert finding.ok is ok and words in finding.found


def test_missing_indexes_by_name_and_keys() -> None:
    expected = [IndexSpec("payments", "a", (("x", 1),)), IndexSpec("payments", "b", (("y", -1),))]
    assert doctor.missing_indexes(expected, {"payments": {"a": (("x", 1),), "b": (("y", -1),)}}) == []
    assert doctor.missing_indexes(expected, {"payments": {"a": (("x", 1),), "b": (("y", 1),)}}) == ["payments.b"]
    assert doctor.missing_indexes(expected, {}) == ["payments.a", "payments.b"]


def test_the_index_list_is_what_ensure_all_indexes_creates() -> None:
    db: Any = mongomock.MongoClient()["doctor"]
    ensure_all_indexes(db)
    made = {
        (name, index, tuple((f, int(d)) for f, d in info["key"]))
        for name in db.list_collection_names()
        for index, info in db[name].index_information().items()
        if index != "_id_"
    }
    assert {(s.collection, s.name, s.keys) for s in expected_indexes()} == made


def test_clock_within_and_past_the_tolerance() -> None:
    assert doctor.clock_agrees(-29.0, "Stripe").ok
    late = doctor.clock_agrees(31.0, "Stripe")
    assert not late.ok and "+31.0 s" in late.found and "NTP" in str(late.fix)
    assert doctor.CLOCK_TOLERANCE_SECONDS < 300


class Stripe:
    where = "the fake Stripe"

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints

    def webhook_endpoints(self) -> list[Endpoint]:
        return self.endpoints

    def create_command(self, url: str, handled: object) -> str:
        return f"create {url}"

    def undelivered_events(self, types: object, since: datetime) -> int | None:
        return None

    def clock_skew(self) -> float:
        raise ConnectionError("Stripe is away")


class Webhook:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def post_signed(self, url: str, body: bytes, secret: str) -> int:
        return 200 if secret == self.secret else 400


class Stores:
    def redis_error(self) -> str | None:
        return None

    def mongo_error(self) -> str | None:
        return None

    def expected_indexes(self) -> list[IndexSpec]:
        return [IndexSpec("payments", "a", (("x", 1),))]

    def present_indexes(self) -> dict[str, dict[str, tuple[tuple[str, int], ...]]]:
        return {"payments": {"a": (("x", 1),)}}


class Queue:
    heartbeat_timeout_seconds = 30.0

    def __init__(self, answer_after: int | None) -> None:
        self.answer_after, self.asked = answer_after, 0

    def live_workers(self) -> int:
        return 1

    def send_probe(self) -> str:
        return "probe_0000000000000000"

    def probe_answer(self, probe_id: str) -> str | None:
        self.asked += 1
        return "worker-1" if self.answer_after is not None and self.asked > self.answer_after else None

    def probe_refusal(self, probe_id: str) -> str | None:
        return None


class Mail:
    target: str | None = "smtp.example.com:587"

    def login(self) -> bool:
        return True


def ports(queue: Queue) -> DoctorPorts:
    ticks = itertools.count()
    return DoctorPorts(
        stripe=Stripe([Endpoint(URLS[0], ("*",))]),
        webhook=Webhook("whsec_right"),
        stores=Stores(),
        queue=queue,
        mail=Mail(),
        sleep=lambda seconds: None,
        monotonic=lambda: float(next(ticks)),  # one second a look
    )


def config(secrets: tuple[str, ...] = ("whsec_right",)) -> run_doctor.DoctorConfig:
    return run_doctor.DoctorConfig("production", "sk_live_x", URLS, secrets, probe_wait_seconds=5)


def test_a_check_that_raises_fails_alone_and_the_others_still_run() -> None:
    findings = run_doctor.run(config(), ports(Queue(answer_after=2)))
    assert [f.check for f in findings] == [
        "keys", "webhook endpoint", "webhook secret", "redis and mongodb", "workers", "queue signing", "smtp", "clock",
    ]  # fmt: skip
    assert [f.check for f in findings if not f.ok] == ["clock"]
    assert findings[-1].found == "ConnectionError: Stripe is away"


def test_the_probe_is_awaited_until_its_deadline() -> None:
    queue = Queue(answer_after=None)
    finding = run_doctor.run(config(), ports(queue))[5]
    assert not finding.ok and "not run within 5 s" in finding.found
    assert queue.asked == 5


def test_a_second_secret_the_ingress_refuses_is_named() -> None:
    finding = run_doctor.run(config(("whsec_right", "whsec_old")), ports(Queue(0)))[2]
    assert not finding.ok and "secret 2 of 2" in finding.found


def test_no_public_url_fails_both_webhook_checks() -> None:
    bare = run_doctor.DoctorConfig("production", "sk_live_x", (), ("whsec_right",))
    findings = run_doctor.run(bare, ports(Queue(0)))
    assert [f.ok for f in findings[1:3]] == [False, False]
    assert all("PUBLIC_URL" in str(f.fix) for f in findings[1:3])


@pytest.mark.parametrize("wait", ["-1", "0", "nan", "inf", "soon", "301"])
def test_a_bad_wait_is_bad_usage(wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    from payments_ops import cli

    assert cli.main(["doctor", "--wait", wait]) == 2
    assert "--wait: must be a number of seconds from 0.1 to 300" in capsys.readouterr().err
