"""Hooks, log lines and call records: the events the transport reports, end to end through the fake."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import pytest
from conftest import FAST, PARTNER_KEY, STACKS

from intakeq_partner import (
    CallFinished,
    Event,
    KeyFetched,
    NotFoundError,
    PartnerClient,
    Rate,
    RateLimits,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    Waiting,
    events,
    hook_for,
    record_calls,
)
from intakeq_partner.testing import FakeIntakeQ, Faults


def kinds(seen: list[Event]) -> list[str]:
    return [type(e).__name__ for e in seen]


@pytest.mark.parametrize("stack", STACKS)
async def test_sync_and_async_hooks_hear_every_point_of_a_call_and_nothing_secret(
    fake: FakeIntakeQ, stack: str
) -> None:
    practice = fake.add_practice(PracticeName="Hooked", Email="owner@example.com")
    seen: list[Event] = []
    heard_async: list[Event] = []

    def hook(event: Event) -> None:
        seen.append(event)
        if isinstance(event, ResponseReceived) and event.exchange.status == 503:
            fake.faults = Faults()  # only the first attempt fails

    async def async_hook(event: Event) -> None:
        heard_async.append(event)

    fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
    async with (
        fake.serve() as base_url,
        PartnerClient(PARTNER_KEY, base_url=base_url, hooks=[hook, async_hook], **{**FAST, "http_stack": stack}) as p,
    ):
        found = await p.practices.get(email="owner@example.com")
        assert found is not None and found.id == practice.id
        first = list(seen)
        await p.practice(practice.id).practitioners.list()
    assert heard_async == seen
    assert kinds(first) == [
        "CallStarted",
        "RequestSent",
        "ResponseReceived",
        "RetryScheduled",
        "RequestSent",
        "ResponseReceived",
        "CallFinished",
    ]
    failed, retry, done = first[2], first[3], first[-1]
    assert isinstance(failed, ResponseReceived) and failed.exchange.status == 503 and failed.exchange.attempt == 1
    assert failed.exchange.retry_in == 0.0 and failed.exchange.path == "/api/partner/practice"
    assert isinstance(retry, RetryScheduled) and retry.reason == "503" and retry.attempt == 1
    assert isinstance(done, CallFinished) and done.status == 200 and done.error is None and done.attempts == 2
    assert done.elapsed >= 0 and done.call.retries == 1
    # The practice call: the key fetch is part of it, and told.
    second = seen[len(first) :]
    fetched = [e for e in second if isinstance(e, KeyFetched)]
    assert len(fetched) == 1 and fetched[0].practice == practice.id and not fetched[0].refreshed
    sent = [(e.method, e.path) for e in second if isinstance(e, RequestSent)]
    assert sent == [("GET", f"/api/partner/practice/{practice.id}/key"), ("GET", "/api/v1/practitioners")]
    finished = second[-1]
    assert isinstance(finished, CallFinished) and finished.attempts == 2 and finished.call.keys_fetched == 1
    text = repr(seen)
    for secret in (PARTNER_KEY, fake.practice_key(practice.id), "owner@example.com"):
        assert secret not in text  # no key, and no query value


async def test_a_raising_hook_is_logged_and_the_call_goes_on(
    fake: FakeIntakeQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="intakeq_partner")
    later: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    async def broken_async(event: Event) -> None:
        raise ValueError("async hook bug")

    async with PartnerClient(
        PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=[broken, broken_async, later.append]
    ) as p:
        assert await p.practices.list() == []
    assert kinds(later) == ["CallStarted", "RequestSent", "ResponseReceived", "CallFinished"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8  # each broken hook, on each of the four events
    assert "broken" in warnings[0].getMessage() and warnings[0].exc_info is not None


async def test_a_hook_that_stops_the_program_at_call_start_leaves_no_call_under_way(fake: FakeIntakeQ) -> None:
    """A KeyboardInterrupt (or any BaseException) from a CallStarted hook goes through, unlogged; the call it
    began is ended, so later calls in the same task are calls of their own, heard as such."""
    seen: list[Event] = []
    stop = [True]

    def hook(event: Event) -> None:
        seen.append(event)
        if stop[0] and type(event).__name__ == "CallStarted":
            raise KeyboardInterrupt

    task = asyncio.current_task()
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=[hook]) as p:
        with record_calls() as calls, pytest.raises(KeyboardInterrupt):
            await p.practices.list()
        assert task not in events.CALLS and calls[0].finished and calls[0].error == "KeyboardInterrupt"
        assert kinds(seen) == ["CallStarted", "CallFinished"] and fake.stats.logged == 0
        stop[0] = False
        assert await p.practices.list() == []
    assert kinds(seen)[2:] == ["CallStarted", "RequestSent", "ResponseReceived", "CallFinished"]
    assert seen[2].call != seen[0].call


async def test_views_hear_with_their_own_hooks_and_keep_them_through_other_options(fake: FakeIntakeQ) -> None:
    mine: list[Event] = []
    theirs: list[Event] = []
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=[mine.append]) as p:
        view = p.with_options(hooks=[theirs.append]).with_options(max_retries=0)
        assert view.options["hooks"] == (theirs.append,) and p.options["hooks"] == (mine.append,)
        await view.practices.list()
        assert mine == [] and kinds(theirs)[-1] == "CallFinished"
        await p.with_options(timeout=5).practices.list()
        assert kinds(mine)[-1] == "CallFinished" and len(theirs) == 4
        with pytest.raises(ValueError, match="hooks"):
            p.with_options(hooks=["not callable"])  # type: ignore[list-item]


async def test_waits_for_a_budget_and_a_refreshed_key_are_told(fake: FakeIntakeQ) -> None:
    practice = fake.add_practice()
    seen: list[Event] = []
    limits = RateLimits(partner=[Rate(1, 0.2)])
    async with PartnerClient(
        PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=[seen.append], limits=limits
    ) as p:
        await p.practices.list(page=1)
        await p.practices.list(page=1)  # one request a 0.2 s: waits for the partner key's budget
        waits = [e for e in seen if isinstance(e, Waiting)]
        assert [w.reason for w in waits] == ["budget"] and 0 < waits[0].seconds <= 0.2
        assert isinstance(seen[-1], CallFinished) and seen[-1].call.waited == waits[0].seconds
        v1 = p.practice(practice.id)
        await v1.practitioners.list()
        fake.rotate_practice_key(practice.id)
        seen.clear()
        await v1.practitioners.list()
    fetched = [e for e in seen if isinstance(e, KeyFetched)]
    assert len(fetched) == 1 and fetched[0].refreshed
    statuses = [e.exchange.status for e in seen if isinstance(e, ResponseReceived)]
    assert statuses == [401, 200, 200]  # refused, the key fetched again, then the call


async def test_a_hook_for_some_kinds_hears_only_those_and_others_are_not_built(fake: FakeIntakeQ) -> None:
    everything: list[Event] = []
    some: list[Event] = []
    heard_async: list[Event] = []

    async def async_hook(event: Event) -> None:
        heard_async.append(event)

    only = hook_for(RetryScheduled, CallFinished)(some.append)
    assert "hook_for(RetryScheduled, CallFinished)" in repr(only)

    def hook(event: Event) -> None:
        everything.append(event)
        if isinstance(event, ResponseReceived):
            fake.faults = Faults()  # only the first attempt fails

    fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
    hooks = [only, hook_for(CallFinished)(async_hook), hook]
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=hooks, **FAST) as p:
        seen = p.with_options(hooks=[hook_for(CallFinished)(some.append)])
        await p.practices.list()
        await seen.practices.list()
    assert kinds(some) == ["RetryScheduled", "CallFinished", "CallFinished"] and kinds(heard_async) == ["CallFinished"]
    assert len(everything) == 7 and everything[3] is some[0] and everything[-1] is some[1]
    # Resolved once per registration: an event nobody hears is not built.
    resolved = events.check_hooks([hook_for(CallFinished)(print)])
    assert resolved.finished is print and resolved.started is resolved.sent is resolved.answered is None
    with pytest.raises(ValueError, match="hook_for takes one or more event classes"):
        hook_for(str)  # type: ignore[arg-type]


async def test_nobody_listening_means_no_record() -> None:
    logger = logging.getLogger("intakeq_partner")
    level = logger.level
    logger.setLevel(logging.WARNING)
    task = asyncio.current_task()
    assert task is not None

    def begin(hooks: events.Listeners) -> events.Record | None:
        return events.begin(hooks, "GET", "/api/partner/practice", lambda: 0.0, "", task)

    try:
        assert begin(events.NO_HOOKS) is None
        record = begin(events.check_hooks([print]))
        assert record is not None and events.CALLS[task] is record
        assert begin(events.check_hooks([print])) is None  # part of the call under way in this task
        events.finish(record, task, None, 0.0)
        assert task not in events.CALLS
        with events.record_calls():
            record = begin(events.NO_HOOKS)
            assert record is not None
            events.finish(record, task, None, 0.0)
    finally:
        logger.setLevel(level)


async def test_log_lines_carry_their_fields_in_extra(fake: FakeIntakeQ, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="intakeq_partner")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as p:
        await p.practices.get(email="someone@example.com")
    attempt, call = (r for r in caplog.records if r.name == "intakeq_partner")
    fields: dict[str, Any] = vars(attempt)
    assert (fields["event"], fields["method"], fields["status"], fields["attempt"]) == ("response", "GET", 200, 1)
    assert call.levelno == logging.INFO and vars(call)["attempts"] == 1 and vars(call)["error"] is None
    assert "someone@example.com" not in caplog.text


def test_intakeq_log_turns_logging_on_without_code(tmp_path: Any) -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from intakeq_partner import PartnerClient
        from intakeq_partner.testing import FakeIntakeQ

        async def main():
            fake = FakeIntakeQ("k-123456789")
            async with PartnerClient("k-123456789", base_url=fake.base_url, transport=fake.transport()) as p:
                await p.practices.list()

        asyncio.run(main())
        """
    )
    for level, expected in [("debug", ["DEBUG", "INFO"]), ("info", ["INFO"]), ("warning", [])]:
        env = {**os.environ, "INTAKEQ_LOG": level}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if " intakeq_partner " in line]
        assert [line.split()[3] for line in lines] == expected, done.stderr
        assert "k-123456789" not in done.stderr


