"""OpenTelemetry through the global providers, read back with the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import FAST, PARTNER_KEY, STACKS
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from intakeq_partner import Event, NotFoundError, PartnerClient, Rate, RateLimits, ResponseReceived, events
from intakeq_partner._otel import otel_listener
from intakeq_partner.testing import FakeIntakeQ, Faults


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def sums(self) -> dict[str, float]:
        """Each metric's total over all its points (a histogram's sum)."""
        totals: dict[str, float] = {}
        data = self.metrics.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points: Any = metric.data.data_points
                    totals[metric.name] = sum(getattr(p, "value", None) or p.sum for p in points)
        return totals


def _reset_globals() -> None:
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    metrics._internal._METER_PROVIDER = None
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def otel() -> Iterator[Otel]:
    """What an application does at startup: global providers with exporters (here in memory); undone after."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    meters = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracers)
    metrics.set_meter_provider(meters)
    try:
        yield Otel(spans, reader)
    finally:
        _reset_globals()
        tracers.shutdown()
        meters.shutdown()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.mark.parametrize("stack", STACKS)
async def test_a_span_per_call_with_its_attempts_as_http_client_spans(
    otel: Otel, fake: FakeIntakeQ, stack: str
) -> None:
    practice = fake.add_practice(Email="owner@example.com")

    def heal(event: Event) -> None:
        if isinstance(event, ResponseReceived):
            fake.faults = Faults()

    fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
    app = trace.get_tracer("the application")
    async with (
        fake.serve() as base_url,
        PartnerClient(PARTNER_KEY, base_url=base_url, hooks=[heal], **{**FAST, "http_stack": stack}) as partner,
    ):
        with app.start_as_current_span("handler") as handler:
            assert await partner.practices.get(email="owner@example.com") is not None
            await partner.practice(practice.id).practitioners.list()
            with pytest.raises(NotFoundError):
                await partner.practices.update("nobody", city="x")
    spans = otel.finished()
    calls = [s for s in spans if s.name == "intakeq GET" or s.name == "intakeq PUT"]
    assert [s.name for s in calls] == ["intakeq GET", "intakeq GET", "intakeq PUT"]
    for call in calls:  # children of the application's own span: its trace goes on through our calls
        assert call.parent is not None and call.parent.span_id == handler.get_span_context().span_id
    lookup, listing, update = calls
    attempts = [s for s in spans if s.kind is SpanKind.CLIENT]
    under = {
        c.context.span_id: [a for a in attempts if a.parent and a.parent.span_id == c.context.span_id] for c in calls
    }
    first, second = under[lookup.context.span_id]
    port = int(base_url.rsplit(":", 1)[1])
    assert attributes(first) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": f"{base_url}/api/partner/practice",  # no query value
        "url.scheme": "http",
        "http.response.status_code": 503,
        "error.type": "503",
    }
    assert first.status.status_code is StatusCode.ERROR
    assert (
        attributes(second)["http.request.resend_count"] == 1 and attributes(second)["http.response.status_code"] == 200
    )
    assert [e.name for e in lookup.events] == ["retry"] and lookup.events[0].attributes == {
        "intakeq.retry.reason": "503",
        "intakeq.retry.delay": 0.0,
        "attempt": 1,
    }
    assert attributes(lookup)["intakeq.attempts"] == 2 and lookup.status.status_code is StatusCode.UNSET
    # The key fetch is part of the call that needed it.
    assert [attributes(a)["url.full"].removeprefix(base_url) for a in under[listing.context.span_id]] == [
        f"/api/partner/practice/{practice.id}/key",
        "/api/v1/practitioners",
    ]
    assert [e.name for e in listing.events] == ["practice key fetched"]
    assert update.status.status_code is StatusCode.ERROR and attributes(update)["error.type"] == "NotFoundError"
    text = repr([(s.name, s.attributes, [e.attributes for e in s.events]) for s in spans])
    for secret in (PARTNER_KEY, fake.practice_key(practice.id), "owner@example.com"):
        assert secret not in text
    totals = otel.sums()
    # 2 + 2 + 2: the update looked "nobody" up by Id, then by external ID, and sent nothing
    assert totals["intakeq.client.requests"] == len(attempts) == 6 and totals["intakeq.client.retries"] == 1


async def test_metrics_count_429s_retries_and_seconds_waited(otel: Otel, fake: FakeIntakeQ) -> None:
    fake.faults = Faults(p429=1.0, retry_after=0)

    def heal(event: Event) -> None:
        if isinstance(event, ResponseReceived):
            fake.faults = Faults()

    limits = RateLimits(partner=[Rate(1, 0.2)])
    options: dict[str, Any] = {"transport": fake.transport(), "hooks": [heal], "limits": limits}
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, **options) as partner:
        await partner.practices.list(page=1)  # a 429, retried at once (Retry-After: 0) but a 0.2 s budget
    totals = otel.sums()
    assert totals["intakeq.client.rate_limited"] == 1 and totals["intakeq.client.retries"] == 1
    assert totals["intakeq.client.requests"] == 2 and 0 < totals["intakeq.client.wait.duration"] <= 0.2
    [call] = [s for s in otel.finished() if s.kind is SpanKind.INTERNAL]
    assert [e.name for e in call.events] == ["retry", "wait"]


async def test_nothing_is_recorded_or_even_built_until_the_application_sets_opentelemetry_up() -> None:
    _reset_globals()
    assert otel_listener() is None
    import logging

    logger = logging.getLogger("intakeq_partner")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        task = asyncio.current_task()
        assert task is not None
        assert events.begin(events.NO_HOOKS, "GET", "/api/partner/practice", lambda: 0.0, "", task) is None
    finally:
        logger.setLevel(level)
