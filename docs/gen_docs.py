"""Write the parts of ``docs/`` that are read off the code, so that they cannot drift from it.

    .venv/bin/python docs/gen_docs.py           # rewrite them
    .venv/bin/python docs/gen_docs.py --check   # exit 1, naming each page that is out of date

- ``docs/configuration.md``, whole: every variable ``adapters.settings.load_settings`` reads, found in
  its source (the ``_Reader`` calls, the ``Settings`` field each one fills, its default, minimum, URL
  schemes, pattern or choices) and the refusals of ``APP_ENV=production``. Only the meaning of each
  variable is written here (``MEANINGS``): ``Settings`` carries no descriptions.
- ``docs/api.md``, between its ``routes`` markers: the route table of the app ``create_app`` builds,
  and each operation of the OpenAPI schema the app serves at ``/openapi.json``.
- ``docs/architecture.md``, between its ``states`` markers: the payment state machine of ``domain.payments``.
- ``docs/data.md``, between its ``indexes`` markers: the indexes ``ensure_all_indexes`` creates (run
  against an in-memory mongomock database) and the modules that name each collection.

``tests/unit/test_docs_config.py`` runs this and fails while a page differs from what it writes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATOR = "docs/gen_docs.py"

#: A configuration that loads: what ``load_settings`` requires, nothing reachable.
SAMPLE_ENV = {
    "APP_ENV": "development",
    "STRIPE_SECRET_KEY": "sk_test_docs",
    "STRIPE_WEBHOOK_SECRET": "whsec_docs",
    "JWT_SECRET": "docs",
    "OPS_TOKEN": "docs",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "MONGODB_URI": "mongodb://127.0.0.1:1",
}

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

#: The ``_Reader`` methods ``load_settings`` reads a variable with.
READERS = frozenset({"text", "required", "integer", "url"})
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")

#: Headings of configuration.md, in order, with the variables' meanings under each. The generator
#: fails for a variable ``load_settings`` reads that is not here, and for one here it does not read.
MEANINGS: dict[str, dict[str, str]] = {
    "Service": {
        "APP_ENV": "Which rules apply. `production` adds the refusals listed under "
        "[When APP_ENV=production](#when-app_envproduction); `make run` refuses to start with it.",
        "HOST": "Address the ingress listens on (the Procfile and docker-compose.yml set `0.0.0.0`).",
        "PORT": "Port the ingress listens on.",
        "PUBLIC_URL": "The ingress's public base URL as Stripe reaches it (`https://payments.example.com`): "
        "`payments-ops doctor` checks that Stripe has a webhook endpoint for `<PUBLIC_URL>/api/webhooks/stripe` "
        "(or its alias) and posts its test events there. Unset: doctor needs `--url`, or the local stack's.",
        "LOG_LEVEL": "Level of the JSON log lines every process writes to stderr.",
    },
    "Stripe": {
        "STRIPE_SECRET_KEY": "API key for creating and reading intents, refunds and events.",
        "STRIPE_WEBHOOK_SECRET": "Signing secret of the webhook endpoint. Every secret listed is accepted, so "
        "old and new can both be set while Stripe rotates it.",
        "STRIPE_API_BASE": "Base URL of a Stripe stand-in (the local stack's localstripe). Unset: Stripe itself.",
        "STRIPE_API_VERSION": "API version sent with every request, pinned so that the payloads the handlers "
        "read do not change shape when Stripe's default moves.",
    },
    "Stores": {
        "MONGODB_URI": "The MERN app's MongoDB. Writes use majority, journaled write concern and decisions "
        "read the primary, so production wants a replica set.",
        "MONGODB_DB": "Database inside it; the collections are listed in [data.md](data.md).",
        "REDIS_URL": "Redis of the Dramatiq broker, the rate limits and the dashboard's login throttle.",
    },
    "Secrets and access": {
        "JWT_SECRET": "HS256 secret the MERN backend signs its user tokens with; the payment routes verify "
        "tokens with it.",
        "JWT_MAX_AGE_DAYS": "How far in the future a token's `exp` may be; a token valid for longer "
        "(one that never expires) is a 401.",
        "QUEUE_SIGNING_KEY": "HMAC key(s) over every queued message. The first signs, every one verifies: to "
        "rotate, put the new key first and drop the old one once nothing it signed is left (queues, "
        "failure records). Ingress, workers and `payments-ops` must share them; Redis never sees them. "
        "Unset outside production: derived from `JWT_SECRET`.",
        "OPS_TOKEN": "Bearer token of `/ops/api/*` and password of the `/ops` dashboard. Unset: both answer 404.",
        "METRICS_TOKEN": "Bearer token `/metrics` asks for. Unset: `/metrics` is open.",
    },
    "Email": {
        "SMTP_URL": "Mail server: `smtp://[user:pass@]host[:port][?starttls=1]` or `smtps://…`. Unset: "
        "every send fails and is retried until the email's retries are spent.",
        "EMAIL_FROM": "Sender of every email.",
        "OPS_EMAIL": "Recipient of the alerts for ops (payment held for review, dispute opened, refund "
        "given up). Unset: those alerts are not written.",
        "APP_BASE_URL": "Base of the links in the customers' and specialists' emails (the MERN frontend).",
    },
    "Payment rules and limits": {
        "REFUND_WINDOW_DAYS": "Days after a payment first completed during which its customer may ask for a "
        "refund (its specialist and admins may ask at any time).",
        "RATE_LIMIT_PER_MINUTE": "create-intent, confirm-payment and export calls per user and minute; beyond, "
        "429 `rate_limited`.",
        "REFUND_RATE_LIMIT_PER_MINUTE": "Refund requests per user and minute.",
        "REFUND_PAYMENT_RATE_LIMIT_PER_MINUTE": "Refund requests per payment and minute, whoever asks (counted "
        "only for callers who may see the payment).",
    },
    "HTTP edge": {
        "WEBHOOK_MAX_BYTES": "Largest webhook body; beyond, 413 `payload_too_large`. Every other route takes "
        "at most {body_cap} KiB.",
        "MAX_HEADER_BYTES": "Largest request head (request line and headers), counted as the bytes arrive: "
        "a larger one is cut off without being buffered, 431 `headers_too_large`.",
        "HEADER_TIMEOUT_SECONDS": "Time a client has to send a request's head, from connecting or from its "
        "first byte after the previous answer; beyond, 408 `request_timeout` and the connection is closed.",
        "BODY_TIMEOUT_SECONDS": "Time a client has from the end of the head to the end of the body; beyond, "
        "408 `request_timeout` and the connection is closed.",
        "CORS_ORIGINS": "Origins whose browser code (the MERN app) may call `/api/payments/…`, such as "
        "`https://app.example.com`: scheme, host and port only, as the browser sends `Origin`. They get CORS "
        "answers (a preflight's 200, their origin echoed in `Access-Control-Allow-Origin`, no credentials); "
        "any other origin gets no `Access-Control-Allow-*` header. Unset: the origin of APP_BASE_URL, and "
        "none when APP_ENV=production. The webhooks, `/ops` and `/metrics` never answer CORS.",
    },
    "Retries and sweeps": {
        "RETRY_MIN_BACKOFF_MS": "First backoff of a failed message, doubling on each retry.",
        "RETRY_MAX_BACKOFF_MS": "Longest backoff between two retries.",
        "RETRY_MAX_RETRIES": "Retries of a message before it goes to the dead letters and `job_failures` (with "
        "the defaults, about an hour after its first failure).",
        "EMAIL_MAX_RETRIES": "Retries of one email; once they are spent the notification is `failed` and its "
        "message dead-lettered.",
        "NOTIFICATION_SWEEP_SECONDS": "Period of each worker's sweeps: notifications not sent, inbox events "
        "left `received`, paid payments never activated, refund requests left `pending`, refunds whose "
        "follow-ups were not done. Work is picked up once untouched for `RETRY_MAX_BACKOFF_MS` plus this.",
        "REFUND_MAX_REQUEUES": "Times the sweep queues a refund request left `pending` again; then it is "
        "failed, its amount given back, and the requester and `OPS_EMAIL` are told.",
    },
    "Broker and worker": {
        "BROKER_HEARTBEAT_TIMEOUT_MS": "Silence after which a worker counts as dead. Every worker looks every "
        "third of this, so a dead worker's messages are back 1 to 1⅓ timeouts after it died.",
        "BROKER_MAINTENANCE_CHANCE": "Per million broker calls, how many also run Dramatiq's own queue maintenance.",
        "WORKER_PROCESSES": "Processes of `python -m workers`.",
        "WORKER_THREADS": "Threads per worker process.",
        "WORKER_PREFETCH": "Messages a worker process holds per queue, running or waiting for a thread; `0` "
        "means two per thread. Small, so a killed worker strands little.",
        "WORKER_POLL_MS": "Longest an idle consumer sleeps between polls of its empty queue, so the longest a "
        "message waits for an idle worker. A delay queue (retries waiting out their backoff) polls at most "
        "ten times less often, which bounds how late a retry starts.",
    },
}

#: Variables read outside ``Settings``: (name, the file that reads it, meaning). Each file must name it.
OTHER_VARIABLES: tuple[tuple[str, str, str], ...] = (
    (
        "PROMETHEUS_MULTIPROC_DIR",
        "adapters/metrics.py",
        "A directory shared by the ingress and the workers: each process writes its metrics there and "
        "`/metrics` adds them all up. Unset: each process counts in its own memory.",
    ),
    (
        "PAYMENTS_OPS_INGRESS",
        "payments_ops/config.py",
        "Ingress URL `payments-ops simulate` posts to (set from `var/stack.json` for the local stack).",
    ),
    ("TEST_REDIS_URL", "tests/conftest.py", "Run the tests against this Redis instead of one they start."),
    ("TEST_MONGODB_URI", "tests/conftest.py", "Run the tests against this MongoDB instead of the stand-in."),
    ("FAULT_PAYMENTS", "tests/faults/conftest.py", "Payments per fault-suite run (200 by default)."),
    ("HYPOTHESIS_PROFILE", "tests/model/test_payment_life.py", "`fuzz` makes the payment model search anew."),
    ("BENCH_SECONDS", "bench/overall.py", "Length of each load run of `make bench`."),
    ("BENCH_EVENTS", "bench/overall.py", "Messages per queue drain of `make bench`."),
    ("BENCH_RATE", "bench/overall.py", "Rate of the open-loop run of `make bench`."),
    ("BENCH_RUNS", "bench/overall.py", "Rounds of `make bench`; figures are their medians."),
    ("BENCH_CONNECTIONS", "bench/overall.py", "wrk connections of `make bench`."),
    ("BENCH_WRK_THREADS", "bench/overall.py", "wrk threads of `make bench`."),
    ("BENCH_KEEP", "bench/overall.py", "Keep the benchmark's stack directory after a successful run."),
    ("BENCH_CODE", "bench/target.py", "Measure another checkout with this harness."),
)


class DocsError(Exception):
    """The code has something the generator cannot describe (a new variable or route, a missing marker)."""


@dataclass
class Variable:
    """What ``load_settings`` does with one environment variable."""

    name: str
    field: str | None = None
    reader: str = "text"
    default: Any = None
    minimum: int | None = None
    schemes: tuple[str, ...] = ()
    required: bool = False
    required_in_production: bool = False
    listed: bool = False
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    upper: bool = False


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _literal(node: ast.expr, module: ModuleType) -> Any:
    """The value of a literal argument, or of a module constant it names."""
    if isinstance(node, ast.Name):
        return getattr(module, node.id)
    return ast.literal_eval(node)


def _reader_call(node: ast.AST) -> tuple[str, ast.Call] | None:
    """``(VARIABLE, call)`` for ``r.<reader>("VARIABLE", …)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READERS):
        return None
    first = node.args[0] if node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and _VARIABLE.fullmatch(first.value):
        return first.value, node
    return None


