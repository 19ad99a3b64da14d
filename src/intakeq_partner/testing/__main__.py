"""Run the fake IntakeQ server over loopback: ``python -m intakeq_partner.testing --port 8765``.

It prints its URL and a partner key; point your app at them with $INTAKEQ_BASE_URL and $INTAKEQ_PARTNER_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._extra import INSTALL_HINT, missing_packages
from ._records import TIMESTAMP_FORMS

if TYPE_CHECKING:
    from ._fake import FakeIntakeQ

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m intakeq_partner.testing",
        description=__doc__,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s; keep it a loopback address)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on (default %(default)s; 0 picks a free port)"
    )
    parser.add_argument("--partner-key", help="the partner key the fake accepts; generated and printed when omitted")
    parser.add_argument("--seed", type=int, help="makes ids, keys and faults repeatable from run to run")
    parser.add_argument(
        "--page-size", type=int, default=100, help="records per page of paged lists (default %(default)s)"
    )
    readings = parser.add_argument_group("readings of the API document (see FakeIntakeQ's docstring)")
    readings.add_argument(
        "--timestamps",
        default="documented",
        choices=list(TIMESTAMP_FORMS),
        help="how timestamps are written (default %(default)s)",
    )
    readings.add_argument(
        "--list-paging",
        default="all",
        choices=["all", "paged", "ignores-page"],
        help="how the practice list pages without a page parameter (default %(default)s)",
    )
    readings.add_argument(
        "--update-semantics",
        default="merge",
        choices=["merge", "replace"],
        help="what a PUT does with fields it leaves out (default %(default)s)",
    )
    faults = parser.add_argument_group("faults (probabilities are per API request, from 0 to 1)")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    faults.add_argument("--jitter", type=float, default=0.0, help="extra uniform delay per request, in seconds")
    faults.add_argument("--p429", type=float, default=0.0, help="chance of a 429 Too Many Requests")
    faults.add_argument("--p5xx", type=float, default=0.0, help="chance of a 500, 502 or 503 (split evenly)")
    faults.add_argument("--p-drop", type=float, default=0.0, help="chance the connection closes with no answer")
    faults.add_argument("--p-hang", type=float, default=0.0, help="chance of no answer for --hang-seconds")
    faults.add_argument(
        "--p-malformed", type=float, default=0.0, help="chance of a 200 with truncated JSON or an HTML page"
    )
    faults.add_argument(
        "--hang-seconds", type=float, default=30.0, help="how long a hung request waits (default %(default)s s)"
    )
    faults.add_argument(
        "--retry-after", type=int, default=1, help="seconds in the Retry-After of injected 429s (default %(default)s)"
    )
    faults.add_argument(
        "--rate-limit", type=float, help="requests per --rate-window per key; beyond it, 429 (default: no limit)"
    )
    faults.add_argument(
        "--rate-window", type=float, default=1.0, help="seconds the --rate-limit window spans (default %(default)s)"
    )
    faults.add_argument(
        "--rate-limit-silent",
        action="store_true",
        help="the --rate-limit's 429s carry no Retry-After (the client must guess how long to wait)",
    )
    parser.add_argument(
        "--log-limit",
        type=int,
        default=10_000,
        help="request records kept in memory (the newest; the counters count all); -1 keeps every one",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default %(default)s); debug and trace also log every request",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until interrupted; the exit code is 2 when the `testing` extra is not installed."""
    args = parse_args(argv)  # --help works without the extra
    missing = missing_packages()
    if missing:
        print(
            f"error: the fake server needs {' and '.join(missing)}; install them with: {INSTALL_HINT}", file=sys.stderr
        )
        return EXIT_USAGE
    from ._fake import FakeIntakeQ
    from ._faults import Faults

    faults = Faults(
        latency=args.latency,
        jitter=args.jitter,
        p429=args.p429,
        p5xx=args.p5xx,
        p_drop=args.p_drop,
        p_hang=args.p_hang,
        p_malformed=args.p_malformed,
        hang_seconds=args.hang_seconds,
        retry_after=args.retry_after,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        rate_limit_retry_after=not args.rate_limit_silent,
    )
    fake = FakeIntakeQ(
        args.partner_key,
        seed=args.seed,
        faults=faults,
        page_size=args.page_size,
        log_limit=None if args.log_limit < 0 else args.log_limit,
        timestamps=args.timestamps,
        list_paging=args.list_paging,
        update_semantics=args.update_semantics,
    )
    try:
        asyncio.run(_run(fake, args, print_key=args.partner_key is None))
    except PortTaken as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


class PortTaken(Exception):
    """The port asked for is in use: said in one line, with how to pick another."""


async def _run(fake: FakeIntakeQ, args: argparse.Namespace, print_key: bool) -> None:
    import uvicorn

    from ._server import bind, make_config, wait_started

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(
            f"port {args.port} on {args.host} is taken (another fake server?): "
            "pick another with --port N, or --port 0 for a free one (the export lines say which)"
        ) from None
    server = uvicorn.Server(make_config(fake.app, args.host, args.port, log_level=args.log_level))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, serving)
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"Fake IntakeQ at http://{host}:{sock.getsockname()[1]}", flush=True)
        if print_key:
            print(f"Partner key: {fake.partner_key}", flush=True)
        print(f"export INTAKEQ_BASE_URL=http://{host}:{sock.getsockname()[1]}", flush=True)
        print(f"export INTAKEQ_PARTNER_KEY={fake.partner_key}", flush=True)
        await serving
    finally:
        fake._release_hangs()
        sock.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
