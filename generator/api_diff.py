"""`make api-diff`: what changed in the API between a git ref and the working tree, and whether it breaks users.

Two halves:
- the wire, from the spec: operations added, removed, renamed or moved; parameters and request/response fields
  added, removed, possibly renamed (a removal and an addition in one model), made required or optional, or
  given another type; each marked breaking or not from the point of view of code using this client;
- the Python API of the package, from griffe (its `check`, run on both trees).

The default base is the last release tag, else origin/main, else main (`BASE=<ref>` overrides). With
`--check-changelog` it fails unless CHANGELOG.md's Unreleased section names every wire change and every
breaking change.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import spec as specs

ROOT = specs.ROOT
CHANGELOG = ROOT / "CHANGELOG.md"
PACKAGE = "intakeq_partner"
SPEC_PATH = "openapi/intakeq-partner.yaml"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Change:
    """One difference. `names` are what a CHANGELOG entry for it must mention (each of them)."""

    what: str
    names: tuple[str, ...]
    breaking: bool

    @property
    def wire(self) -> bool:
        return not self.what.startswith("python: ")

    def line(self) -> str:
        return f"{'BREAKING' if self.breaking else 'ok':<9} {self.what}"


# -- the wire ---------------------------------------------------------------------------------------------------


def _types(text: str) -> set[str]:
    return set(text.split(" | "))


def _type_change_breaks(old: str, new: str, direction: str) -> bool:
    """A request field may accept more (a wider type); a response field may promise more (a narrower one)."""
    if direction == "request":
        return not _types(new) >= _types(old)
    if direction == "response":
        return not _types(new) <= _types(old)
    return True


def _directions(uses: dict[str, list[str]]) -> list[str]:
    return [d for d in ("request", "response") if uses.get(d)] or ["unused"]


def _pair_renames(removed: list[specs.Field], added: list[specs.Field]) -> list[tuple[specs.Field, specs.Field]]:
    """Pair removals with additions in one model: same type first, then in order."""
    pairs: list[tuple[specs.Field, specs.Field]] = []
    left = list(added)
    for old in removed:
        match = next((new for new in left if new.type == old.type), left[0] if left else None)
        if match is None:
            break
        left.remove(match)
        pairs.append((old, match))
    return pairs


def _field_changes(old: specs.Spec, new: specs.Spec) -> list[Change]:
    changes: list[Change] = []
    old_uses, new_uses = specs.schema_uses(old), specs.schema_uses(new)
    old_schemas, new_schemas = specs.schemas(old), specs.schemas(new)
    for name in [*old_schemas, *(n for n in new_schemas if n not in old_schemas)]:
        if name not in new_schemas:
            changes.append(Change(f"model removed: {name}", (name,), breaking=name in old_uses))
            continue
        if name not in old_schemas:
            changes.append(Change(f"model added: {name}", (name,), breaking=False))
            continue
        uses = new_uses.get(name) or old_uses.get(name) or {}
        directions = _directions(uses)
        where = ", ".join(f"{d} of {', '.join(uses[d])}" for d in directions if d in uses) or "no operation"
        before, after = specs.fields(old, name), specs.fields(new, name)
        removed = [f for n, f in before.items() if n not in after]
        added = [f for n, f in after.items() if n not in before]
        for old_field, new_field in _pair_renames(removed, added):
            removed.remove(old_field)
            added.remove(new_field)
            changes.append(
                Change(
                    f"possible rename: {name}.{old_field.name} -> {name}.{new_field.name} ({where})",
                    (name, old_field.name),
                    breaking=True,
                )
            )
        for f in removed:
            changes.append(Change(f"field removed: {name}.{f.name} ({where})", (name, f.name), breaking=True))
        for f in added:
            required = " required" if f.required else ""
            breaks = f.required and "request" in directions
            changes.append(
                Change(f"field added:{required} {name}.{f.name}: {f.type} ({where})", (name, f.name), breaks)
            )
        for field_name in before.keys() & after.keys():
            was, now = before[field_name], after[field_name]
            subject = f"{name}.{field_name}"
            if was.required != now.required:
                breaks = ("request" in directions and now.required) or ("response" in directions and was.required)
                state = "required" if now.required else "optional"
                changes.append(Change(f"now {state}: {subject} ({where})", (name, field_name), breaks))
            if was.type != now.type:
                breaks = any(_type_change_breaks(was.type, now.type, d) for d in directions)
                changes.append(
                    Change(f"type changed: {subject}: {was.type} -> {now.type} ({where})", (name, field_name), breaks)
                )
    return changes


def _param_changes(op_id: str, before: Iterable[specs.Param], after: Iterable[specs.Param]) -> list[Change]:
    changes: list[Change] = []
    was = {(p.location, p.name): p for p in before}
    now = {(p.location, p.name): p for p in after}
    for key in was.keys() - now.keys():
        changes.append(Change(f"{key[0]} parameter removed: {op_id}({key[1]})", (op_id, key[1]), breaking=True))
    for key in now.keys() - was.keys():
        p = now[key]
        state = "required" if p.required else "optional"
        changes.append(Change(f"{state} {key[0]} parameter added: {op_id}({p.name})", (op_id, p.name), p.required))
    for key in was.keys() & now.keys():
        a, b = was[key], now[key]
        if a.required != b.required:
            state = "required" if b.required else "optional"
            changes.append(Change(f"parameter now {state}: {op_id}({b.name})", (op_id, b.name), b.required))
        if a.type != b.type:
            breaks = _type_change_breaks(a.type, b.type, "request")
            changes.append(Change(f"parameter type changed: {op_id}({b.name}): {a.type} -> {b.type}", (op_id,), breaks))
    return sorted(changes, key=lambda c: c.what)


def _answer(op: specs.Operation) -> str:
    return f"list of {op.response}" if op.response_is_list else str(op.response)


def spec_changes(old: specs.Spec, new: specs.Spec) -> list[Change]:
    """Every difference between two versions of the spec, operations first."""
    before, after = specs.operations(old), specs.operations(new)
    changes: list[Change] = []
    moved_to = {(op.method, op.path): op.id for op in after.values()}
    for op_id, op in before.items():
        if op_id in after:
            continue
        other = moved_to.get((op.method, op.path))
        if other is not None and other not in before:
            changes.append(Change(f"operation renamed: {op_id} -> {other}", (op_id,), breaking=True))
        else:
            changes.append(Change(f"operation removed: {op_id} ({op.method} {op.path})", (op_id,), breaking=True))
    renamed_to = {c.what.rsplit(" ", 1)[-1] for c in changes if c.what.startswith("operation renamed")}
    for op_id, op in after.items():
        if op_id not in before and op_id not in renamed_to:
            changes.append(Change(f"operation added: {op_id} ({op.method} {op.path}, {op.scope} key)", (op_id,), False))
    for op_id in before.keys() & after.keys():
        a, b = before[op_id], after[op_id]
        if (a.method, a.path) != (b.method, b.path):
            moved = f"{a.method} {a.path} -> {b.method} {b.path}"
            changes.append(Change(f"operation moved: {op_id}: {moved}", (op_id,), breaking=True))
        if a.scope != b.scope:
            changes.append(Change(f"key changed: {op_id}: {a.scope} key -> {b.scope} key", (op_id,), breaking=True))
        if a.idempotent != b.idempotent:
            state = "safe to repeat" if b.idempotent else "no longer safe to repeat"
            changes.append(Change(f"retry policy: {op_id} is {state} (x-idempotent)", (op_id,), breaking=False))
        if a.request != b.request:
            changes.append(Change(f"request body: {op_id}: {a.request} -> {b.request}", (op_id,), breaking=True))
        if (a.response, a.response_is_list) != (b.response, b.response_is_list):
            changes.append(Change(f"response: {op_id}: {_answer(a)} -> {_answer(b)}", (op_id,), breaking=True))
        changes += _param_changes(op_id, a.params, b.params)
    return changes + _field_changes(old, new)


# -- the Python API (griffe) ------------------------------------------------------------------------------------


def python_changes(old_src: Path, new_src: Path) -> list[Change]:
    """Breaking changes of the package's public Python API, as griffe finds them."""
    import griffe

    old = griffe.load(PACKAGE, search_paths=[old_src], resolve_aliases=True, resolve_external=False)
    new = griffe.load(PACKAGE, search_paths=[new_src], resolve_aliases=True, resolve_external=False)
    changes = []
    for breakage in griffe.find_breaking_changes(old, new):
        path = breakage.obj.path.removeprefix(f"{PACKAGE}.")
        # The class and member a reader would write, e.g. Assistants.update.
        short = ".".join(part for part in path.split(".") if not part.startswith("_"))
        subject = ".".join(short.split(".")[-2:]) if "." in short else short
        explanation = _ANSI.sub("", breakage.explain(style=griffe.ExplanationStyle.ONE_LINE)).strip()
        explanation = explanation.split(": ", 1)[-1] if explanation.count(": ") >= 2 else explanation  # no file:line
        changes.append(Change(f"python: {explanation} (in {PACKAGE}.{path})", (subject,), breaking=True))
    return changes


