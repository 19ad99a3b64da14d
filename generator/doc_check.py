"""`make doc-check DOC=<file>`: the spec against IntakeQ's own API document (the page saved as HTML or text).

From the document it takes every operation (`[METHOD] https://intakeq.com/api/...`, with the key named in the
`X-Auth-Key: [Partner Key]` line under it), the query parameters in its URLs, and every field named in the
JSON examples of the operation's section. It reports both directions:

- what the document has that the spec lacks: an operation, a query parameter or a field (allowed only when the
  spec's `x-omitted` list names it with a reason), or a section of the contents the document never describes;
- what the spec has that the document does not show: an operation, parameter or field (allowed only when the
  spec says where it comes from, with `x-source` or `x-assumption` on it or on its schema).

Exit code 0 when clean, 1 when something is reported, 2 when the document cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from . import spec as specs

DEFAULT_DOC = specs.ROOT.parent / "shared" / "reference" / "intakeq-partner-api.txt"

_OPERATION = re.compile(r"\[(GET|POST|PUT|DELETE|PATCH)\]\s*(https?://\S+)")
_CONTINUATION = re.compile(r"^[\w\[\]{}/?=&.%-]+$")
_KEY = re.compile(r"X-Auth-Key:\s*\[(Partner|Practice) Key\]", re.I)
_CONTENTS_ENTRY = re.compile(r"^\s*[-*\u2022]\s*(.+?)\s*\(#[\w-]+\)\s*$")
# A JSON key in an example, quoted or not: `"PracticeName":` or `Id:`. Wire names are PascalCase.
_FIELD = re.compile(r"(?<![\w-])\"?([A-Z][A-Za-z0-9]*)\"?\s*:(?!//)")
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\{[^}]*\}")


# -- reading the document ---------------------------------------------------------------------------------------


class _Text(HTMLParser):
    """HTML to the same plain text a browser's "save as text" gives: blocks on their own lines, code fenced,
    links as `text (href)`, list items as `- item`."""

    BLOCKS = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "table", "ul", "ol", "section"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.href: list[str | None] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
            self.out.append("\n```\n")
        elif tag in self.BLOCKS:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1
        elif tag == "pre":
            self.pre -= 1
            self.out.append("\n```\n")
        elif tag in self.BLOCKS:
            self.out.append("\n")
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith("#"):
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def read_document(path: Path) -> str:
    """The document as text, whether it was saved as HTML or as text."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if re.search(r"<(html|body|h[1-6]|pre)\b", raw[:5000], re.I):
        parser = _Text()
        parser.feed(raw)
        raw = "".join(parser.out)
    return raw


@dataclass
class DocOperation:
    method: str
    path: str  # with placeholders as {}: /api/partner/practice/{}/key
    key: str | None  # "partner", "practice" or None when no X-Auth-Key line follows
    section: str
    query: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


@dataclass
class Document:
    operations: list[DocOperation]
    undescribed: list[str]  # entries of the contents with no section of their own


def _join_wrapped(lines: list[str], start: int, url: str) -> tuple[str, int]:
    """A URL the page wrapped over several lines (`.../transferData/[destinati` + `onPractitionerId]`)."""
    i = start + 1
    while True:
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i < len(lines) and _CONTINUATION.match(lines[i].strip()) and not lines[i].strip().startswith("```"):
            url += lines[i].strip()
            i += 1
            continue
        return url, i


def normalise(path: str) -> str:
    """`/api/partner/practice/[practiceId]/key` and `/api/partner/practice/{practiceId}/key` read the same."""
    return _PLACEHOLDER.sub("{}", path).rstrip("/")


def parse_document(text: str) -> Document:
    lines = text.splitlines()
    contents: list[str] = []
    for line in lines:
        entry = _CONTENTS_ENTRY.match(line)
        if entry:
            contents.append(entry.group(1))
    bodies = {line.strip() for line in lines if not _CONTENTS_ENTRY.match(line)}
    undescribed = [title for title in contents if title not in bodies]

    titles = bodies & set(contents)
    sections = [(line.strip(), i) for i, line in enumerate(lines) if line.strip() in titles]
    bounds = [*(start for _, start in sections), len(lines)]
    found: dict[tuple[str, str], DocOperation] = {}
    for (title, start), end in zip(sections, bounds[1:], strict=True):
        chunk = lines[start:end]
        ops: list[DocOperation] = []
        i = 0
        while i < len(chunk):
            match = _OPERATION.search(chunk[i])
            if not match:
                i += 1
                continue
            url, after = _join_wrapped(chunk, i, match.group(2))
            address = re.sub(r"^https?://[^/]+", "", url)
            path, _, query = address.partition("?")
            key_line = next((m for line in chunk[i : after + 3] if (m := _KEY.search(line))), None)
            if path.startswith("/api/"):
                op = DocOperation(
                    match.group(1),
                    normalise(path),
                    key_line.group(1).lower() if key_line else None,
                    title,
                    {part.split("=")[0] for part in query.split("&") if part},
                )
                ops.append(op)
            i = after
        if not ops:
            continue
        names = _example_fields(chunk)
        for op in ops:
            op.fields = names
            known = found.get((op.method, op.path))
            if known is None:
                found[(op.method, op.path)] = op
            else:  # the same operation shown twice (e.g. as the base URL's example): merge what each says
                known.key = known.key or op.key
                known.query |= op.query
                known.fields |= op.fields
    return Document(list(found.values()), undescribed)