def _bindings(function: ast.FunctionDef) -> dict[str, set[str]]:
    """Local names of ``function`` and the variables whose values flow into them (to a fixpoint)."""
    binds: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for node in ast.walk(function):
            pairs: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(target, node.value) for target in node.targets]
            elif isinstance(node, ast.comprehension):
                pairs = [(node.target, node.iter)]
            for target, value in pairs:
                flowing = _flowing(value, binds)
                for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name)):
                    if not flowing <= binds.setdefault(name, set()):
                        binds[name] |= flowing
                        changed = True
    return binds


def _flowing(node: ast.AST, binds: Mapping[str, set[str]]) -> set[str]:
    """Variables read in ``node``, directly or through local names."""
    found: set[str] = set()
    for sub in ast.walk(node):
        read = _reader_call(sub)
        if read:
            found.add(read[0])
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            found |= binds.get(sub.id, set())
    return found


def _signature_of(method: str) -> inspect.Signature:
    from adapters.settings import _Reader

    return inspect.signature(getattr(_Reader, method))


def read_settings() -> list[Variable]:
    """Every variable ``load_settings`` reads, in the order of the ``Settings`` fields they fill."""
    import adapters.settings as module

    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    load = functions["load_settings"]
    parents = _parents(tree)
    variables: dict[str, Variable] = {}

    def note(function: ast.FunctionDef) -> None:
        binds = _bindings(function)
        for node in ast.walk(function):
            read = _reader_call(node)
            if read is not None:
                name, call = read
                var = variables.setdefault(name, Variable(name))
                parent = parents.get(call)
                if call.func.attr == "required":  # type: ignore[attr-defined]
                    conditional = isinstance(parent, ast.IfExp) and parent.body is call
                    if conditional and "production" in ast.unparse(parent.test):  # type: ignore[union-attr]
                        var.required_in_production = True
                    else:
                        var.required = True
                else:
                    method = call.func.attr  # type: ignore[attr-defined]
                    bound = _signature_of(method).bind(
                        None,
                        *(_literal(a, module) for a in call.args),
                        **{k.arg: _literal(k.value, module) for k in call.keywords if k.arg},
                    )
                    bound.apply_defaults()
                    var.reader = method
                    var.default = bound.arguments.get("default")
                    var.minimum = bound.arguments.get("minimum")
                    var.schemes = tuple(bound.arguments.get("schemes") or ())
                    var.upper = var.upper or _upper_cased(call, parents)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                flowing = _flowing(node.func.value, binds)
                if node.func.attr == "split" and [ast.unparse(a) for a in node.args] == ["','"]:
                    for name in flowing:
                        variables.setdefault(name, Variable(name)).listed = True
                pattern = getattr(module, ast.unparse(node.func.value), None)
                if isinstance(pattern, re.Pattern) and node.func.attr in ("match", "fullmatch"):
                    for name in _flowing(node.args[0], binds):
                        variables.setdefault(name, Variable(name)).pattern = pattern.pattern
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.NotIn):
                choices = ast.literal_eval(node.comparators[0])
                for name in _flowing(node.left, binds):
                    variables.setdefault(name, Variable(name)).choices = tuple(choices)

    for function in functions.values():
        note(function)
    _assign_fields(load, functions, variables)
    fields = [f.name for f in dataclasses.fields(module.Settings)]
    order = {name: i for i, name in enumerate(fields)}
    return sorted(variables.values(), key=lambda v: (order.get(v.field or "", len(order)), v.name))


