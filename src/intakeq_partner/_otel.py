"""OpenTelemetry, as a listener on `events`: spans and metrics through the globally configured providers.

The convention for libraries: we depend on opentelemetry-api only (the `otel` extra), ask the global tracer
and meter providers at each call, and record nothing until the application has set one up (then its exporters
see our spans with no code of ours to call). Per facade call: one INTERNAL span, "intakeq <METHOD>", current
while the call runs; under it one CLIENT span per HTTP attempt with the HTTP semantic-convention attributes;
retries, waits and key fetches as events on the call span. Metrics: `intakeq.client.requests`,
`intakeq.client.rate_limited` (429s), `intakeq.client.retries`, `intakeq.client.wait.duration` (seconds)
and `http.client.request.duration`. Metadata only, as every event: no key, query value or body.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import httpx

from ._constants import VERSION
from .events import (
    CallFinished,
    CallInfo,
    CallStarted,
    Event,
    Hook,
    KeyFetched,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    Waiting,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["otel_listener"]

_api: tuple[Any, Any, bool] | tuple[()] | None = None  # (trace, metrics, providers named in the environment)
_PROVIDER_ENV = {"OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER"}
_listener: _Otel | None = None


def otel_listener() -> Hook | None:
    """The listener when opentelemetry-api is installed and the application configured a provider, else None
    (asked at every call: an application may set its providers up after making the client)."""
    global _api, _listener
    if _api is None:
        _api = _load_api()
    if not _api:
        return None
    trace, metrics, ask_always = _api
    if ask_always:
        tracers, meters = trace.get_tracer_provider(), metrics.get_meter_provider()
    else:  # the getters read the environment at each call (a few us): the API's globals say the same, cheaply
        tracers, meters = trace._TRACER_PROVIDER, metrics._internal._METER_PROVIDER
        if tracers is None and meters is None:
            return None  # nothing set up
    if _listener is None or _listener.providers != (tracers, meters):
        _listener = _Otel(tracers, meters, trace.get_tracer_provider(), metrics.get_meter_provider())
    return _listener if _listener.records else None


def _load_api() -> tuple[Any, Any, bool] | tuple[()]:
    """The API's trace and metrics modules, and whether to ask its getters at every call (the environment names
    providers for the API to load, or its globals are not where we look); () when it is not installed."""
    if importlib.util.find_spec("opentelemetry") is None:
        return ()
    from opentelemetry import metrics, trace

    known = hasattr(trace, "_TRACER_PROVIDER") and hasattr(getattr(metrics, "_internal", None), "_METER_PROVIDER")
    return trace, metrics, not known or bool(_PROVIDER_ENV & os.environ.keys())


class _Call:
    __slots__ = ("attempts", "span", "token")

    def __init__(self, span: Span | None, token: Any) -> None:
        self.span = span  # None: not recorded (a no-op tracer, or sampled out)
        self.token = token
        self.attempts: dict[tuple[str, str], Span] = {}


class _Otel:
    def __init__(self, tracers_set: object, meters_set: object, tracers: TracerProvider, meters: MeterProvider) -> None:
        from opentelemetry import context, trace

        self.providers = (tracers_set, meters_set)  # as the API's globals hold them (None: not set)
        self._trace = trace
        self._context = context
        self._tracer = tracers.get_tracer("intakeq_partner", VERSION)
        self._metered = type(meters).__name__ != "_ProxyMeterProvider"  # else every instrument is a no-op
        no_spans = isinstance(tracers, trace.NoOpTracerProvider | trace.ProxyTracerProvider)
        self.records = self._metered or not no_spans
        """False when nothing could be recorded (the API's no-op tracer, no meter): then nothing listens."""
        meter = meters.get_meter("intakeq_partner", VERSION)
        self._requests = meter.create_counter("intakeq.client.requests", "{request}", "HTTP attempts sent")
        self._rate_limited = meter.create_counter("intakeq.client.rate_limited", "{response}", "429 answers")
        self._retries = meter.create_counter("intakeq.client.retries", "{retry}", "attempts scheduled again")
        self._waits = meter.create_histogram(
            "intakeq.client.wait.duration", "s", "time waited for a key's budget or a pause after a 429"
        )
        self._duration = meter.create_histogram("http.client.request.duration", "s", "HTTP attempts")
        self._calls: dict[CallInfo, _Call] = {}
        self._servers: dict[str, tuple[str, int, str]] = {}

    def _server(self, server: str) -> tuple[str, int, str]:
        """Host, port and scheme of a base URL (parsed once: parsing a URL costs more than the rest)."""
        found = self._servers.get(server)
        if found is None:
            url = httpx.URL(server)
            found = (url.host, url.port or (443 if url.scheme == "https" else 80), url.scheme)
            if len(self._servers) < 64:
                self._servers[server] = found
        return found

    def __call__(self, event: Event) -> None:
        call = event.call
        if isinstance(event, CallStarted):
            started = self._tracer.start_span(f"intakeq {call.method}", attributes={"url.path": call.path})
            if started.is_recording():
                token = self._context.attach(self._trace.set_span_in_context(started))
                self._calls[call] = _Call(started, token)
            else:
                self._calls[call] = _Call(None, None)
            return
        state = self._calls.get(call)
        if state is None:
            return
        span = state.span
        if isinstance(event, RequestSent):
            if span is not None:
                state.attempts[(event.method, event.path)] = self._attempt(span, call, event)
        elif isinstance(event, ResponseReceived):
            self._answered(state, call, event)
        elif isinstance(event, RetryScheduled):
            if self._metered:
                self._retries.add(1, {"http.request.method": event.method, "intakeq.retry.reason": event.reason})
            if span is not None:
                retry: dict[str, Any] = {
                    "intakeq.retry.reason": event.reason,
                    "intakeq.retry.delay": event.delay,
                    "attempt": event.attempt,
                }
                span.add_event("retry", retry)
        elif isinstance(event, Waiting):
            if self._metered:
                self._waits.record(event.seconds, {"intakeq.wait.reason": event.reason})
            if span is not None:
                span.add_event("wait", {"intakeq.wait.reason": event.reason, "intakeq.wait.seconds": event.seconds})
        elif isinstance(event, KeyFetched):
            if span is not None:
                span.add_event("practice key fetched", {"intakeq.key.refreshed": event.refreshed})
        elif isinstance(event, CallFinished):
            del self._calls[call]
            if span is not None:
                self._finished(state, span, event)

    def _attempt(self, parent: Span, call: CallInfo, event: RequestSent) -> Span:
        host, port, scheme = self._server(call.server)
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "server.address": host,
            "server.port": port,
            "url.full": call.server + event.path,  # the query is never part of it
            "url.scheme": scheme,
        }
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        context = self._trace.set_span_in_context(parent)
        return self._tracer.start_span(event.method, context, self._trace.SpanKind.CLIENT, attributes)

    def _answered(self, state: _Call, call: CallInfo, event: ResponseReceived) -> None:
        exchange = event.exchange
        error_type = exchange.error
        if error_type is None and exchange.status is not None and exchange.status >= 400:
            error_type = str(exchange.status)
        if self._metered:
            labels: dict[str, Any] = {
                "http.request.method": exchange.method,
                "server.address": self._server(call.server)[0],
            }
            if exchange.status is not None:
                labels["http.response.status_code"] = exchange.status
            if error_type is not None:
                labels["error.type"] = error_type
            self._requests.add(1, labels)
            self._duration.record(exchange.elapsed, labels)
            if exchange.status == 429:
                self._rate_limited.add(1, {"http.request.method": exchange.method})
        span = state.attempts.pop((exchange.method, exchange.path), None)
        if span is not None:
            if exchange.status is not None:
                span.set_attribute("http.response.status_code", exchange.status)
            if exchange.request_id:
                span.set_attribute("intakeq.request_id", exchange.request_id)
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(self._trace.StatusCode.ERROR)
            span.end()

    def _finished(self, state: _Call, span: Span, event: CallFinished) -> None:
        span.set_attribute("intakeq.attempts", event.attempts)
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        if event.error is not None:
            span.set_attribute("error.type", event.error)
            span.set_status(self._trace.StatusCode.ERROR, event.error)
        for attempt in state.attempts.values():  # cancelled mid-attempt: no answer came
            attempt.set_status(self._trace.StatusCode.ERROR)
            attempt.end()
        span.end()
        self._context.detach(state.token)
