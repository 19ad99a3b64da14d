"""`make docs`'s first step: the docs site's pages, made at build time from the files that hold their text.

The guide is README.md cut at its `## ` headings: PAGES names the heading each page starts at, and a section
added to the README joins the page before it, so the README stays the one copy of the text (and the one that
tests/test_docs.py runs). CHANGELOG.md, BENCHMARKS.md and CONTRIBUTING.md are copied whole; the command-line
reference is the argument parsers' own --help; the hand-written pages in docs/ (the API reference, which
mkdocstrings fills from the docstrings) are copied as they are. Links are rewritten to the page that now holds
their target; a link to another file of the repository goes to the forge (pyproject's Source URL).

Usage: python scripts/docs_pages.py OUT_DIR    (mkdocs.yml reads build/docs)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (page, the start of the README heading it begins at); the first page holds what comes before.
PAGES: list[tuple[str, str]] = [
    ("index.md", ""),
    ("tour.md", "A five-minute tour"),
    ("clients.md", "What the clients do for you"),
    ("coming-from.md", "Coming from "),
    ("rate-limits.md", "Rate budgets"),
    ("http-stack.md", "The HTTP stack"),
    ("provisioning.md", "Bulk provisioning"),
    ("cli.md", "The command line"),
    ("testing.md", "Testing your integration"),
    ("operations.md", "Every operation"),
]
# Files of the repository that are pages of their own.
WHOLE = {"CHANGELOG.md": "changelog.md", "BENCHMARKS.md": "benchmarks.md", "CONTRIBUTING.md": "contributing.md"}
CLI_REFERENCE = "cli-reference.md"

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6}) (.+)$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc (and GitHub, for these headings) gives a heading."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def outside_fences(text: str) -> list[tuple[str, bool]]:
    """Each line with whether it is prose (True) or inside a fenced code block."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            lines.append((line, False))
            fenced = not fenced
        else:
            lines.append((line, not fenced))
    return lines


@dataclass
class Page:
    name: str
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n") + "\n"


def split_readme(readme: str) -> list[Page]:
    """README.md cut into PAGES at their `## ` headings; a page's headings move up one level (## becomes #)."""
    pages = [Page(PAGES[0][0], [])]
    starts = dict((start, name) for name, start in PAGES[1:])
    seen: set[str] = set()
    for line, prose in outside_fences(readme):
        heading = HEADING.match(line) if prose else None
        if heading and len(heading.group(1)) == 2:
            for start, name in starts.items():
                if heading.group(2).startswith(start) and name not in seen:
                    seen.add(name)
                    pages.append(Page(name, []))
        if heading and pages[-1].name != PAGES[0][0]:
            line = heading.group(1)[1:] + " " + heading.group(2)
        pages[-1].lines.append(line)
    missing = [f"## {start}..." for start, name in starts.items() if name not in seen]
    if missing:
        raise SystemExit(f"docs_pages: README.md has no heading {', '.join(missing)}: update PAGES in {__file__}")
    return pages


def anchors(pages: list[Page]) -> dict[str, tuple[str, str]]:
    """Each heading's anchor, as the page that holds it and its anchor there, by the anchor without repeated
    hyphens (GitHub writes "a--b" for "A / B", where the toc writes "a-b")."""
    found: dict[str, tuple[str, str]] = {}
    for page in pages:
        for line, prose in outside_fences(page.text):
            heading = HEADING.match(line) if prose else None
            if heading:
                anchor = slug(heading.group(2))
                found.setdefault(re.sub("-+", "-", anchor), (page.name, anchor))
    return found


def source_url() -> str:
    urls: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    return urls["Source"].rstrip("/")


def rewrite_links(page: Page, where: dict[str, tuple[str, str]], *, from_readme: bool = True) -> Page:
    """Links to a README section, to CHANGELOG/BENCHMARKS/CONTRIBUTING and to other files, as the site has them.
    A bare `#anchor` is a README section in the README's pages, and stays where it is in a file copied whole."""

    def target(match: re.Match[str]) -> str:
        link = match.group(1)
        if re.match(r"[a-z]+:", link):
            return match.group(0)
        path, _, anchor = link.partition("#")
        if path == "" and not from_readme:
            return match.group(0)  # mkdocs checks that the page has it
        if path in ("", "README.md") and anchor:
            if re.sub("-+", "-", anchor) not in where:
                raise SystemExit(f"docs_pages: {page.name}: no heading for the link #{anchor}")
            name, there = where[re.sub("-+", "-", anchor)]
            return f"]({'' if name == page.name else name}#{there})"
        if path == "README.md":
            return f"]({PAGES[0][0]})"
        if path in WHOLE:
            return f"]({WHOLE[path]}{'#' + anchor if anchor else ''})"
        if not (ROOT / path).exists():
            raise SystemExit(f"docs_pages: {page.name}: the link {link} leads to no file of the repository")
        return f"]({source_url()}/blob/main/{link})"

    lines = [LINK.sub(target, line) if prose else line for line, prose in outside_fences(page.text)]
    return Page(page.name, lines)


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, the subcommands' included, by the command line that reaches it."""
    from intakeq_partner.cli import build_parser
    from intakeq_partner.testing.__main__ import build_parser as fake_server_parser

    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(prog: str, parser: argparse.ArgumentParser) -> None:
        found.append((prog, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(f"{prog} {name}", sub)

    walk("intakeq-partner", build_parser())
    found.append(("python -m intakeq_partner.testing", fake_server_parser()))
    return found


def cli_reference() -> Page:
    os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal: the same width wherever it is built
    os.environ["NO_COLOR"] = "1"  # and colours it on 3.14 when it thinks it may
    lines = [
        "# Command-line reference",
        "",
        "Every command's `--help`, as the installed parsers print it (this page is made from them at build time).",
        "The guide to the commands is [The command line](cli.md); the fake server is also",
        "`intakeq-partner fake-server`, which takes the same options as `python -m intakeq_partner.testing`.",
    ]
    for prog, parser in parsers():
        lines += ["", f"## `{prog}`", "", "```text", parser.format_help().rstrip(), "```"]
    return Page(CLI_REFERENCE, lines)


def build(out: Path) -> list[str]:
    """Write every page into `out` (emptied first); returns their names."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pages = split_readme((ROOT / "README.md").read_text(encoding="utf-8"))
    where = anchors(pages)
    pages = [rewrite_links(page, where) for page in pages]
    for source, name in WHOLE.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        pages.append(rewrite_links(Page(name, text.split("\n")), where, from_readme=False))
    pages.append(cli_reference())
    for page in pages:
        (out / page.name).write_text(page.text, encoding="utf-8")
    for hand_written in sorted((ROOT / "docs").glob("*.md")):
        if (out / hand_written.name).exists():
            raise SystemExit(f"docs_pages: docs/{hand_written.name} has the name of a page made from other files")
        shutil.copy(hand_written, out / hand_written.name)
    return sorted(p.name for p in out.glob("*.md"))


if __name__ == "__main__":
    made = build(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "docs"))
    print(f"docs_pages: {len(made)} pages: {', '.join(made)}")