# -- git --------------------------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def default_base() -> str | None:
    """The last release tag, else origin/main, else main; None outside a git checkout with those refs."""
    tag = _git("describe", "--tags", "--abbrev=0", "--match", "v*")
    if tag:
        return tag
    for ref in ("origin/main", "main"):
        if _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
            return ref
    return None


def spec_at(ref: str) -> specs.Spec:
    text = _git("show", f"{ref}:{SPEC_PATH}")
    if text is None:
        raise SystemExit(f"cannot read {SPEC_PATH} at {ref!r}")
    return specs.loads(text)


def extract_src(ref: str, dest: Path) -> Path:
    """The package's source tree at `ref`, unpacked under `dest`; returns the folder to import it from."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, f"src/{PACKAGE}"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


# -- CHANGELOG --------------------------------------------------------------------------------------------------


def unreleased(changelog: str) -> str:
    """The text of the `## [Unreleased]` section (empty when there is none)."""
    match = re.search(r"^## \[Unreleased\][^\n]*\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    return match.group(1) if match else ""


def missing_from_changelog(changes: Iterable[Change], changelog: str) -> list[Change]:
    """The changes users must read about whose names the Unreleased section does not all mention: every wire
    change (a new field or operation too) and every breaking change of the Python API."""
    section = unreleased(changelog)

    def mentioned(name: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", section) is not None

    return [c for c in changes if (c.breaking or c.wire) and not all(mentioned(n) for n in c.names)]


def fork_point(base: str) -> str:
    """Where this branch left `base`: changes that landed on `base` since are not this branch's to report."""
    return _git("merge-base", base, "HEAD") or base


