"""The `intakeq-partner` command: provision a plan, list practices, make an SSO link, run the fake server.

Keys come only from the environment ($INTAKEQ_PARTNER_KEY; $INTAKEQ_BASE_URL picks the target), so they never
appear in shell history or process listings, and nothing here prints one. Exit codes: 0 everything converged,
1 something failed, 2 bad usage or a bad plan (rejected before any call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._budgets import Rate, RateLimits
from ._constants import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    HTTP_STACK_ENV,
    LOG_ENV,
    PARTNER_KEY_ENV,
    REDIS_URL_ENV,
    STRICT_RESPONSES_ENV,
    VERSION,
)
from ._errors import AuthenticationError, IntakeQError, InvalidRequestError
from ._keystore import KeyStore
from .partner import PartnerClient
from .provisioning import (
    ItemKind,
    ItemResult,
    ItemStatus,
    Journal,
    Plan,
    PlanError,
    ProvisionReport,
    load_plan,
    provision,
)
from .tokens import SSO_PATHS, sso_url

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["build_parser", "main", "print_summary", "run_provision"]

SSO_HOST_ENV = "INTAKEQ_SSO_HOST"
ENVIRONMENT = {
    PARTNER_KEY_ENV: "your partner key (every command but fake-server needs it)",
    BASE_URL_ENV: "where IntakeQ is (default https://intakeq.com); point it at a fake server to try things",
    SSO_HOST_ENV: "the white-labelled host sso-url links to when --host is not given",
    HTTP_STACK_ENV: "aiohttp or httpx: which HTTP stack sends (default: aiohttp when installed)",
    REDIS_URL_ENV: "the Redis that shares rate budgets between processes when --redis-url is not given",
    LOG_ENV: "debug, info or warning: log to stderr",
    STRICT_RESPONSES_ENV: "1: an answer field of an unexpected type fails the call (default: kept as received)",
}
"""Every environment variable the command reads, for --help and the README (a test keeps them in step)."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_FAILURES_SHOWN = 20


def _rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def _console(out: IO[str] | None) -> Console | None:
    """A rich console on `out`, or None when rich (the `cli` extra) is not installed."""
    if not _rich_available():
        return None
    from rich.console import Console

    return Console(file=out or sys.stdout, highlight=False)


# ----- provisioning with progress (also used by examples/demo.py)


async def run_provision(
    partner: PartnerClient,
    plan: Plan,
    *,
    concurrency: int = 20,
    dry_run: bool = False,
    title: str = "Provisioning",
    out: IO[str] | None = None,
    plain: bool = False,
    on_progress: Callable[[ItemResult], None] | None = None,
    stop: asyncio.Event | None = None,
    journal: Journal | None = None,
    verify: bool = False,
) -> ProvisionReport:
    """Run `provision` with a live progress bar (rich), or periodic plain lines without rich or with `plain`.
    `on_progress` also sees each finished item; once `stop` is set no practice is started; `journal` and
    `verify` are `provision`'s."""
    total = plan.item_count
    console = None if plain else _console(out)
    job = functools.partial(
        provision, concurrency=concurrency, dry_run=dry_run, stop=stop, journal=journal, verify=verify
    )
    if console is None:
        return await _run_plain(job, partner, plan, dry_run, title, out or sys.stdout, total, on_progress)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tally = dict.fromkeys(ItemStatus, 0)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tally]}"),
    )
    progress = Progress(*columns, console=console, transient=False)
    task = progress.add_task(title, total=total, tally="")

    def on_item(item: ItemResult) -> None:
        if on_progress is not None:
            on_progress(item)
        if not progress.live.is_started:
            # Shown from the first finished item on: an error before it (a refused key, say) leaves no empty bar.
            progress.start()
        tally[item.status] += 1
        progress.update(task, advance=1, tally=_tally_text(tally, dry_run, markup=True))

    try:
        return await job(partner, plan, on_progress=on_item)
    finally:
        if progress.live.is_started:
            progress.stop()