def _upper_cased(call: ast.Call, parents: Mapping[ast.AST, ast.AST]) -> bool:
    """Whether the value read is upper-cased on its way to its field (``(r.text(…) or …).upper()``)."""
    node: ast.AST = call
    for _ in range(3):
        node = parents.get(node, node)
        if isinstance(node, ast.Attribute) and node.attr == "upper":
            return True
    return False


def _assign_fields(load: ast.FunctionDef, functions: Mapping[str, ast.FunctionDef], found: dict[str, Variable]) -> None:
    """The ``Settings`` field each variable fills: where it is read directly first, else through a helper."""
    binds = _bindings(load)
    call = next(
        n
        for n in ast.walk(load)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Settings"
    )
    helpers: list[tuple[str, set[str]]] = []
    for keyword in call.keywords:
        assert keyword.arg is not None
        for name in sorted(_flowing(keyword.value, binds)):
            if found[name].field is None:
                found[name].field = keyword.arg
        called = {
            n.func.id for n in ast.walk(keyword.value) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        for helper in called & set(functions):
            helpers.append((keyword.arg, {r[0] for n in ast.walk(functions[helper]) if (r := _reader_call(n))}))
    for field_name, names in helpers:
        for name in sorted(names):
            if found[name].field is None:
                found[name].field = field_name


def production_rules() -> list[str]:
    """What ``APP_ENV=production`` refuses: the message of each refusal in ``_check_production``, as printed."""
    import adapters.settings as module

    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    check = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_check_production")
    parents = _parents(check)
    dicts = {
        t.id: [k.value for k in n.value.keys if isinstance(k, ast.Constant)]
        for n in ast.walk(check)
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    raises = [n for n in ast.walk(check) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and n.exc.args]
    rules: list[str] = []
    for node in sorted(raises, key=lambda n: n.lineno):
        assert isinstance(node.exc, ast.Call)
        message = node.exc.args[0]
        parts: list[str] = []
        loops: list[str] = []
        for piece in message.values if isinstance(message, ast.JoinedStr) else [message]:
            if isinstance(piece, ast.Constant):
                parts.append(str(piece.value))
            elif isinstance(piece, ast.FormattedValue) and isinstance(piece.value, ast.Name):
                name = piece.value.id
                if hasattr(module, name):
                    parts.append(str(getattr(module, name)))
                else:
                    parts.append("{" + name + "}")
                    loops.append(_loop_over(name, parents, node, dicts))
        rule = f"`{''.join(parts)}`"
        if loops:
            rule += ", " + "; ".join(loops)
        rules.append(rule)
    return rules


def _missing_message(name: str) -> str:
    """What ``_Reader.required`` says when ``name`` is not set."""
    import adapters.settings as module

    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    reader = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Reader")
    required = next(n for n in reader.body if isinstance(n, ast.FunctionDef) and n.name == "required")
    raised = next(n for n in ast.walk(required) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call))
    assert isinstance(raised.exc, ast.Call)
    message = raised.exc.args[0]
    pieces = message.values if isinstance(message, ast.JoinedStr) else [message]
    return "".join(
        str(piece.value) if isinstance(piece, ast.Constant) else name
        for piece in pieces
        if isinstance(piece, ast.Constant | ast.FormattedValue)
    )


def _loop_over(name: str, parents: Mapping[ast.AST, ast.AST], at: ast.AST, dicts: Mapping[str, list[Any]]) -> str:
    """What a loop variable named in a refusal runs over: "for `{name}` each of `A`, `B` (…)"."""
    node: ast.AST | None = at
    test = ""
    while node is not None:
        if isinstance(node, ast.If) and not test:
            test = ast.unparse(node.test)
        if isinstance(node, ast.For) and name in {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}:
            source = node.iter
            owner = (
                ast.unparse(source.func.value)
                if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute)
                else ""
            )
            keys = ", ".join(f"`{k}`" for k in dicts.get(owner, []))
            return f"`{{{name}}}` being each of {keys}" + (" that is set" if "is not None" in test else "")
        node = parents.get(node)
    return f"`{{{name}}}`"


