"""What a release is made of agrees with itself: the licence, the version, the changelog's headings, the classifiers.

`make dist` checks the built wheel itself (scripts/check-dist); these are the cheap checks of the sources.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml
from packaging.version import Version

from intakeq_partner import __version__

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
HEADING = re.compile(r"^## \[([^\]]+)\](.*)$", re.MULTILINE)


def releases(changelog: str) -> list[tuple[str, str]]:
    """The `## [...]` headings of a changelog, as (name, rest of the line)."""
    return [(m.group(1), m.group(2)) for m in HEADING.finditer(changelog)]


def test_the_licence_file_is_the_one_pyproject_names() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def check_version_against_changelog(version: str, changelog: str) -> None:
    """Unreleased first; releases newest first, dated; the version is the newest release or the next one's .dev."""
    headings = releases(changelog)
    assert headings and headings[0][0] == "Unreleased", "CHANGELOG.md must start with ## [Unreleased]"
    released = [Version(name) for name, _ in headings[1:]]
    assert released == sorted(released, reverse=True), "releases must be listed newest first"
    for name, rest in headings[1:]:
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), f"## [{name}] needs its date: ## [{name}] - YYYY-MM-DD"
    current = Version(version)
    if current.is_devrelease:
        assert not released or current > released[0], f"{version} must come after the last release, {released[0]}"
    else:
        assert released and current == released[0], f"version {version} is no release of CHANGELOG.md"


def test_the_version_follows_the_changelog() -> None:
    check_version_against_changelog(__version__, (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))


def test_the_version_check_refuses_what_it_should() -> None:
    good = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-12-24\n\n## [0.1.0] - 2026-11-25\n"
    check_version_against_changelog("0.2.0", good)
    check_version_against_changelog("0.3.0.dev0", good)
    bad = {
        "0.1.0": good,  # an older release than the newest
        "0.2.0.dev0": good,  # a dev version of what is already released
        "0.3.0": good,  # a release the changelog does not name
    }
    bad_changelogs = [
        good.replace("## [Unreleased]\n\n", ""),
        good.replace(" - 2026-11-25", ""),
        good.replace("[0.1.0]", "[0.3.0]"),
    ]
    for version, changelog in [*bad.items(), *(("0.3.0.dev0", text) for text in bad_changelogs)]:
        try:
            check_version_against_changelog(version, changelog)
        except AssertionError:
            continue
        raise AssertionError(f"{version} accepted against {changelog!r}")


def test_the_classifiers_name_every_supported_python_and_both_matrices_test_them() -> None:
    classifiers = PROJECT["classifiers"]
    versions = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and versions[0] == PROJECT["requires-python"].removeprefix(">=")
    assert "Typing :: Typed" in classifiers and (ROOT / "src" / "intakeq_partner" / "py.typed").exists()
    noxfile = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    [supported] = [
        ast.literal_eval(node.value)
        for node in noxfile.body
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["SUPPORTED"]
    ]
    assert supported == tuple(versions)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8"))
    assert tuple(workflow["jobs"]["test"]["strategy"]["matrix"]["python"]) == supported
