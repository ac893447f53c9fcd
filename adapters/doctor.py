"""What ``payments-ops doctor`` asks the outside world: Stripe (or the local stand-in), the ingress,
Redis and MongoDB, the workers through the queue, and SMTP (the ``Doctor…`` ports of ``usecases.ports``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pymongo.database import Database

from adapters.indexes import ensure_all_indexes
from adapters.mailer import Mailer
from adapters.mongo import Doc
from adapters.probe import PROBE_QUEUE, new_probe_id, probe_answer, probe_message
from adapters.queue import Broker, send
from adapters.queue_health import QueueHealth
from adapters.settings import Settings
from adapters.stripe_gateway import build_client
from domain.doctor import Endpoint, IndexSpec

STRIPE_API = "https://api.stripe.com"
#: Seconds any one request of the doctor may take.
TIMEOUT = 10.0
#: Where the local Stripe (devstack/localstripe_server.py) lists its registered webhooks.
LOCAL_WEBHOOKS = "/_config/webhooks"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """Status, headers and body of a GET; an HTTP error's too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return int(answer.status), answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.headers, error.read()


def _answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 (an API that does not answer at all is not the local Stripe:
    the checks that ask it then fail naming the error)."""
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


class StripeSide:
    """Stripe's webhook endpoints API, or the local Stripe's ``/_config/webhooks`` when
    ``STRIPE_API_BASE`` names a stand-in that answers there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = (settings.stripe_api_base or STRIPE_API).rstrip("/")
        self.local = settings.stripe_api_base is not None and _answers(self.base + LOCAL_WEBHOOKS)
        self.where = (
            f"the local Stripe's {LOCAL_WEBHOOKS} at {self.base}" if self.local else "Stripe's webhook endpoints API"
        )
        self.client = build_client(settings)

    def webhook_endpoints(self) -> list[Endpoint]:
        if self.local:
            _, _, body = _get(self.base + LOCAL_WEBHOOKS)
            return [
                Endpoint(str(w["url"]), tuple(w["events"] or ["*"]), True, w.get("secretSha256"))
                for w in json.loads(body)["data"]
            ]
        listed = self.client.v1.webhook_endpoints.list(params={"limit": 100})
        return [Endpoint(e.url, tuple(e.enabled_events), e.status == "enabled") for e in listed.data]

    def create_command(self, url: str, handled: Collection[str]) -> str:
        if self.local:
            return (f"register it: `curl -d url={url} -d secret=$STRIPE_WEBHOOK_SECRET "
                    f"{self.base}{LOCAL_WEBHOOKS}/payments-pipeline` (make run does it at start)")  # fmt: skip
        return (f"in Stripe's dashboard (Developers → Webhooks) add or edit the endpoint for {url} with the "
                f"{len(handled)} types of docs/api.md#the-webhook, or `stripe webhook_endpoints create --url {url} "
                "-d 'enabled_events[]=payment_intent.succeeded' …` (one -d per type); "
                "its secret goes in STRIPE_WEBHOOK_SECRET")  # fmt: skip

    def undelivered_events(self, types: Collection[str], since: datetime) -> int | None:
        if self.local:  # localstripe keeps no delivery record
            return None
        params: Any = {"delivery_success": False, "created": {"gte": int(since.timestamp())},
                                  "types": sorted(types), "limit": 100}  # fmt: skip
        return len(self.client.v1.events.list(params=params).data)

    def clock_skew(self) -> float:
        """Stripe's Date header minus the middle of our request (Date has whole seconds: ±0.5 s more)."""
        began = time.time()
        _, headers, _ = _get(
            self.base + "/v1/events?limit=1", {"Authorization": f"Bearer {self.settings.stripe_secret_key}"}
        )
        ended = time.time()
        date = headers.get("Date")
        if not date:
            raise RuntimeError(f"{self.base} answered without a Date header")
        return parsedate_to_datetime(date).timestamp() - (began + ended) / 2


class WebhookPoster:
    def post_signed(self, url: str, body: bytes, secret: str) -> int:
        stamp = int(time.time())
        digest = hmac.new(secret.encode(), b"%d.%s" % (stamp, body), hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={digest}"}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


class _Collection:
    def __init__(self, found: list[IndexSpec], name: str) -> None:
        self.found, self.name = found, name

    def create_index(self, keys: list[tuple[str, int]], **options: Any) -> str:
        name = options.get("name") or "_".join(f"{field}_{direction}" for field, direction in keys)
        self.found.append(IndexSpec(self.name, name, tuple((field, int(direction)) for field, direction in keys)))
        return str(name)


class _IndexList:
    """Stands in for a database and writes down each ``create_index`` the code makes."""

    def __init__(self) -> None:
        self.found: list[IndexSpec] = []

    def __getattr__(self, name: str) -> _Collection:
        return _Collection(self.found, name)

    __getitem__ = __getattr__


def expected_indexes() -> list[IndexSpec]:
    """Every index ``ensure_all_indexes`` creates, read off the code itself."""
    listing = _IndexList()
    ensure_all_indexes(listing)  # type: ignore[arg-type]
    return listing.found


def _error(call: Any) -> str | None:
    try:
        call()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


class Stores:
    def __init__(self, db: Database[Doc], broker: Broker) -> None:
        self.db, self.broker = db, broker

    def redis_error(self) -> str | None:
        return _error(self.broker.client.ping)

    def mongo_error(self) -> str | None:
        return _error(lambda: self.db.command("ping"))

    def expected_indexes(self) -> list[IndexSpec]:
        return expected_indexes()

    def present_indexes(self) -> dict[str, dict[str, tuple[tuple[str, int], ...]]]:
        present: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {}
        for name in {spec.collection for spec in expected_indexes()}:
            present[name] = {
                index: tuple((field, int(direction)) for field, direction in info["key"])
                for index, info in self.db[name].index_information().items()
            }
        return present


class QueueSide:
    """The workers as Redis shows them: Dramatiq's heartbeats, and the probe's round trip."""

    def __init__(self, broker: Broker, db: Database[Doc]) -> None:
        self.broker, self.db = broker, db
        self.heartbeat_timeout_seconds = broker.heartbeat_timeout / 1000

    def live_workers(self) -> int:
        return QueueHealth(self.broker).workers_alive()

    def send_probe(self) -> str:
        self.broker.declare_queue(PROBE_QUEUE)
        probe_id = new_probe_id()
        send(self.broker, probe_message(probe_id))
        return probe_id

    def probe_answer(self, probe_id: str) -> str | None:
        return probe_answer(self.broker.client, probe_id)

    def probe_refusal(self, probe_id: str) -> str | None:
        found = self.db.job_failures.find_one({"messageId": probe_id}, {"error": 1})
        return str(found["error"]) if found else None


class MailSide:
    def __init__(self, settings: Settings) -> None:
        self.mailer = Mailer.from_settings(settings)
        target = self.mailer.target
        self.target = f"{target.host}:{target.port}" if target else None

    def login(self) -> bool:
        return self.mailer.check_login()