def _tick(text: str, names: set[str]) -> str:
    """Variable names in backticks, outside the code spans already there."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = _VARIABLE.sub(lambda m: f"`{m.group()}`" if m.group() in names else m.group(), parts[i])
    return "`".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(var: Variable) -> str:
    if var.required:
        return "**required**"
    if var.default is None:
        shown = "unset"
    elif isinstance(var.default, int):
        shown = f"`{var.default}`"
    else:
        shown = f"`{var.default}`"
    return f"{shown}; required in production" if var.required_in_production else shown


def _accepted(var: Variable) -> str:
    if var.reader == "integer":
        kind = f"integer ≥ {var.minimum}"
    elif var.reader == "url":
        kind = "URL: " + ", ".join(f"`{s}://`" for s in var.schemes)
    elif var.choices:
        kind = "one of " + ", ".join(f"`{c}`" for c in var.choices)
    elif var.pattern:
        kind = f"matches `{var.pattern}`"
    else:
        kind = "text"
    if var.upper:
        kind += ", upper-cased"
    if var.listed:
        return "comma-separated list" if kind == "text" else f"comma-separated; each {kind}"
    return kind


def render_configuration() -> str:
    """docs/configuration.md."""
    from adapters.settings import consumer_environment, load_settings
    from ingress.body_limit import DEFAULT_MAX_BYTES
    from payments_ops.config import SERVICE_VARIABLES

    variables = read_settings()
    by_name = {v.name: v for v in variables}
    described = {name: group for group, entries in MEANINGS.items() for name in entries}
    missing = sorted(set(by_name) - set(described))
    unread = sorted(set(described) - set(by_name))
    if missing or unread:
        raise DocsError(f"MEANINGS lacks {missing}, names variables no longer read {unread}")
    values = {"body_cap": DEFAULT_MAX_BYTES // 1024}
    names = set(by_name)
    lines = [
        f"<!-- Generated by {GENERATOR} from adapters/settings.py. Do not edit: change the code (or the",
        f"     meanings in {GENERATOR}) and run `.venv/bin/python {GENERATOR}`. -->",
        "",
        "# Configuration",
        "",
        "Every process (the ingress, the workers, `payments-ops`) reads the same variables from its",
        "environment, or from a `.env` file in its working directory (`KEY=value` lines; `#` comments,",
        "`export` and quotes allowed; the environment wins). `adapters.settings.load_settings` checks all",
        "of them at start-up: a missing or malformed value stops the process with one line naming the",
        "variable (`configuration error: …`) and exit code 2. `.env.example` is a starting point.",
        "",
        "`payments-ops` uses the local stack of `make run` (`var/stack.json`) only when none of "
        + ", ".join(f"`{n}`" for n in SERVICE_VARIABLES)
        + " is set.",
        "",
        "The tables below are read off `load_settings`: *accepted* is what it checks, *field* the",
        "`Settings` attribute the code uses.",
    ]
    for group, entries in MEANINGS.items():
        lines += ["", f"## {group}", "", "| variable | default | accepted | field | meaning |", "|---|---|---|---|---|"]
        for var in variables:
            if var.name in entries:
                meaning = _tick(entries[var.name].format(**values), names)
                cells = [f"`{var.name}`", _default(var), _accepted(var), f"`{var.field}`", meaning]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## When APP_ENV=production",
        "",
        "On top of the checks above, `load_settings` refuses these, each with the line shown:",
        "",
    ]
    lines += [f"- `{_missing_message(v.name)}`" for v in variables if v.required_in_production]
    lines += [f"- {rule}" for rule in production_rules()]
    sample = load_settings(SAMPLE_ENV, dotenv=None)
    derived = consumer_environment(sample)
    lines += [
        "",
        "## Derived for Dramatiq",
        "",
        "`python -m workers` hands `WORKER_PREFETCH` and `WORKER_POLL_MS` to Dramatiq, which reads them",
        "from the environment when it is imported, as " + " and ".join(f"`{k}`" for k in derived) + ".",
        "",
        "## Read outside `Settings`",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
    ]
    for name, path, meaning in OTHER_VARIABLES:
        if name not in (ROOT / path).read_text():
            raise DocsError(f"{path} no longer reads {name}")
        lines.append(f"| `{name}` | `{path}` | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------

#: Routes the OpenAPI schema leaves out: (method, path as the app declares it) -> (auth, what it does).
UNDOCUMENTED: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/openapi.json"): ("none", "This API's OpenAPI 3.1 schema, from which this page's operations are written."),
    ("GET", "/metrics"): ("`METRICS_TOKEN` when set", "Prometheus text: the service's counters and the queue depths."),
    ("GET", "/ops/api/queues"): ("ops token", "Ready, delayed, in-flight and dead messages per queue."),
    ("GET", "/ops/api/failures"): ("ops token", "Failure records, newest first, filtered and paged."),
    ("POST", "/ops/api/failures/replay"): ("ops token", "Replay failure records (a dry run unless asked)."),
    ("POST", "/ops/api/failures/purge"): ("ops token", "Purge failure records (a dry run unless asked)."),
    ("GET", "/ops/api/failures/{failure_id}"): ("ops token", "One failure record, its message decoded."),
    ("POST", "/ops/api/events/{event_id}/replay"): ("ops token", "Queue a stored Stripe event again."),
    ("POST", "/ops/api/reconcile"): ("ops token", "Reconcile with Stripe now."),
    ("GET", "/ops/api/stuck"): ("ops token", "Dead workers' messages and unfinished inbox events."),
    ("POST", "/ops/api/stuck/requeue"): ("ops token", "Requeue them."),
    ("GET", "/ops/api/reviews"): ("ops token", "Payments held for review."),
    ("POST", "/ops/api/reviews/{payment_id}/{action:str}"): (
        "ops token",
        "Resolve a review (activate, refund, dismiss).",
    ),
    ("GET", "/ops/api/jobs/{job_id}"): ("ops token", "Progress of a background replay."),
    ("GET", "/ops/api/payments"): ("ops token", "Find payments by `pi_…`, `_id`, customer id or email (50 newest)."),
    ("GET", "/ops/api/payments/{payment_id}"): ("ops token", "A payment's whole story, with its diagnosis."),
    ("GET", "/ops/payments"): ("dashboard session", "Payment search results."),
    ("GET", "/ops/payments/{payment_id}"): ("dashboard session", "A payment's page: timeline, diagnosis, fixes."),
    ("GET", "/ops/api/success-metrics"): (
        "ops token",
        "The success metrics over `?window=1h|24h|7d|30d` (docs/success-metrics.md).",
    ),
    ("GET", "/ops/metrics"): ("dashboard session", "The success metrics against their targets, a chart each."),
    ("GET", "/ops"): ("dashboard session", "The dashboard: queues, failures, recent events, reviews."),
    ("GET", "/ops/login"): ("none", "Login form (name and ops token)."),
    ("POST", "/ops/login"): ("none (throttled)", "Log in; sets the session cookie."),
    ("POST", "/ops/logout"): ("dashboard session", "Log out; ends the session on the server."),
    ("POST", "/ops/failures/replay"): ("dashboard session", "Replay, after a confirmation page showing the dry run."),
    ("POST", "/ops/failures/purge"): ("dashboard session", "Purge, after a confirmation page showing the dry run."),
    ("GET", "/ops/failures/{failure_id}"): ("dashboard session", "One failure record."),
    ("POST", "/ops/events/{event_id}/replay"): ("dashboard session", "Queue a stored Stripe event again."),
    ("POST", "/ops/reconcile"): ("dashboard session", "Reconcile with Stripe now."),
    ("POST", "/ops/reviews/{payment_id}/{action:str}"): ("dashboard session", "Resolve a review."),
}

_PARAM = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def served_api() -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The app's routes (method, path; HEAD left out) and the schema it serves at ``/openapi.json``."""
    import mongomock
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from adapters.queue import build_broker
    from adapters.settings import load_settings
    from ingress.composition import create_app

    settings = load_settings(SAMPLE_ENV, dotenv=None)
    broker = build_broker(settings)
    try:
        # Nothing is reached: the lifespan (indexes) is not run, and the database is in memory.
        app = create_app(settings, broker=broker, db=mongomock.MongoClient().get_database("docs"))
        answer = TestClient(app).get("/openapi.json")
        answer.raise_for_status()
        schema: dict[str, Any] = answer.json()
        routes = [
            (method, route.path)
            for route in app.routes
            if isinstance(route, Route)
            for method in sorted(route.methods or ())
            if method != "HEAD"
        ]
    finally:
        broker.close()
    return routes, schema