class Stamped(httpx.AsyncBaseTransport):
    """The fake, with a request id on every answer that echoes the key it was sent (as a careless server might)."""

    def __init__(self, fake: FakeIntakeQ) -> None:
        self.inner, self.count = fake.transport(), 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.count += 1
        response.headers["X-Request-Id"] = f"req-{self.count}-{request.headers['X-Auth-Key']}"
        return response


async def test_record_calls_gives_each_call_its_exchanges_without_changing_what_it_returns(fake: FakeIntakeQ) -> None:
    practice = fake.add_practice(Email="who@example.com")
    fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))

    def heal(event: Event) -> None:
        if isinstance(event, ResponseReceived):
            fake.faults = Faults()

    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=Stamped(fake), hooks=[heal], **FAST) as p:
        with record_calls() as calls:
            found = await p.practices.get(email="who@example.com")
            practitioners = await p.practice(practice.id).practitioners.list()
        await p.practices.list(page=1)  # outside the block: not recorded
    assert found is not None and found.id == practice.id and len(practitioners) == 1
    assert [(c.method, c.path, c.status, c.error, c.attempts) for c in calls] == [
        ("GET", "/api/partner/practice", 200, None, 2),
        ("GET", "/api/v1/practitioners", 200, None, 2),
    ]
    lookup, listing = calls
    assert [(e.status, e.attempt, e.retry_in) for e in lookup.exchanges] == [(503, 1, 0.0), (200, 2, None)]
    assert lookup.finished and lookup.elapsed is not None and lookup.elapsed >= 0
    assert [e.path for e in listing.exchanges] == [f"/api/partner/practice/{practice.id}/key", "/api/v1/practitioners"]
    assert lookup.request_id is not None and lookup.request_id.startswith("req-2-")
    # The request id echoed the key: masked, here and in every header kept (read when first asked for).
    assert PARTNER_KEY not in lookup.request_id and "req-2-****" in lookup.request_id
    assert all(PARTNER_KEY not in str(e.headers) for c in calls for e in c.exchanges)
    assert lookup.exchanges[1].headers["Content-Type"] == "application/json"
    text = repr(calls)
    for secret in (PARTNER_KEY, fake.practice_key(practice.id), "who@example.com"):
        assert secret not in text