def _example_fields(chunk: list[str]) -> set[str]:
    """Field names in the code blocks of one section (the JSON examples), skipping header lines."""
    names: set[str] = set()
    inside = False
    for line in chunk:
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and not _OPERATION.search(line) and "X-Auth-Key" not in line:
            names.update(_FIELD.findall(line.split("//", 1)[0] if "://" not in line else line))
    return names


# -- comparing with the spec ------------------------------------------------------------------------------------


def _marked(node: dict[str, Any]) -> bool:
    return any(node.get(mark) for mark in specs.SOURCE_MARKS)


def _omitted(spec: specs.Spec) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = spec.get("x-omitted", [])
    for entry in listed:
        if not entry.get("reason"):
            raise ValueError(f"x-omitted entry without a reason: {entry}")
    return listed


def compare(doc: Document, spec: specs.Spec) -> list[str]:
    """Everything the document and the spec disagree on that the spec does not explain. Empty: clean."""
    problems: list[str] = []
    omitted = _omitted(spec)

    def omits(**what: str) -> bool:
        return any(all(entry.get(k) == v for k, v in what.items()) for entry in omitted)

    for title in doc.undescribed:
        if not omits(section=title):
            problems.append(f"document: section '{title}' is in the contents but never described")

    ops = specs.operations(spec)
    by_address = {(op.method, normalise(op.path)): op for op in ops.values()}
    shown: set[str] = set()
    for d in doc.operations:
        op = by_address.get((d.method, d.path))
        label = f"{d.method} {d.path}"
        if op is None:
            if not omits(operation=label):
                problems.append(f"document has operation {label} ('{d.section}'); the spec does not")
            continue
        shown.add(op.id)
        if d.key and d.key != op.scope:
            problems.append(f"{op.id}: the document sends the {d.key} key, the spec the {op.scope} key")
        query = {p.name for p in op.params if p.location == "query"}
        for name in sorted(d.query - query):
            if not omits(operation=op.id, parameter=name):
                problems.append(f"{op.id}: document has query parameter '{name}'; the spec does not")
        for p in op.params:
            if p.location == "query" and p.name not in d.query and not _marked(p.raw):
                problems.append(f"{op.id}: spec has query parameter '{p.name}' the document does not show")
        wire = {f.name for s in [*specs.nested(spec, op.request), *specs.nested(spec, op.response)]
                for f in specs.fields(spec, s).values()}  # fmt: skip
        for name in sorted(d.fields - wire):
            if not omits(operation=op.id, field=name):
                problems.append(f"{op.id}: document's example has field '{name}'; the spec does not")

    for op in ops.values():
        if op.id not in shown and not _marked(op.raw):
            problems.append(f"spec has operation {op.id} ({op.method} {op.path}) the document does not show")

    # Fields: each schema against the examples of every documented operation that sends or receives it.
    seen: dict[str, set[str]] = {}
    documented = {d_op.id: d for d in doc.operations if (d_op := by_address.get((d.method, d.path)))}
    for op_id, d in documented.items():
        op = ops[op_id]
        for name in {*specs.nested(spec, op.request), *specs.nested(spec, op.response)}:
            seen.setdefault(name, set()).update(d.fields)
    for schema, names in seen.items():
        node = specs.schemas(spec)[schema]
        if _marked(node):
            continue
        for f in specs.fields(spec, schema).values():
            if f.name not in names and not _marked(f.raw):
                problems.append(f"spec has field {schema}.{f.name} that no example of the document shows")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator.doc_check", description=__doc__.splitlines()[0])
    parser.add_argument("doc", nargs="?", type=Path, default=DEFAULT_DOC, help="the saved page (.html or .txt)")
    parser.add_argument("--spec", type=Path, default=specs.SPEC)
    args = parser.parse_args(argv)
    try:
        doc = parse_document(read_document(args.doc))
    except OSError as exc:
        print(f"cannot read {args.doc}: {exc.strerror}", file=sys.stderr)
        return 2
    if not doc.operations:
        print(f"{args.doc}: no operations found (expected lines like `[GET] https://intakeq.com/api/...`)")
        return 2
    problems = compare(doc, specs.load(args.spec))
    print(f"{args.doc}: {len(doc.operations)} operations in the document")
    for problem in problems:
        print(f"  {problem}")
    print("clean: the spec matches the document or says why not" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
