"""`make bench`: run the benchmarks, print a table, optionally write the Markdown section of BENCHMARKS.md.

python -m bench                      all of them
python -m bench decoding overhead    some of them (see NAMES below)
python -m bench --markdown           also print the Markdown section
python -m bench --write              also replace the generated section of BENCHMARKS.md
python -m bench --quick              fewer rounds and smaller loads, to check that everything runs
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from ._common import ROOT, Result, machine

NAMES = (
    "provisioning",
    "calls",
    "limits",
    "overhead",
    "observability",
    "imports",
    "decoding",
    "ratelimit",
    "shared_budget",
    "shared_rate",
    "memory",
    "endurance",
)
BEGIN = "<!-- bench:begin (written by `python -m bench --write`) -->"
END = "<!-- bench:end -->"


def _mark(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


def table(results: list[Result]) -> str:
    rows = [("Benchmark", "Figure", "Value", "Target", "")]
    for result in results:
        for figure in result.figures:
            status = _mark(figure.met) + (f" ({figure.note})" if figure.note else "")
            rows.append((result.title, figure.name, figure.value, figure.target, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown(results: list[Result], command: str) -> str:
    out = [BEGIN, "", f"Measured with `{command}`.", ""]
    out += [f"- **{key}**: {value}" for key, value in machine().items()]
    out += ["", "| Benchmark | Figure | Value | Target | Status |", "|---|---|---|---|---|"]
    for result in results:
        for f in result.figures:
            status = _mark(f.met) + (f" ({f.note})" if f.note else "")
            out.append(f"| {result.title} | {f.name} | {f.value} | {f.target} | {status} |")
    for result in results:
        out += ["", f"### {result.title} (details, {result.seconds:.0f} s)", "", "```", *result.details, "```"]
    out += ["", END]
    return "\n".join(out)


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*NAMES, []], metavar="NAME", help=", ".join(NAMES))
    parser.add_argument("--markdown", action="store_true", help="print the Markdown section too")
    parser.add_argument("--write", action="store_true", help="write the Markdown section into BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="small loads, few rounds (a smoke test)")
    args = parser.parse_args(argv)
    names = args.names or list(NAMES)
    results: list[Result] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result: Result = module.run_quick() if args.quick else module.run()
        results.append(result)
        print(f"  {result.title}: {result.seconds:.1f} s", file=sys.stderr, flush=True)
        for line in result.details:
            print(f"  | {line}", file=sys.stderr)
    print()
    print(table(results))
    print(f"\n{len(results)} benchmark(s) in {time.perf_counter() - started:.0f} s")
    command = "python -m bench" + (" " + " ".join(args.names) if args.names else "") + (" --quick" * args.quick)
    if args.markdown or args.write:
        text = markdown(results, command)
        if args.markdown:
            print("\n" + text)
        if args.write:
            write_section(text)
            print("wrote BENCHMARKS.md", file=sys.stderr)
    missed = [f for r in results for f in r.figures if f.met is False]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
