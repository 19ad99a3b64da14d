"""Decoding: JSON bytes to models, ours (`loads` + `structure_list`) against the stock `from_dict`.

Every round times each variant once, in turn, on the same bytes; the ratio of each round is kept and the
median ratio is quoted. Both parsers are measured for our path: orjson (what `loads` uses when installed) and
the standard library's json (what it falls back to). A cattrs converter with the same wire rules
(`bench/cattrs_structure.py`) is measured alongside: it would replace `_wire.py`'s decoders only at >= 1.4x.
Our path is timed both ways it reads: strict (what tests run) and tolerant (clients' default), which may cost a
well-formed answer at most 10% more (`bench.decoding_refs` compares it with the code before it existed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from intakeq_partner import _wire
from intakeq_partner._generated.models import Intake, Practice

from . import _data
from ._common import Result, median, stock_client, timed
from .cattrs_structure import Structurer

ROUNDS = 9
TARGET = 1.5  # aim; "no slower than stock" (>= 1.0) is the requirement
TOLERANT_LIMIT = 1.10  # the tolerant reading (clients' default) may cost a well-formed answer at most 10% more
CATTRS_TARGET = 1.4  # what a cattrs structure path must reach, on both bodies and both parsers, to replace ours


def _variants(stock: Any, model: type[Any], stock_model: type[Any], body: bytes) -> dict[str, Callable[[], Any]]:
    structure_list = _wire.structure_list
    with_cattrs = Structurer().structure_list
    with_cattrs_fast = Structurer(detailed_validation=False).structure_list
    from_dict = stock_model.from_dict
    return {
        "json.loads alone": lambda: json.loads(body),
        "orjson.loads alone": lambda: orjson.loads(body),
        "stock: json.loads + from_dict": lambda: [from_dict(d) for d in json.loads(body)],
        "ours: orjson + structure_list": lambda: structure_list(model, orjson.loads(body)),
        "ours tolerant: orjson + structure_list": lambda: structure_list(model, orjson.loads(body), strict=False),
        "ours: json + structure_list": lambda: structure_list(model, json.loads(body)),
        "cattrs: orjson + structure": lambda: with_cattrs(model, orjson.loads(body)),
        "cattrs: json + structure": lambda: with_cattrs(model, json.loads(body)),
        "cattrs, errors without field: orjson": lambda: with_cattrs_fast(model, orjson.loads(body)),
    }


def _measure(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    for fn in variants.values():  # warm up: compile decoders, fill caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    return times


def _check_same(stock_model: type[Any], model: type[Any], body: bytes) -> None:
    """Both paths must decode the same data (a benchmark of a decoder that drops fields would be meaningless)."""
    ours = _wire.structure_list(model, _wire.loads(body))
    theirs = [stock_model.from_dict(d) for d in json.loads(body)]
    assert len(ours) == len(theirs)
    assert ours[0].id == theirs[0].id and _wire.unstructure(ours[-1])["Id"] == theirs[-1].to_dict()["Id"]
    assert Structurer().structure_list(model, _wire.loads(body)) == ours  # the candidate decodes the same
    assert _wire.structure_list(model, _wire.loads(body), strict=False) == ours  # a well-formed body: no difference


def _speed(ratio: float) -> str:
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def run(rounds: int = ROUNDS, scale: float = 1.0) -> Result:
    started = time.perf_counter()
    result = Result("Decoding")
    cases = [
        ("practices", int(10_000 * scale), Practice, "Practice", _data.practices_body),
        ("intakes", int(1_000 * scale), Intake, "Intake", _data.intakes_body),
    ]
    with stock_client() as stock:
        for label, n, model, stock_name, make_body in cases:
            body = make_body(n)
            stock_model = getattr(stock.models, stock_name)
            _check_same(stock_model, model, body)
            times = _measure(_variants(stock, model, stock_model, body), rounds)
            stock_t = times["stock: json.loads + from_dict"]
            name_strict = "ours: orjson + structure_list"
            for name in ("ours: orjson + structure_list", "ours: json + structure_list"):
                ratio = median([s / o for s, o in zip(stock_t, times[name], strict=True)])
                parser = name.split(":")[1].split("+")[0].strip()
                result.add(
                    f"{n:,} {label} ({parser}): stock / ours",
                    _speed(ratio),
                    f">= 1.0x (aim {TARGET}x)",
                    ratio >= 1.0,
                    "aim met" if ratio >= TARGET else "aim missed",
                )
            cost = median(
                [
                    t / s
                    for t, s in zip(times["ours tolerant: orjson + structure_list"], times[name_strict], strict=True)
                ]
            )
            result.add(
                f"{n:,} {label} (orjson): tolerant / strict reading",
                f"{cost:.3f}x",
                f"<= {TOLERANT_LIMIT}x",
                cost <= TOLERANT_LIMIT,
            )
            for name, figure in (
                ("cattrs: orjson + structure", "(orjson): stock / cattrs candidate"),
                ("cattrs: json + structure", "(json): stock / cattrs candidate"),
                ("cattrs, errors without field: orjson", "(orjson): stock / cattrs without detailed errors"),
            ):
                ratio = median([s / o for s, o in zip(stock_t, times[name], strict=True)])
                result.add(
                    f"{n:,} {label} {figure}",
                    _speed(ratio),
                    f">= {CATTRS_TARGET}x to replace ours",
                    None,  # a candidate, not a requirement: it decides whether _wire.py keeps its own decoders
                    "would qualify" if ratio >= CATTRS_TARGET else "not adopted",
                )
            result.details.append(f"{n:,} {label}, {len(body) / 1e6:.1f} MB of JSON, median of {rounds} rounds:")
            for name, values in times.items():
                per_item = median(values) / n * 1e6
                result.details.append(f"  {name:<38} {median(values) * 1e3:8.2f} ms  ({per_item:6.2f} us/item)")
            parse_share = median(times["orjson.loads alone"]) / median(times["ours: orjson + structure_list"])
            result.details.append(f"  parsing is {parse_share:.0%} of our orjson path; the rest is building models")
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(rounds=3, scale=0.1)
