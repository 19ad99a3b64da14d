"""Run the fake over loopback: ``python -m intakeq_partner.testing --port 8765``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._fake import FakeIntakeQ
from ._faults import Faults
from ._server import bind, make_config, wait_started


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m intakeq_partner.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--partner-key", help="generated and printed when omitted")
    parser.add_argument("--seed", type=int, help="makes ids, keys and faults repeatable")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra uniform delay, seconds")
    parser.add_argument("--p429", type=float, default=0.0)
    parser.add_argument("--p5xx", type=float, default=0.0, help="split over 500, 502 and 503")
    parser.add_argument("--p-drop", type=float, default=0.0)
    parser.add_argument("--p-hang", type=float, default=0.0)
    parser.add_argument("--p-malformed", type=float, default=0.0)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--retry-after", type=int, default=1, help="seconds in Retry-After of injected 429s")
    parser.add_argument("--rate-limit", type=float, help="requests per second per key")
    parser.add_argument(
        "--log-limit",
        type=int,
        default=10_000,
        help="request records kept in memory (the newest; the counters count all); -1 keeps every one",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
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
    )
    fake = FakeIntakeQ(
        args.partner_key,
        seed=args.seed,
        faults=faults,
        page_size=args.page_size,
        log_limit=None if args.log_limit < 0 else args.log_limit,
    )
    asyncio.run(_run(fake, args, print_key=args.partner_key is None))


async def _run(fake: FakeIntakeQ, args: argparse.Namespace, print_key: bool) -> None:
    import uvicorn

    sock = bind(args.host, args.port)
    server = uvicorn.Server(make_config(fake.app, args.host, args.port, log_level=args.log_level))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, serving)
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"Fake IntakeQ at http://{host}:{sock.getsockname()[1]}", flush=True)
        if print_key:
            print(f"Partner key: {fake.partner_key}", flush=True)
        await serving
    finally:
        fake._release_hangs()
        sock.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