def _anchor(text: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _type(schema: Mapping[str, Any]) -> str:
    """A schema in a few words."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(_schema_heading(name))})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    words = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if words == "array" and "items" in schema:
        words = f"array of {_type(schema['items'])}"
    details = []
    if "format" in schema:
        details.append(schema["format"])
    if "pattern" in schema:
        details.append(f"`{schema['pattern']}`")
    for key, sign in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in schema:
            details.append(f"{sign} {schema[key]}")
    if "default" in schema:
        details.append(f"default {schema['default']}")
    return words + (f" ({', '.join(details)})" if details else "")


def _schema_heading(name: str) -> str:
    return f"{name} (schema)"


def _fields(schema: Mapping[str, Any]) -> list[str]:
    """A field table of an object schema; the fields of a nested object as ``outer.inner``."""
    return ["| field | type | required | notes |", "|---|---|---|---|", *_field_rows(schema, "")]


def _field_rows(schema: Mapping[str, Any], prefix: str) -> list[str]:
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        notes = prop.get("description", "")
        rows.append(
            f"| `{prefix}{name}` | {_cell(_type(prop))} | {'yes' if name in required else ''} | {_cell(notes)} |"
        )
        if prop.get("type") == "object" and "properties" in prop:
            rows += _field_rows(prop, f"{prefix}{name}.")
    return rows


def _auth(operation: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    security = operation.get("security", schema.get("security", []))
    if security:
        return "JWT (`Authorization: Bearer …`)"
    headers = [p["name"] for p in operation.get("parameters", ()) if p.get("in") == "header" and p.get("required")]
    return ", ".join(f"`{h}`" for h in headers) or "none"


def render_routes() -> str:
    """The generated block of docs/api.md: every route, then every operation of the schema."""
    routes, schema = served_api()
    documented: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            documented[(method.upper(), _shape(path))] = (path, operation)
    lines = ["### Routes", "", "| method | path | auth | what it does |", "|---|---|---|---|"]
    unknown = []
    for method, path in routes:
        found = documented.get((method, _shape(path)))
        if found is not None:
            shown, operation = found
            auth = _auth(operation, schema)
            what = f"{operation['summary']} ([{operation['operationId']}](#{_anchor(operation['operationId'])}))"
        elif (method, path) in UNDOCUMENTED:
            shown = path.replace(":str}", "}")
            auth, what = UNDOCUMENTED[(method, path)]
        else:
            unknown.append(f"{method} {path}")
            continue
        lines.append(f"| {method} | `{shown}` | {auth} | {_cell(what)} |")
    gone = sorted(f"{m} {p}" for m, p in set(UNDOCUMENTED) - set(routes))
    if unknown or gone:
        raise DocsError(f"routes without a description {unknown}; described but gone {gone}")
    operations = [(m, p, op) for (m, _), (p, op) in documented.items()]
    everywhere = set.intersection(*(set(op["responses"]) for _, _, op in operations))
    sample = next(op for _, _, op in operations if everywhere <= set(op["responses"]))
    lines += [
        "",
        "### Operations",
        "",
        "Read off `/openapi.json`. Every operation may also answer:",
        "",
        "| status | when |",
        "|---|---|",
    ]
    lines += [f"| {s} | {_cell(sample['responses'][s]['description'])} |" for s in sorted(everywhere)]
    for method, path, op in operations:
        lines += [
            "",
            f"#### {op['operationId']}",
            "",
            f"`{method} {path}`: {op['summary']}. Auth: {_auth(op, schema)}.",
        ]
        params = op.get("parameters", [])
        if params:
            lines += ["", "| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
            for p in params:
                notes = _cell(p.get("description", ""))
                required = "yes" if p.get("required") else ""
                lines.append(f"| `{p['name']}` | {p['in']} | {_cell(_type(p['schema']))} | {required} | {notes} |")
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            lines += ["", f"Body: {_type(body)}" if "$ref" in body else "Body:"]
            if "$ref" not in body:
                lines += ["", *_fields(body)]
        lines += ["", "| status | answer | when |", "|---|---|---|"]
        for status, answer in sorted(op["responses"].items()):
            if status in everywhere:
                continue
            content = answer.get("content", {}).get("application/json", {}).get("schema", {})
            shape = _type(content) if "$ref" in content or "properties" not in content else "object"
            if "properties" in content or ("required" in content and "$ref" not in content):
                keys = list(content.get("properties", {})) or list(content.get("required", ()))
                shape = "`{" + ", ".join(keys) + "}`"
            others = " or ".join(f"`{media}`" for media in answer.get("content", {}) if media != "application/json")
            if others:  # a file (``text/csv``) besides, or instead of, JSON
                shape = f"{shape} or {others}" if content else others
            lines.append(f"| {status} | {_cell(shape)} | {_cell(answer['description'])} |")
    lines += ["", "### Schemas"]
    for name, component in schema["components"]["schemas"].items():
        lines += ["", f"#### {_schema_heading(name)}", ""]
        if "description" in component:
            lines += [component["description"][0].upper() + component["description"][1:] + ".", ""]
        lines += _fields(component)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------

#: Packages whose code names collections (``db.<collection>``).
CODE = ("adapters", "ingress", "usecases", "workers", "payments_ops")


def collection_users() -> dict[str, list[str]]:
    """Each collection the code names as ``db.<name>``, with the modules that do."""
    from pymongo.database import Database

    users: dict[str, set[str]] = {}
    for package in CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "db"
                    and not hasattr(Database, node.attr)
                ):
                    users.setdefault(node.attr, set()).add(str(path.relative_to(ROOT)))
    return {name: sorted(paths) for name, paths in sorted(users.items())}


def _keys(key: Iterable[tuple[str, Any]]) -> str:
    return ", ".join(f"`{name}`" + (" desc" if direction == -1 else "") for name, direction in key)


def _options(info: Mapping[str, Any]) -> str:
    found = []
    if info.get("unique"):
        found.append("unique")
    if info.get("sparse"):
        found.append("sparse")
    if "partialFilterExpression" in info:
        found.append(f"only where `{json.dumps(info['partialFilterExpression'], separators=(',', ':'))}`")
    if "expireAfterSeconds" in info:
        seconds = int(info["expireAfterSeconds"])
        if seconds == 0:
            found.append("TTL: deleted once the date has passed")
        else:
            found.append(f"TTL {seconds // 86400} days" if seconds % 86400 == 0 else f"TTL {seconds} s")
    return "; ".join(found)


def render_indexes() -> str:
    """The generated block of docs/data.md: collections, who names them, and the indexes created."""
    import mongomock

    from adapters.indexes import ensure_all_indexes

    db: Any = mongomock.MongoClient().get_database("docs")
    ensure_all_indexes(db)
    users = collection_users()
    lines = ["| collection | named in | indexes this service creates |", "|---|---|---|"]
    for name, paths in users.items():
        made = [k for k in db[name].index_information() if k != "_id_"] if name in db.list_collection_names() else []
        lines.append(
            f"| `{name}` | {', '.join(f'`{p}`' for p in paths)} | {', '.join(f'`{k}`' for k in made) or '—'} |"
        )
    lines += ["", "| collection | index | keys | options |", "|---|---|---|---|"]
    for name in sorted(db.list_collection_names()):
        for index, info in db[name].index_information().items():
            if index != "_id_":
                lines.append(f"| `{name}` | `{index}` | {_keys(info['key'])} | {_cell(_options(info))} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Payment states
# --------------------------------------------------------------------------------------------------


def render_states() -> str:
    """The generated block of docs/architecture.md: the state machine of ``domain.payments``."""
    from domain.activation import ACTIVATABLE
    from domain.payments import HOLDS_SLOT, PAID, REUSABLE, TRANSITIONS

    lines = [
        "| status | may move to | paid | holds the open slot | open for another attempt | may activate |",
        "|---|---|---|---|---|---|",
    ]
    for status, targets in TRANSITIONS.items():
        moves = ", ".join(f"`{t}`" for t in sorted(targets)) or "— (final)"
        marks = [status in PAID, status in HOLDS_SLOT, status in REUSABLE, status in ACTIVATABLE]
        lines.append(f"| `{status}` | {moves} | " + " | ".join("yes" if m else "" for m in marks) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------


def _between(page: str, block: str, text: str) -> str:
    """``text`` put between the page's markers of ``block``, replacing what was there."""
    begin = f"<!-- BEGIN GENERATED by {GENERATOR}: {block} -->"
    end = f"<!-- END GENERATED: {block} -->"
    path = DOCS / page
    current = path.read_text()
    if begin not in current or end not in current:
        raise DocsError(f"docs/{page} lacks the markers of {block!r}")
    head, rest = current.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{text}\n{end}{tail}"


def pages() -> dict[str, Callable[[], str]]:
    """Each page this writes, and how its new text is made."""
    return {
        "configuration.md": render_configuration,
        "architecture.md": lambda: _between("architecture.md", "states", render_states()),
        "api.md": lambda: _between("api.md", "routes", render_routes()),
        "data.md": lambda: _between("data.md", "indexes", render_indexes()),
    }


def stale() -> list[str]:
    """Pages whose text differs from what this would write."""
    return [
        name for name, make in pages().items() if not (DOCS / name).is_file() or (DOCS / name).read_text() != make()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the generated parts of docs/.")
    parser.add_argument("--check", action="store_true", help="only say which pages are out of date")
    args = parser.parse_args(argv)
    try:
        return _run(args.check)
    except DocsError as error:
        print(f"{GENERATOR}: {error}", file=sys.stderr)
        return 2


def _run(check: bool) -> int:
    if check:
        out_of_date = stale()
        for name in out_of_date:
            print(f"docs/{name} is out of date: run .venv/bin/python {GENERATOR}", file=sys.stderr)
        return 1 if out_of_date else 0
    for name, make in pages().items():
        text = make()
        path = DOCS / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
