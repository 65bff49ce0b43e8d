"""Prometheus metrics from telemetry records, kept in the telemetry worker process.

Every finished request reaches the worker as a `TelemetryRecord` (sampled or not), so
counts here are complete. The metrics live in their own `CollectorRegistry`: the global one
would mix in whatever else the process imports, and tests could not build two side by side.

Label values only ever come from the config (listener, api, model, provider, route, router
backend) or from small fixed vocabularies (status codes, attempt outcomes, fallback reasons,
signal types): never request ids, sessions, requested model names or free text, so the
number of series stays bounded. As a second guard each family collapses new label sets to
"other" past `max_series`.

`observe()` runs once per request; `.labels()` costs several microseconds, so each family
caches its children in a dict keyed by the raw label values, and normalizes them only on a
miss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.exposition import choose_encoder

from proxy.filters.verdict import ATTR_DECISION, ATTR_DIRECTION, ATTR_MODE
from proxy.telemetry.record import StepRecord, TelemetryRecord

MAX_LABEL_CHARS = 128
DEFAULT_MAX_SERIES = 2000
OVERFLOW = "other"
NONE = "none"

# Whole LLM calls: a cached answer in milliseconds to a long reasoning stream in minutes.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1)
TOKENS_PER_SECOND_BUCKETS = (1, 2.5, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
SEQUENCE_BUCKETS = tuple(2**n for n in range(4, 19))  # 16 … 262144 tokens
ROUTER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# An agent does a whole task, LLM calls and tools included: up to the listener's timeout.
AGENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

# A filter call: an in-process built-in in microseconds to a remote guard's model call.
FILTER_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def label(value: object) -> str:
    """A label value: "none" for nothing, control characters out, at most 128 characters."""
    if value is None or value == "":
        return NONE
    text = _CONTROL.sub(" ", str(value)).strip()
    return text[:MAX_LABEL_CHARS] or NONE


# What the gateway writes in AttemptRecord.outcome (proxy/gateway/pipeline.py), snake_cased.
_OUTCOMES = {
    "ok": "ok",
    "timeout": "timeout",
    "connect timeout": "connect_timeout",
    "connect error": "connect_error",
    "read error": "read_error",
    "malformed response": "malformed_response",
    "stream error": "stream_error",
    "client disconnect": "client_disconnect",
    "fallback": "fallback",
    "malformed reply": "malformed_reply",  # a filter's
    "error": "error",
}
_HTTP_OUTCOME = re.compile(r"HTTP (\d{3})")


def outcome_label(outcome: object) -> str:
    """An attempt outcome: a known kind, `http_503` for a status, else "other"."""
    text = str(outcome or "").strip().lower()
    known = _OUTCOMES.get(text)
    if known is not None:
        return known
    match = _HTTP_OUTCOME.fullmatch(text.upper())
    return f"http_{match.group(1)}" if match else OVERFLOW


# Router failures are free text (proxy/routing/backends/*: "ollama: no answer within 3s",
# "plano-router: ClientConnectorError: Cannot connect to host …", "…: HTTP 503 from the
# router endpoint", "KeyError: 'x'" for a bug). Checked in order: the first match wins.
_FALLBACK_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("timeout", re.compile(r"no answer within|timeout|timed out", re.I)),
    (
        "unavailable",
        re.compile(
            r"not running|not reachable|unreachable|unavailable|connect|refused|not installed"
            r"|does not exist|not found|lacks|needs the|not in ollama|could not load|pulling"
            r"|no such",
            re.I,
        ),
    ),
    ("error", re.compile(r"error|exception|http \d{3}|malformed|answer|corrupt|invalid", re.I)),
)


def fallback_reason(reason: str | None) -> str:
    """Why the router fell back, as one of timeout|unavailable|error|other."""
    if reason:
        for name, pattern in _FALLBACK_REASONS:
            if pattern.search(reason):
                return name
    return OVERFLOW


def router_outcome(*, fallback: bool, pinned: bool, cached: bool, routed: bool) -> str:
    """One outcome per decision: a fallback outranks a pin, a pin outranks a cache hit."""
    if fallback:
        return "fallback"
    if pinned:
        return "pinned"
    if cached:
        return "cached"
    return "routed" if routed else "no_route"


Normalizer = Callable[[Any], str]


class _Family:
    """One labelled metric with its children cached by raw label values."""

    __slots__ = ("_cache_limit", "_max_series", "_normalizers", "_series", "children", "metric")

    def __init__(
        self,
        metric: Counter | Gauge | Histogram,
        normalizers: Sequence[Normalizer],
        max_series: int,
    ):
        self.metric = metric
        self._normalizers = tuple(normalizers)
        self._max_series = max_series
        # Raw values that normalize alike share a series but each take a cache slot: the
        # cache is capped too, and past it lookups just take the slow path.
        self._cache_limit = max_series * 4
        self._series: set[tuple[str, ...]] = set()
        self.children: dict[tuple, Any] = {}

    def child(self, raw: tuple) -> Any:
        child = self.children.get(raw)
        if child is None:
            child = self._add(raw)
        return child

    def _add(self, raw: tuple) -> Any:
        values = tuple(f(v) for f, v in zip(self._normalizers, raw, strict=True))
        if values not in self._series:
            if len(self._series) >= self._max_series:
                values = (OVERFLOW,) * len(values)
            self._series.add(values)
        child = self.metric.labels(*values)
        if len(self.children) < self._cache_limit:
            self.children[raw] = child
        return child


def _status(value: object) -> str:
    return str(value) if isinstance(value, int) else label(value)


class GatewayMetrics:
    """The gateway's Prometheus metrics, fed one telemetry record at a time."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES):
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_series = max_series
        r = self.registry

        def counter(name: str, doc: str, labels: Sequence[str], *norm: Normalizer) -> _Family:
            metric = Counter(name, doc, labels, registry=r)
            return self._family(metric, labels, norm)

        def histogram(
            name: str,
            doc: str,
            labels: Sequence[str],
            buckets: Sequence[float],
            unit: str = "",
        ) -> _Family:
            metric = Histogram(name, doc, labels, buckets=buckets, unit=unit, registry=r)
            return self._family(metric, labels, ())

        request = ("listener", "api", "model", "provider", "route", "status")
        self.requests = counter(
            "plano_requests_total",
            "Requests the gateway finished, by answering model and HTTP status.",
            request,
            label,
            label,
            label,
            label,
            label,
            _status,
        )
        self.request_duration = histogram(
            "plano_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            ("listener", "api", "model"),
            REQUEST_BUCKETS,
            "seconds",
        )
        self.ttft = histogram(
            "plano_time_to_first_token_seconds",
            "Time from the request's arrival to the first token of the answer.",
            ("model",),
            TTFT_BUCKETS,
            "seconds",
        )
        self.tpot = histogram(
            "plano_time_per_output_token_seconds",
            "Streams: time between output tokens after the first one.",
            ("model",),
            TPOT_BUCKETS,
            "seconds",
        )
        self.tokens_per_second = histogram(
            "plano_output_tokens_per_second",
            "Output tokens over the request's whole duration.",
            ("model",),
            TOKENS_PER_SECOND_BUCKETS,
        )
        self.input_length = histogram(
            "plano_input_sequence_length_tokens",
            "Input tokens per request, as the upstream reported them.",
            ("model",),
            SEQUENCE_BUCKETS,
            "tokens",
        )
        self.output_length = histogram(
            "plano_output_sequence_length_tokens",
            "Output tokens per request, as the upstream reported them.",
            ("model",),
            SEQUENCE_BUCKETS,
            "tokens",
        )
        self.tokens = counter(
            "plano_tokens_total",
            "Tokens the upstreams reported, by type: input, output, cached_input, reasoning.",
            ("model", "provider", "type"),
        )
        self.cost = counter(
            "plano_cost_usd_total",
            "Cost of the requests at list price, in US dollars.",
            ("model", "provider"),
        )
        self.attempts = counter(
            "plano_upstream_attempts_total",
            "Calls to upstream models, by outcome.",
            ("model", "provider", "outcome"),
            label,
            label,
            outcome_label,
        )
        self.upstream_errors = counter(
            "plano_upstream_errors_total",
            "Calls to upstream models that failed, by outcome.",
            ("model", "provider", "outcome"),
            label,
            label,
            outcome_label,
        )
        self.retries = counter(
            "plano_upstream_retries_total",
            "Calls to a model repeated after it failed.",
            ("model",),
        )
        self.failovers = counter(
            "plano_failovers_total",
            "Moves from one model to the next after the first failed.",
            ("from_model", "to_model"),
        )
        self.router_decisions = counter(
            "plano_router_decisions_total",
            "Router decisions by outcome: routed, no_route, fallback, cached, pinned.",
            ("route", "backend", "outcome"),
        )
        self.router_duration = histogram(
            "plano_router_decision_duration_seconds",
            "Time the router took to decide, cache hits and pins included.",
            ("backend",),
            ROUTER_BUCKETS,
            "seconds",
        )
        self.router_fallbacks = counter(
            "plano_router_fallbacks_total",
            "Router failures that sent the request to the default model, by reason.",
            ("backend", "reason"),
        )
        self.orchestrator_decisions = counter(
            "plano_orchestrator_decisions_total",
            "Agent listeners' choices of agents by outcome: routed (the orchestrator named "
            "agents), default (it named none), fallback (it failed; the default agent served).",
            ("listener", "backend", "outcome"),
        )
        self.orchestrator_duration = histogram(
            "plano_orchestrator_duration_seconds",
            "Time the orchestrator took to choose the agents.",
            ("listener", "backend"),
            ROUTER_BUCKETS,
            "seconds",
        )
        self.orchestrator_fallbacks = counter(
            "plano_orchestrator_fallbacks_total",
            "Orchestrator failures that sent the request to the default agent, by reason.",
            ("listener", "backend", "reason"),
        )
        self.agent_calls = counter(
            "plano_agent_calls_total",
            "Calls to agents, by outcome (ok, http_500, timeout, connect_error, ...).",
            ("listener", "agent", "outcome"),
            label,
            label,
            outcome_label,
        )
        self.agent_duration = histogram(
            "plano_agent_duration_seconds",
            "Time an agent call took, from the request to the end of its answer.",
            ("listener", "agent"),
            AGENT_BUCKETS,
            "seconds",
        )
        self.filter_decisions = counter(
            "plano_filter_decisions_total",
            "Filter decisions (pass, modify, block, error) by filter, direction and mode; an "
            "output filter counts once per answer, with its strongest decision. In observe "
            "mode, what the filter would have done.",
            ("listener", "filter", "direction", "decision", "mode"),
        )
        self.filter_duration = histogram(
            "plano_filter_duration_seconds",
            "Time spent in a filter: one call for an input filter, the sum over an answer's "
            "chunks for an output filter.",
            ("listener", "filter", "direction"),
            FILTER_BUCKETS,
            "seconds",
        )
        self.filter_errors = counter(
            "plano_filter_errors_total",
            "Filter calls that gave no verdict, by reason (timeout, connect_error, http_500, "
            "malformed_reply, ...), whatever on_error then did.",
            ("listener", "filter", "direction", "reason"),
            label,
            label,
            label,
            outcome_label,
        )
        self.signals = counter(
            "plano_signals_total",
            "Conversation signals the analyzer found, by type.",
            ("type",),
        )
        self.signal_quality = counter(
            "plano_signal_quality_total",
            "Analyzed conversations by overall quality.",
            ("quality",),
        )
        self.fields_replaced = counter(
            "plano_telemetry_fields_replaced_total",
            "Fields of stored traces that could not be stored as they were (text that is not "
            "valid UTF-8, an integer past 64 bits, JSON nested too deep) and were stored "
            "replaced, by field.",
            ("field",),
        )
        self.truncated = counter(
            "plano_telemetry_truncated_total",
            "Traces stored cut to the per-trace budget, by what was cut: text, messages, "
            "stream, time.",
            ("reason",),
        )
        # Per configured limit (its selector as written), never per header value.
        limits = ("listener", "model", "selector")
        self.ratelimited = counter(
            "plano_ratelimited_requests_total",
            "Requests refused with a 429 by a `ratelimits` budget.",
            limits,
        )
        self.ratelimit_remaining = self._family(
            Gauge(
                "plano_ratelimit_remaining_tokens",
                "Tokens left in a `ratelimits` budget after the last request held to it (of "
                "the bucket that request used, for a selector with a bucket per value).",
                limits,
                registry=r,
            ),
            limits,
            (),
        )
        self.store_errors = counter(
            "plano_shared_state_errors_total",
            "Operations on a shared store (shared_state: Redis) that it did not serve: "
            "failed, timed out, or skipped while it was marked down; by store and operation. "
            "Each is a request served without it (fail_open) or answered 503 (fail_closed).",
            ("store", "op"),
        )
        self.store_up = Gauge(
            "plano_shared_state_up",
            "1 while the shared store serves, 0 while it is marked down (its operations "
            "skipped until it answers again).",
            ("store",),
            registry=r,
        )
        self._exposed = _WithoutCreated(r)
        self.dropped = Counter(
            "plano_telemetry_dropped_total",
            "Requests whose trace was dropped because the telemetry worker fell behind "
            "(their metrics are counted unless the request path dropped them too).",
            registry=r,
        )

    def _family(
        self, metric: Counter | Gauge | Histogram, labels: Sequence[str], norm: Sequence[Normalizer]
    ) -> _Family:
        return _Family(metric, norm or (label,) * len(labels), self._max_series)

    def observe(
        self,
        record: TelemetryRecord,
        *,
        cost_usd: float | None = None,
        signal_quality: str | None = None,
        signal_types: Iterable[str] = (),
    ) -> None:
        """Count one finished request; the keyword arguments come from pricing and signals."""
        model, provider = record.model, record.provider
        routing = record.routing
        self.requests.child(
            (
                record.listener,
                record.api,
                model,
                provider,
                routing.route if routing is not None else None,
                record.status,
            )
        ).inc()
        start, end = record.start_ns, record.end_ns
        self.request_duration.child((record.listener, record.api, model)).observe(
            max(end - start, 0) / 1e9
        )

        one = (model,)
        first = record.first_token_ns
        if first is not None and first >= start:
            self.ttft.child(one).observe((first - start) / 1e9)
        output = record.output_tokens
        # A JSON answer's first token is the whole body, so only a stream spaces its tokens.
        if record.stream and first is not None and output is not None and output > 1:
            self.tpot.child(one).observe(max(end - first, 0) / 1e9 / (output - 1))
        if output is not None and output > 0 and end > start:
            self.tokens_per_second.child(one).observe(output * 1e9 / (end - start))

        # An agent listener's answer has no model: the agents' own model calls are
        # counted on the model listener, and counting the agent's report too would count
        # their tokens twice.
        if model is not None:
            self._observe_tokens(record)
        if cost_usd is not None and cost_usd >= 0:
            self.cost.child((model, provider)).inc(cost_usd)

        if record.attempts:
            self._observe_attempts(record)
        if record.steps:
            self._observe_steps(record)
        if routing is not None:
            outcome = router_outcome(
                fallback=routing.fallback is not None,
                pinned=routing.pinned,
                cached=routing.cached,
                routed=routing.route is not None,
            )
            self.router_decisions.child((routing.route, routing.backend, outcome)).inc()
            self.router_duration.child((routing.backend,)).observe(
                max(routing.latency_ms, 0.0) / 1000
            )
            if routing.fallback is not None:
                reason = fallback_reason(routing.fallback)
                self.router_fallbacks.child((routing.backend, reason)).inc()

        if record.ratelimit is not None:
            self._observe_ratelimit(record)
        self.observe_signals(signal_quality, signal_types)

    def _observe_ratelimit(self, record: TelemetryRecord) -> None:
        limit = record.ratelimit
        key = (record.listener, limit.model, limit.selector)
        if limit.limited:
            self.ratelimited.child(key).inc()
        self.ratelimit_remaining.child(key).set(limit.remaining)

    def _observe_tokens(self, record: TelemetryRecord) -> None:
        model, provider, output = record.model, record.provider, record.output_tokens
        one = (model,)
        tokens = self.tokens
        if record.input_tokens is not None and record.input_tokens >= 0:
            self.input_length.child(one).observe(record.input_tokens)
            tokens.child((model, provider, "input")).inc(record.input_tokens)
        if output is not None and output >= 0:
            self.output_length.child(one).observe(output)
            tokens.child((model, provider, "output")).inc(output)
        if record.cached_input_tokens is not None and record.cached_input_tokens >= 0:
            tokens.child((model, provider, "cached_input")).inc(record.cached_input_tokens)
        if record.reasoning_tokens is not None and record.reasoning_tokens >= 0:
            tokens.child((model, provider, "reasoning")).inc(record.reasoning_tokens)

    def _observe_steps(self, record: TelemetryRecord) -> None:
        listener = record.listener
        for step in record.steps:
            seconds = max(step.end_ns - step.start_ns, 0) / 1e9
            if step.kind == "orchestrator":
                outcome = step.outcome
                if outcome == "ok":
                    outcome = str(step.attributes.get("orchestrator.selection", "routed"))
                self.orchestrator_decisions.child((listener, step.name, outcome)).inc()
                self.orchestrator_duration.child((listener, step.name)).observe(seconds)
                if step.outcome == "fallback":
                    reason = fallback_reason(step.detail)
                    self.orchestrator_fallbacks.child((listener, step.name, reason)).inc()
            elif step.kind == "agent":
                self.agent_calls.child((listener, step.name, step.outcome)).inc()
                self.agent_duration.child((listener, step.name)).observe(seconds)
            elif step.kind == "filter":
                self._observe_filter(listener, step, seconds)

    def _observe_filter(self, listener: str, step: StepRecord, seconds: float) -> None:
        attributes = step.attributes
        direction = attributes.get(ATTR_DIRECTION)
        decision = attributes.get(ATTR_DECISION, "error" if step.outcome != "ok" else None)
        mode = attributes.get(ATTR_MODE)
        self.filter_decisions.child((listener, step.name, direction, decision, mode)).inc()
        self.filter_duration.child((listener, step.name, direction)).observe(seconds)
        if step.outcome != "ok":
            self.filter_errors.child((listener, step.name, direction, step.outcome)).inc()

    def observe_signals(self, quality: str | None, types: Iterable[str] = ()) -> None:
        """One analyzed conversation: the analyzer runs after the request is counted."""
        for type_ in types:
            self.signals.child((type_,)).inc()
        if quality is not None:
            self.signal_quality.child((quality,)).inc()

    def _observe_attempts(self, record: TelemetryRecord) -> None:
        previous = None
        for attempt in record.attempts:
            key = (attempt.model, attempt.provider, attempt.outcome)
            self.attempts.child(key).inc()
            if attempt.outcome != "ok":
                self.upstream_errors.child(key).inc()
            if previous is not None:
                if previous.model != attempt.model:
                    self.failovers.child((previous.model, attempt.model)).inc()
                elif previous.outcome != "ok":
                    self.retries.child((attempt.model,)).inc()
            previous = attempt

    def observe_replaced(self, fields: Mapping[str, int]) -> None:
        """Fields stored replaced: the record's or the store's column names, a fixed set."""
        for field, count in fields.items():
            if count > 0:
                self.fields_replaced.child((field,)).inc(count)

    def observe_truncated(self, reasons: Iterable[str]) -> None:
        """One trace stored cut to its budget, and why (budget.TEXT, MESSAGES...)."""
        for reason in reasons:
            self.truncated.child((reason,)).inc()

    def observe_dropped(self, count: int) -> None:
        """Records dropped before they were traced, by the request path or the worker."""
        if count > 0:
            self.dropped.inc(count)

    def observe_stores(self, errors: Mapping[tuple[str, str], int], up: Mapping[str, bool]) -> None:
        """Shared stores' health from the gateway: errors since the last report, and
        whether each store is up now."""
        for (store, op), count in errors.items():
            if count > 0:
                self.store_errors.child((store, op)).inc(count)
        for store, value in up.items():
            self.store_up.labels(label(store)).set(1 if value else 0)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scrape: OpenMetrics when the Accept header asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposed), content_type


class _WithoutCreated:
    """The registry minus the `_created` samples of counters and histograms.

    Prometheus 2.x stores each `_created` sample as a series of its own (a gauge in the text
    format), which would double the series count for a value no query here uses. The
    library's switch for this is process-wide; this keeps the choice to our registry.
    """

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            created = family.name + "_created"
            # collect() builds fresh families on every call: filtering in place is safe.
            family.samples = [s for s in family.samples if s.name != created]
            yield family