def changes_since(base: str, with_python: bool = True) -> list[Change]:
    """Spec and Python API changes from `base` (its fork point with HEAD) to the working tree."""
    base = fork_point(base)
    found = spec_changes(spec_at(base), specs.load())
    if with_python:
        with tempfile.TemporaryDirectory() as tmp:
            found += python_changes(extract_src(base, Path(tmp)), ROOT / "src")
    return found


def report(base: str, changes: list[Change]) -> str:
    lines = [f"API changes from {base} to the working tree"]
    wire = [c for c in changes if not c.what.startswith("python: ")]
    python = [c for c in changes if c.what.startswith("python: ")]
    lines.append(f"\nWire ({SPEC_PATH}):")
    lines += [f"  {c.line()}" for c in wire] or ["  no changes"]
    lines.append("\nPython API (griffe check; only breaking changes are listed):")
    lines += [f"  {c.line().replace('python: ', '', 1)}" for c in python] or ["  no breaking changes"]
    breaking = sum(c.breaking for c in changes)
    lines.append(f"\n{breaking} breaking change(s).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator.api_diff", description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git ref to compare with (default: last v* tag, else origin/main, else main)")
    parser.add_argument("--check-changelog", action="store_true", help="fail unless CHANGELOG.md names each change")
    args = parser.parse_args(argv)
    base = args.base or default_base()
    if base is None:
        print("no base to compare with: pass BASE=<git ref>", file=sys.stderr)
        return 2
    changes = changes_since(base)
    fork = fork_point(base)
    print(report(base if fork == base else f"{base} (where this branch left it, {fork[:10]})", changes))
    if args.check_changelog:
        missing = missing_from_changelog(changes, CHANGELOG.read_text(encoding="utf-8") if CHANGELOG.exists() else "")
        if missing:
            print("\nCHANGELOG.md's [Unreleased] section does not name these changes:")
            print("\n".join(f"  {c.what}  (mention: {', '.join(c.names)})" for c in missing))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
