"""The docs site's pages come from README.md whole and unchanged, every link finds its page, the nav lists them.

`make docs` (in .ci/run) builds the site with mkdocs in strict mode; these checks need no mkdocs, so that a
README edit that would break the site fails `make test` first.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import intakeq_partner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import docs_pages  # noqa: E402


def nav_files(nav: list[Any]) -> list[str]:
    files: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files += nav_files(value) if isinstance(value, list) else [value]
    return files


def test_the_readme_is_split_whole_and_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = docs_pages.split_readme(readme)
    assert [page.name for page in pages] == [name for name, _ in docs_pages.PAGES]
    # Put back together, with the headings one level down again, the pages are the README.
    rebuilt = []
    for page in pages:
        for line, prose in docs_pages.outside_fences("\n".join(page.lines)):
            shifted = prose and page.name != "index.md" and re.match(r"#{1,5} ", line)
            rebuilt.append("#" + line if shifted else line)
    assert "\n".join(rebuilt) == readme.rstrip("\n") + ("\n" if readme.endswith("\n") else "")


def test_a_new_readme_section_joins_the_page_before_it_and_a_renamed_start_fails() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    added = readme.replace("\n## The HTTP stack\n", "\n## Something new\n\nText.\n\n## The HTTP stack\n")
    by_name = {page.name: page.text for page in docs_pages.split_readme(added)}
    assert "# Something new" in by_name["rate-limits.md"]
    # Its links find their pages, GitHub's spelling of an anchor with a slash in it included.
    linked = added.replace(
        "## Something new\n", "## Keys / tokens\n\nSee [this](#keys--tokens), [that](#the-http-stack).\n"
    )
    pages = docs_pages.split_readme(linked)
    page = docs_pages.rewrite_links(next(p for p in pages if p.name == "rate-limits.md"), docs_pages.anchors(pages))
    assert "See [this](#keys-tokens), [that](http-stack.md#the-http-stack)." in page.text
    # In a file copied whole, a bare anchor is that file's own heading; README.md#... is still the README's.
    own = docs_pages.Page("benchmarks.md", ["## Endurance", "[here](#endurance), [there](README.md#the-http-stack)"])
    assert (
        "[here](#endurance), [there](http-stack.md#the-http-stack)"
        in docs_pages.rewrite_links(own, docs_pages.anchors(pages), from_readme=False).text
    )
    with pytest.raises(SystemExit, match="The HTTP stack"):
        docs_pages.split_readme(readme.replace("\n## The HTTP stack\n", "\n## HTTP stacks\n"))


def test_the_pages_are_made_with_every_link_resolved_and_the_nav_lists_them(tmp_path: Path) -> None:
    made = docs_pages.build(tmp_path)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert sorted(nav_files(config["nav"])) == made
    tour = (tmp_path / "tour.md").read_text(encoding="utf-8")
    assert tour.startswith("# A five-minute tour\n") and "```python\nimport asyncio\n" in tour
    everything = "\n".join((tmp_path / name).read_text(encoding="utf-8") for name in made)
    assert "](BENCHMARKS.md)" not in everything and "](benchmarks.md)" in everything
    assert "](rate-limits.md#rate-budgets-and-many-processes)" in everything
    reference = (tmp_path / "cli-reference.md").read_text(encoding="utf-8")
    assert "## `intakeq-partner provision`" in reference and "--dry-run" in reference
    assert "## `python -m intakeq_partner.testing`" in reference and "--p429" in reference


def test_the_api_reference_shows_every_public_resource_class() -> None:
    """The resource classes (partner.practices and the like) are not in __all__: docs/api.md names them."""
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for module in ("partner", "practice"):
        tree = ast.parse((ROOT / "src" / "intakeq_partner" / f"{module}.py").read_text(encoding="utf-8"))
        public = {n.name for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}
        listed = re.search(rf"::: intakeq_partner\.{module}\n    options:\n      members: \[([^\]]*)\]", api)
        assert listed, f"docs/api.md has no members list for intakeq_partner.{module}"
        named = {name.strip() for name in listed.group(1).split(",")}
        assert public - set(intakeq_partner.__all__) == named, f"intakeq_partner.{module}: {named}"