async def _run_plain(
    job: Callable[..., Awaitable[ProvisionReport]],
    partner: PartnerClient,
    plan: Plan,
    dry_run: bool,
    title: str,
    out: IO[str],
    total: int,
    on_progress: Callable[[ItemResult], None] | None,
) -> ProvisionReport:
    tally = dict.fromkeys(ItemStatus, 0)
    done = 0
    step = max(1, total // 10)

    def on_item(item: ItemResult) -> None:
        nonlocal done
        if on_progress is not None:
            on_progress(item)
        done += 1
        tally[item.status] += 1
        if item.status is ItemStatus.FAILED:
            print(f"failed: {item.kind.value} {item.key} of {item.practice}: {item.reason}", file=out)
        if done % step == 0 or done == total:
            print(f"{title}: {done}/{total} items ({_tally_text(tally, dry_run, markup=False)})", file=out, flush=True)

    return await job(partner, plan, on_progress=on_item)


def _labels(dry_run: bool) -> dict[ItemStatus, str]:
    return {
        ItemStatus.CREATED: "would create" if dry_run else "created",
        ItemStatus.UPDATED: "would update" if dry_run else "updated",
        ItemStatus.UNCHANGED: "unchanged",
        ItemStatus.FAILED: "failed",
        ItemStatus.SKIPPED: "skipped",
    }


_STYLES = {
    ItemStatus.CREATED: "green",
    ItemStatus.UPDATED: "yellow",
    ItemStatus.UNCHANGED: "dim",
    ItemStatus.FAILED: "bold red",
    ItemStatus.SKIPPED: "red",
}


def _tally_text(tally: dict[ItemStatus, int], dry_run: bool, *, markup: bool) -> str:
    labels = _labels(dry_run)
    parts = []
    for status, n in tally.items():
        if n:
            text = f"{n} {labels[status]}"
            parts.append(f"[{_STYLES[status]}]{text}[/]" if markup else text)
    return ", ".join(parts)


def print_summary(report: ProvisionReport, *, title: str = "Summary", out: IO[str] | None = None) -> None:
    """The per-kind table of outcomes and the first failures with their reasons."""
    console = _console(out)
    labels = _labels(report.dry_run)
    by_kind = report.counts_by_kind()
    failures = report.failures
    if console is None:
        _print_plain_summary(report, title, out or sys.stdout)
        return
    from rich.table import Table

    table = Table(title=title + (" (dry run: nothing was written)" if report.dry_run else ""))
    table.add_column("kind")
    for status in ItemStatus:
        table.add_column(labels[status], justify="right", style=_STYLES[status])
    for kind in ItemKind:
        table.add_row(kind.value + "s", *(str(by_kind[kind][status]) for status in ItemStatus))
    counts = report.counts
    table.add_row("[bold]total", *(f"[bold]{counts[status]}" for status in ItemStatus), end_section=True)
    console.print(table)
    if failures:
        rows = Table(title=f"Failed or skipped ({len(failures)})", show_lines=False)
        for name in ("practice", "kind", "key", "status", "reason"):
            rows.add_column(name, overflow="fold")
        for item in failures[:_FAILURES_SHOWN]:
            rows.add_row(item.practice, item.kind.value, item.key, item.status.value, item.reason or "")
        console.print(rows)
        if len(failures) > _FAILURES_SHOWN:
            console.print(f"... and {len(failures) - _FAILURES_SHOWN} more (see --report)")
    style = "bold green" if report.ok else "bold red"
    console.print(f"[{style}]{_verdict(report)}[/]: {len(report.items)} items in {report.elapsed:.2f} s")


def _print_plain_summary(report: ProvisionReport, title: str, out: IO[str]) -> None:
    labels = _labels(report.dry_run)
    by_kind = report.counts_by_kind()
    print(title + (" (dry run: nothing was written)" if report.dry_run else ""), file=out)
    header = f"{'kind':<14}" + "".join(f"{labels[s]:>14}" for s in ItemStatus)
    print(header, file=out)
    for kind in ItemKind:
        print(f"{kind.value + 's':<14}" + "".join(f"{by_kind[kind][s]:>14}" for s in ItemStatus), file=out)
    counts = report.counts
    print(f"{'total':<14}" + "".join(f"{counts[s]:>14}" for s in ItemStatus), file=out)
    failures = report.failures
    for item in failures[:_FAILURES_SHOWN]:
        print(f"{item.status.value}: {item.kind.value} {item.key} of {item.practice}: {item.reason}", file=out)
    if len(failures) > _FAILURES_SHOWN:
        print(f"... and {len(failures) - _FAILURES_SHOWN} more (see --report)", file=out)
    print(f"{_verdict(report)}: {len(report.items)} items in {report.elapsed:.2f} s", file=out)


def _verdict(report: ProvisionReport) -> str:
    if not report.ok:
        return "not converged"
    if report.dry_run:
        return (
            f"{report.changes} change{'s' * (report.changes != 1)} to make" if report.changes else "nothing to change"
        )
    return "converged"


# ----- commands


def _int_from(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more")
        return value

    return parse


_positive_int = _int_from(1)
_non_negative_int = _int_from(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds > 0")
    return value


def _rates(text: str) -> tuple[Rate, ...]:
    try:
        return Rate.parse(text)
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit_options() -> argparse.ArgumentParser:
    """The budget options every command that calls IntakeQ takes (the same as RateLimits in Python)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("rate budgets (each API key spends its own)")
    group.add_argument(
        "--rate", type=_rates, metavar="RATES", help="the partner key's budget: 50 (a second) or 10/minute,500/day"
    )
    group.add_argument("--practice-rate", type=_rates, metavar="RATES", help="each practice key's budget, as --rate")
    group.add_argument(
        "--redis-url",
        metavar="URL",
        default=os.environ.get(REDIS_URL_ENV),
        help=f"share the budgets with every process using this Redis (default ${REDIS_URL_ENV})",
    )
    group.add_argument(
        "--on-redis-error",
        choices=("fallback", "fail"),
        default="fallback",
        help="when Redis is unreachable: use this process's own budgets (fallback, the default) or stop",
    )
    return parent


def _limits(args: argparse.Namespace) -> RateLimits:
    return RateLimits(
        partner=args.rate or (),
        practice=args.practice_rate or (),
        redis_url=args.redis_url or None,
        on_redis_error=args.on_redis_error,
    )


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, ENVIRONMENT))
    environment = "\n".join(f"  {name:<{width}} {text}" for name, text in ENVIRONMENT.items())
    parser = argparse.ArgumentParser(
        prog="intakeq-partner",
        description="IntakeQ Partner API tools.",
        epilog=f"environment variables (keys are read only from here, never from arguments):\n{environment}\n"
        "  (httpx also honours HTTPS_PROXY, NO_PROXY and SSL_CERT_FILE)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    limits = _limit_options()

    p = commands.add_parser("provision", parents=[limits], help="make IntakeQ match a plan file (.toml or .json)")
    p.add_argument("plan", type=Path, help="the plan file")
    p.add_argument("--concurrency", type=_positive_int, default=20, help="practices worked on at once (20)")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the full report to FILE as JSON")
    p.add_argument("--dry-run", action="store_true", help="read only; show what would be created or updated")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of a live bar")
    p.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep a journal of what is done in FILE (SQLite, made if missing): a run after an interruption "
        "trusts it for practices whose plan entry is unchanged and sends nothing for them",
    )
    p.add_argument("--verify", action="store_true", help="with --state: re-read everything, trusting no journal")
    p.add_argument(
        "--key-store",
        metavar="MODULE:NAME",
        help="keep practice keys between runs in your store: an importable KeyStore (get/put/discard), a class "
        "making one, or a callable practice -> key; nothing is stored without it",
    )
    p.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=DEFAULT_MAX_RETRIES,
        help=f"retries per request after a network error, 429 or 5xx ({DEFAULT_MAX_RETRIES}); raise it for long "
        "runs over a flaky network",
    )
    p.add_argument(
        "--grace",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="after SIGINT or SIGTERM, how long the practices under way may take to finish (30)",
    )

    practices = commands.add_parser("practices", help="practice commands")
    sub = practices.add_subparsers(dest="practices_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", parents=[limits], help="list the partner's practices")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    s = commands.add_parser("sso-url", parents=[limits], help="print a one-time single-sign-on URL for a practice user")
    s.add_argument("practice", help="practice Id or external ID")
    s.add_argument("--user", help="practitioner Id or external ID (default: the practice's main user)")
    s.add_argument("--path", choices=sorted(SSO_PATHS - {"intake"}), help="page to open after signing in")
    s.add_argument("--host", help=f"your white-labelled host (default ${SSO_HOST_ENV}, else ${BASE_URL_ENV})")

    commands.add_parser(
        "fake-server",
        help="run the fake IntakeQ server on loopback (options: see `fake-server --help`)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["fake-server"]:
        return _fake_server(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on bad usage and 0 on --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "provision": _provision,
        "practices": _practices,
        "sso-url": _sso_url,
    }
    try:
        return commands[args.command](args)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AuthenticationError as exc:
        target = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"hint: IntakeQ at {target} refused the partner key: check ${PARTNER_KEY_ENV}"
            f" (and ${BASE_URL_ENV}, if that is not where you meant to go)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except IntakeQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; run the same plan again to finish", file=sys.stderr)
        return 130


def _client(args: argparse.Namespace, **options: Any) -> PartnerClient:
    if not os.environ.get(PARTNER_KEY_ENV):
        raise InvalidRequestError(f"set ${PARTNER_KEY_ENV} to your partner key")
    return PartnerClient(limits=_limits(args), **options)


def _provision(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)  # a bad plan stops here, before any client or call exists
    if args.report is not None and not args.report.parent.is_dir():
        raise InvalidRequestError(f"--report: no such folder: {args.report.parent}")
    if args.report is not None and args.report.is_dir():
        raise InvalidRequestError(f"--report: {args.report} is a folder; give a file name")
    if args.verify and args.state is None:
        raise InvalidRequestError("--verify re-reads what the --state journal would vouch for: give --state FILE")
    store = load_key_store(args.key_store) if args.key_store else None
    # Each practice has at most one request in flight, so the pool only needs room for the workers.
    options: dict[str, Any] = {"key_store": store} if store is not None else {}
    partner = _client(args, max_concurrency=max(args.concurrency, 8), max_retries=args.max_retries, **options)
    journal = Journal(args.state) if args.state is not None else None

    stopping = Stopping(args.grace)

    async def go() -> ProvisionReport:
        async with partner:
            with stopping.on_signals():
                return await run_provision(
                    partner,
                    plan,
                    concurrency=args.concurrency,
                    dry_run=args.dry_run,
                    title="Dry run" if args.dry_run else "Provisioning",
                    plain=args.plain,
                    on_progress=finished.append,
                    stop=stopping.event,
                    journal=journal,
                    verify=args.verify,
                )

    finished: list[ItemResult] = []
    started = time.monotonic()
    try:
        report = asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if journal is not None:
            journal.close()
        # Never leave an older run's report at that path looking like this run's: write what is known.
        if args.report is not None:
            _write_report(args.report, _interrupted(plan, finished, args.dry_run, time.monotonic() - started))
        if stopping.signal is None:
            raise KeyboardInterrupt from None
        print(f"stopped by {stopping.signal.name}; run the same plan again to finish", file=sys.stderr)
        return 128 + stopping.signal
    if journal is not None:
        journal.close()
    if stopping.signal is not None:  # stopped between practices: the rest of the plan was not started
        report = _interrupted(plan, report.items, args.dry_run, report.elapsed)
    print_summary(report)
    if args.report is not None and not _write_report(args.report, report):
        return EXIT_FAILED
    if stopping.signal is not None:
        print(f"stopped by {stopping.signal.name}; run the same plan again to finish", file=sys.stderr)
        return 128 + stopping.signal
    return EXIT_OK if report.ok else EXIT_FAILED


def load_key_store(spec: str) -> KeyStore | Callable[[str], Any]:
    """`--key-store MODULE:NAME`: the object NAME (dotted) of the importable MODULE (from the Python path, then the
    current folder): a KeyStore, a class called with no arguments to make one, or a callable
    practice -> key. Anything else is a one-line InvalidRequestError, before any request is sent."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise InvalidRequestError(f"--key-store {spec!r}: expected MODULE:NAME, e.g. my_vault:keys")
    if os.getcwd() not in sys.path and "" not in sys.path:
        # Last, not first: a file of the folder named like a package the client imports later (redis, rich)
        # must not shadow it for the rest of the run.
        sys.path.append(os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # its import may fail in any way (sys.exit too): say so in one line
        raise InvalidRequestError(f"--key-store {spec!r}: cannot import {module_name}: {_one_line(exc)}") from None
    for part in name.split("."):
        if not hasattr(found, part):
            raise InvalidRequestError(f"--key-store {spec!r}: {module_name} has no {name}")
        found = getattr(found, part)
    if isinstance(found, type):  # a class: its instance is the store (the class itself has get/put/discard too)
        try:
            found = found()
        except (Exception, SystemExit) as exc:
            raise InvalidRequestError(f"--key-store {spec!r}: {name}() failed: {_one_line(exc)}") from None
        if not isinstance(found, KeyStore):
            raise InvalidRequestError(f"--key-store {spec!r}: {name}() made no KeyStore (get, put and discard)")
    if not isinstance(found, KeyStore) and not callable(found):
        raise InvalidRequestError(
            f"--key-store {spec!r}: {name} is of type {type(found).__name__}, neither a KeyStore nor a callable"
        )
    store: KeyStore | Callable[[str], Any] = found
    return store


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Stopping:
    """SIGINT and SIGTERM (what a supervisor such as Kubernetes or systemd sends) stop a run the same way: the
    first starts no new practice and gives those under way `grace` seconds to finish their writes; then, or at a
    second signal, the run is cancelled. Either way the report is written and the exit code is 128 + the signal."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.event = asyncio.Event()
        self.signal: signal.Signals | None = None

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if _can_handle(loop, s)]
        for sig in wanted:
            loop.add_signal_handler(sig, self._received, sig, main, loop)
        try:
            yield
        finally:
            for sig in wanted:
                loop.remove_signal_handler(sig)

    def _received(self, sig: signal.Signals, main: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        if self.signal is not None:
            print(f"{sig.name} again: stopping now", file=sys.stderr, flush=True)
            main.cancel()
            return
        self.signal = sig
        self.event.set()
        print(
            f"{sig.name}: starting nothing new; the practices under way get {self.grace:g} s to finish "
            "(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        loop.call_later(self.grace, main.cancel)


def _can_handle(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> bool:
    """Signal handlers work only in the main thread (and not on Windows' loops)."""
    return threading.current_thread() is threading.main_thread() and hasattr(loop, "add_signal_handler")


def _interrupted(plan: Plan, finished: list[ItemResult], dry_run: bool, elapsed: float) -> ProvisionReport:
    """The items finished before an interrupt, then every other plan item as skipped."""
    report = ProvisionReport(items=list(finished), dry_run=dry_run, elapsed=elapsed)
    seen = {(item.kind, item.practice, item.key) for item in finished}
    for spec in plan.practices:
        keys = [(ItemKind.PRACTICE, spec.external_id)]
        keys += [(ItemKind.PRACTITIONER, p.external_id) for p in spec.practitioners]
        keys += [(ItemKind.ASSISTANT, a.external_id) for a in spec.assistants]
        keys += [(ItemKind.FORM, f.name) for f in spec.forms]
        for kind, key in keys:
            if (kind, spec.external_id, key) not in seen:
                report.items.append(ItemResult(kind, spec.external_id, key, ItemStatus.SKIPPED, "interrupted"))
    return report


def _write_report(path: Path, report: ProvisionReport) -> bool:
    try:
        path.write_text(report.to_json() + "\n", encoding="utf-8")
    except OSError as exc:  # the run is done; say so plainly rather than end on a traceback
        print(f"error: cannot write the report to {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _practices(args: argparse.Namespace) -> int:
    async def go() -> list[Any]:
        async with _client(args) as partner:
            return await partner.practices.list()

    practices = asyncio.run(go())
    columns = ("id", "external_practice_id", "practice_name", "email")
    if args.json:
        print(json.dumps([{name: getattr(p, name) for name in columns} for p in practices], indent=2))
        return EXIT_OK
    console = _console(None)
    if console is None:
        for p in practices:
            print("\t".join(str(getattr(p, name) or "") for name in columns))
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"{len(practices)} practices")
    for name in ("Id", "External ID", "Name", "Email"):
        table.add_column(name)
    for p in practices:
        table.add_row(*(str(getattr(p, name) or "") for name in columns))
    console.print(table)
    return EXIT_OK


def _sso_url(args: argparse.Namespace) -> int:
    host = args.host or os.environ.get(SSO_HOST_ENV) or os.environ.get(BASE_URL_ENV)
    if not host:
        raise InvalidRequestError(f"give --host (your white-labelled domain) or set ${SSO_HOST_ENV}")

    async def go() -> str:
        async with _client(args) as partner:
            token = await partner.practices.ephemeral_token(args.practice, user_id=args.user)
        return sso_url(host, token, path=args.path)

    print(asyncio.run(go()))
    return EXIT_OK


def _fake_server(argv: list[str]) -> int:
    """Hand over to the fake's own runner, which has its own --help and says how to install the testing extra."""
    from .testing.__main__ import main as fake_main

    try:
        return fake_main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
