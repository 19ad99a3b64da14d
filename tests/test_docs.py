"""The documentation runs as written: every code block of every Markdown file is executed or parsed here.

Python blocks run as a user would run them after copying them into a file, against a fresh fake IntakeQ
that listens on loopback, with $INTAKEQ_PARTNER_KEY and $INTAKEQ_BASE_URL pointing at it. A block that
defines `test_...` functions is run by pytest, with the package's own pytest plugin. TOML blocks must be valid
provisioning plans; command lines in shell blocks must parse with the real argument parsers.
"""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Served

from intakeq_partner.cli import build_parser
from intakeq_partner.provisioning import parse_plan
from intakeq_partner.testing import FakeIntakeQ
from intakeq_partner.testing.__main__ import parse_args as fake_server_args

ROOT = Path(__file__).resolve().parent.parent
DOC_FOLDERS = (ROOT, ROOT / "docs", ROOT / "examples")
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the first line of code, 1-based
    lang: str
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    files: list[Path] = []
    for folder in DOC_FOLDERS:
        pattern = "*.md" if folder == ROOT else "**/*.md"
        files += sorted(p for p in folder.glob(pattern) if p.is_file())
    return files


def blocks(lang: str) -> list[Block]:
    found = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == lang:
                line = text.count("\n", 0, match.start(2)) + 1
                found.append(Block(path, line, lang, match.group(2)))
    return found


def ids(items: list[Block]) -> list[str]:
    return [str(block) for block in items]


PYTHON = blocks("python")
SCRIPTS = [block for block in PYTHON if not re.search(r"^(async )?def test_", block.code, re.MULTILINE)]
TESTS = [block for block in PYTHON if block not in SCRIPTS]


def test_the_docs_have_blocks_to_check() -> None:
    """The extraction itself works: the README has scripts, a test, a plan and command lines."""
    readme = [block for block in blocks("python") + blocks("toml") + blocks("sh") if block.path.name == "README.md"]
    assert {block.lang for block in readme} == {"python", "toml", "sh"}
    assert len([block for block in SCRIPTS if block.path.name == "README.md"]) >= 3


@pytest.mark.parametrize("block", SCRIPTS, ids=ids(SCRIPTS))
def test_python_block_runs_as_written(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeIntakeQ("docs-partner-key", seed=7)
    script = tmp_path / f"{block.path.stem}_{block.line}.py"
    # Blank lines in front keep the line numbers of a traceback equal to the Markdown file's.
    script.write_text("\n" * (block.line - 1) + block.code, encoding="utf-8")
    with Served(fake) as served:
        monkeypatch.setenv("INTAKEQ_PARTNER_KEY", fake.partner_key)
        monkeypatch.setenv("INTAKEQ_BASE_URL", served.url)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", [str(script)])
        runpy.run_path(str(script), run_name="__main__")
    assert fake.stats.logged > 0 or "FakeIntakeQ(" in block.code, f"{block} never reached IntakeQ"
    capsys.readouterr()


@pytest.mark.parametrize("block", TESTS, ids=ids(TESTS))
def test_test_block_passes_with_the_plugin(block: Block, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(**{f"test_{block.path.stem.lower()}_{block.line}": block.code})
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(re.findall(r"^(?:async )?def test_", block.code, re.MULTILINE)))


@pytest.mark.parametrize("block", blocks("toml"), ids=ids(blocks("toml")))
def test_toml_block_is_a_valid_plan(block: Block) -> None:
    plan = parse_plan(tomllib.loads(block.code), source=str(block))
    assert plan.practices


def _command_lines(block: Block) -> Iterator[list[str]]:
    for raw in block.code.splitlines():
        line = raw.split(" #", 1)[0].strip()
        words = shlex.split(line) if line and not line.startswith("#") else []
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value in front of a command
            words.pop(0)
        if words:
            yield words


SHELL = blocks("sh")


def _parses(parse: Callable[[list[str]], object], args: list[str]) -> None:
    """Parse a command line; `--help` and `--version` exit 0, which counts as parsed."""
    try:
        parse(args)
    except SystemExit as exc:
        assert exc.code == 0, f"{args} does not parse"


@pytest.mark.parametrize("block", SHELL, ids=ids(SHELL))
def test_shell_block_command_lines_parse(block: Block) -> None:
    """Every `intakeq-partner ...`, `python -m intakeq_partner.testing ...` and `pip install ...` line is real."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for words in _command_lines(block):
        if words[0] == "intakeq-partner" and words[1:2] == ["fake-server"]:
            _parses(fake_server_args, words[2:])
        elif words[0] == "intakeq-partner":
            _parses(build_parser().parse_args, words[1:])
        elif words[:3] == ["python", "-m", "intakeq_partner.testing"]:
            _parses(fake_server_args, words[3:])
        elif words[:2] == ["pip", "install"]:
            for requirement in words[2:]:
                named = re.fullmatch(r"intakeq-partner(?:\[([\w,-]+)\])?", requirement)
                assert named, f"{block}: installs something else: {requirement}"
                assert set(filter(None, (named.group(1) or "").split(","))) <= extras, f"{block}: {requirement}"


def test_python_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """What a user copies from the docs type-checks under `mypy --strict` against the installed package."""
    for block in PYTHON:
        (tmp_path / f"{block.path.stem.lower()}_{block.line}.py").write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(tmp_path)],
        cwd=ROOT,  # shares the project's mypy cache, warm after `make typecheck`
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