async def test_a_failed_call_is_recorded_with_its_error(fake: FakeIntakeQ) -> None:
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as p:
        with record_calls() as calls:
            with pytest.raises(NotFoundError):
                await p.practices.update("nobody", practice_name="x")
    assert [(c.status, c.error) for c in calls] == [(404, "NotFoundError")]


async def test_a_task_keeps_each_call_apart_and_an_ended_call_gains_nothing(fake: FakeIntakeQ) -> None:
    """An observed call's record stays in its task's context after it ends (setting a context variable twice a
    call cost as much as two events): a later call there, observed or not, must neither add to it nor be taken
    for part of it."""
    seen: list[Event] = []
    async with (
        PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), hooks=[seen.append]) as heard,
        PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as unheard,
    ):
        with record_calls() as calls:
            await heard.practices.list()
        first = calls[0]
        await unheard.practices.list()
        await unheard.practices.list()
        await heard.practices.list()
    assert first.attempts == 1 and len(first.exchanges) == 1 and first.finished
    assert kinds(seen) == ["CallStarted", "RequestSent", "ResponseReceived", "CallFinished"] * 2
    one, two = seen[:4], seen[4:]
    assert all(e.call == first for e in one) and all(e.call == two[0].call for e in two)  # one call each
    assert two[0].call != first and two[-1].call.attempts == 1 and {first: 1}[one[-1].call] == 1


