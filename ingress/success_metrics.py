"""``GET /ops/api/success-metrics`` and the dashboard's ``GET /ops/metrics`` (docs/success-metrics.md).

Both read the same ``CachedMeasure`` as ``/metrics`` (at most 30 s old); the API answers its JSON,
the page draws each metric against its target with a server-rendered SVG chart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.success_metrics import DEFAULT_WINDOW, TARGETS, WINDOWS
from ingress import parse
from ingress.charts import Chart, chart
from ingress.dashboard import Dashboard, Form, Session
from ingress.ops import OpsRoutes
from usecases.success_metrics import CachedMeasure


def window_param(params: Mapping[str, str]) -> str:
    """``window`` from the query: absent → ``24h``; anything but ``1h``/``24h``/``7d``/``30d`` → 422 naming it."""
    raw = params.get("window")
    if raw is None:
        return DEFAULT_WINDOW
    if raw not in WINDOWS:
        raise parse.Invalid(f"window must be one of {', '.join(WINDOWS)}", "window")
    return raw


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


#: The page's cards: key, label, how a value reads, and which field of the metric is charted.
RATES = (
    ("paymentSuccessRate", "Payment success rate", "payments that reached an outcome: paid"),
    ("webhookDeliveryRate", "Webhook delivery rate", "events received: by webhook"),
    ("refundRate", "Refund rate", "paid payments: with a refund"),
    ("conversionRate", "Conversion", "intents created: paid"),
)
TIMES = (
    ("processingSeconds", "Event processing time", "received → processed"),
    ("activationSeconds", "Enrollment activation time", "paid → enrollment active"),
)

ORDER = (
    "paymentSuccessRate",
    "webhookDeliveryRate",
    "processingSeconds",
    "activationSeconds",
    "refundRate",
    "conversionRate",
)


def _state_word(ok: object) -> tuple[str, str]:
    if ok is True:
        return "ok", "On target"
    if ok is False:
        return "off", "Off target"
    return "none", "No data" if ok is None else ""


def cards(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the page shows for each metric: the value, its target, the counts, the state in words, a chart."""
    out: dict[str, dict[str, Any]] = {}
    for key, label, counted in RATES:
        metric = result[key]
        target = TARGETS.get(key)
        state, word = _state_word(metric["ok"]) if target else ("none", "No target")
        value = metric["value"]
        out[key] = {
            "key": key,
            "label": label,
            "value": "—" if value is None else _percent(value),
            "target": target.describe().replace(f"{target.bound:g}", _percent(target.bound)) if target else "—",
            "detail": f"{metric['numerator']} of {metric['denominator']} {counted}",
            "state": state,
            "word": word,
            "chart": _chart(result, key, "value", target.bound if target else None, _percent),
        }
    for key, label, counted in TIMES:
        metric, target = result[key], TARGETS[key]
        state, word = _state_word(metric["ok"])
        p50, p95 = metric["p50"], metric["p95"]
        out[key] = {
            "key": key,
            "label": label,
            "value": "—" if metric["mean"] is None else f"mean {_seconds(metric['mean'])}",
            "target": f"mean {target.describe()} s",
            "detail": f"{metric['count']} timed ({counted})"
            + ("" if p50 is None else f"; p50 {_seconds(p50)}, p95 {_seconds(p95)}"),
            "state": state,
            "word": word,
            "chart": _chart(result, key, "mean", target.bound, _seconds),
        }
    return [out[key] for key in ORDER]


def _chart(
    result: Mapping[str, Any], key: str, value: str, target: float | None, show: Callable[[float], str]
) -> Chart:
    def value_of(step: Mapping[str, Any]) -> tuple[float | None, object]:
        return step[key][value], step[key]["ok"]

    return chart(result["series"], value_of, target=target, show=show)


def revenue_charts(result: Mapping[str, Any]) -> dict[str, Chart]:
    """Net revenue per step, one chart per currency (never summed across currencies)."""
    charts = {}
    for currency in result["revenue"]:

        def net(step: Mapping[str, Any], currency: str = currency) -> tuple[float | None, object]:
            row = step["revenue"].get(currency)
            return (None if row is None else float(row["net"])), None

        charts[currency] = chart(result["series"], net, target=None, show=lambda v: f"{v:,.0f}")
    return charts


def page_context(result: Mapping[str, Any], window: str) -> dict[str, Any]:
    """What the page's template is given for one measurement."""
    return {
        "result": result,
        "cards": cards(result),
        "revenue": result["revenue"],
        "revenue_charts": revenue_charts(result),
        "services": result["conversionRate"]["byService"],
        "window": window,
        "windows": list(WINDOWS),
    }


@dataclass
class SuccessMetricsRoutes:
    """The API route (ops token) and the dashboard page (ops session), over the same ``measure``."""

    api: OpsRoutes
    dashboard: Dashboard
    metrics: CachedMeasure
    routes: list[Route] = field(init=False)

    def __post_init__(self) -> None:
        self.routes = [
            Route("/ops/api/success-metrics", self.json, methods=["GET"]),
            Route("/ops/metrics", self.dashboard.page(self.page), methods=["GET"]),
        ]

    async def json(self, request: Request) -> Response:
        self.api.check(request)
        window = window_param(request.query_params)
        return JSONResponse(await to_thread.run_sync(partial(self.metrics.get, window)))

    async def page(self, request: Request, session: Session | None, form: Form) -> Response:
        window = window_param(request.query_params)
        result = await to_thread.run_sync(partial(self.metrics.get, window))
        return self.dashboard.render("metrics.html", session, **page_context(result, window))
