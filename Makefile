# Every target bootstraps .venv itself: a fresh clone needs only python3 (>= 3.11) and make
# (make test also installs Debian's redis-server when it is missing: scripts/ensure-redis-server).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test matrix dist docs lint typecheck generate check-generated api-diff doc-check bench soak clean redis-server

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The suite runs in TEST_WORKERS processes (pytest-xdist; worksteal evens out the long tests): most of its time is
# spent waiting (timeouts, hung fakes, redis-server outages, subprocesses), so more workers than cores keep 2 cores
# busy. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3

test: $(STAMP) redis-server check-generated lint typecheck
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# `make test` on every supported CPython found here (PATH, else pyenv's versions); names the ones it skips.
# One session: make matrix NOX='-s tests-3.13'.
matrix: $(STAMP) redis-server
	$(VENV)/bin/nox $(NOX)

# sdist and wheel in dist/, twine's check, then the wheel installed in fresh venvs, alone and with each extra,
# running the README tour and the CLI against a fake started from each (scripts/check_dist.py).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .
	$(VENV)/bin/twine check --strict dist/*
	$(PY) scripts/check_dist.py dist

# The docs site in site/: pages made from README.md, CHANGELOG.md, BENCHMARKS.md, CONTRIBUTING.md and the CLI's
# parsers (scripts/docs_pages.py), the API reference from the docstrings; any warning fails the build.
# NO_MKDOCS_2_WARNING: Material for MkDocs prints a banner on every build (its end of life is May 2027; its
# successor, Zensical, reads this mkdocs.yml).
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check --group docs
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) scripts/docs_pages.py build/docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The shared rate-limiter tests and benchmark run a real redis-server on a loopback port.
redis-server:
	@scripts/ensure-redis-server

LINT_DIRS := $(wildcard src tests generator bench examples scripts/*.py noxfile.py)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

generate: $(STAMP)
	$(PY) -m generator

check-generated: $(STAMP)
	$(PY) -m generator --check

# What changed in the API since BASE (default: the last release tag, else origin/main, else main), and what breaks.
api-diff: $(STAMP)
	$(PY) -m generator.api_diff $(if $(BASE),--base $(BASE))

# The spec against IntakeQ's API document: make doc-check DOC=path/to/saved-page.html (or .txt)
doc-check: $(STAMP)
	@test -n "$(DOC)" || { echo "usage: make doc-check DOC=<the IntakeQ partner API page, saved as .html or .txt>"; exit 2; }
	$(PY) -m generator.doc_check "$(DOC)"

bench: $(STAMP) redis-server
	$(PY) -m bench

soak: $(STAMP)
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) build dist site .nox *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