def test_events_can_be_made_by_hand_for_testing_a_hook() -> None:
    call = events.CallInfo("GET", "/api/partner/practice", "https://intakeq.com")
    sent = RequestSent(call, "GET", "/api/partner/practice", 1)
    assert (sent.call, sent.method, sent.attempt) == (call, "GET", 1)
    assert repr(sent).startswith("RequestSent(call=CallInfo(method='GET'") and "attempt=1)" in repr(sent)
    done = CallFinished(call)
    assert (done.status, done.error, done.attempts, done.elapsed) == (None, None, 0, 0.0)
    assert Waiting(call, "budget", 0.5).seconds == 0.5 and KeyFetched(call, "p1", False, 0.1).practice == "p1"
    with pytest.raises(TypeError):
        RetryScheduled(call, "GET", "/x")  # type: ignore[call-arg]


async def test_log_lines_follow_the_level_as_it_changes(fake: FakeIntakeQ, caplog: pytest.LogCaptureFixture) -> None:
    """Whether to log is read from logging's own cache of levels at each call: a change of level, or a logger
    disabled by a logging configuration, takes effect at the next call."""
    logger = logging.getLogger("intakeq_partner")
    level, disabled = logger.level, logger.disabled
    caplog.handler.setLevel(logging.DEBUG)  # the logger's level alone decides
    seen: list[list[str]] = []
    try:
        async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as p:
            for now in (logging.WARNING, logging.DEBUG, logging.INFO, "disabled"):
                if now == "disabled":
                    logger.disabled = True
                else:
                    logger.setLevel(now)
                caplog.clear()
                await p.practices.list()
                seen.append([r.levelname for r in caplog.records if r.name == "intakeq_partner"])
    finally:
        logger.setLevel(level)
        logger.disabled = disabled
    assert seen == [[], ["DEBUG", "INFO"], ["INFO"], []]
