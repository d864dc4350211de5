# Every target installs what it needs from uv.lock into .venv on first use (and re-syncs when
# pyproject.toml or uv.lock change). uv is pinned and bootstrapped into .tools/ with pip.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# uv never downloads a Python of its own: it uses $(PYTHON).
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Tests run in 4 workers on the 2 cores (much of the suite waits on subprocesses and servers);
# idle workers steal queued tests from busy ones. `make test XDIST=0` runs in one process.
XDIST ?= 4

.PHONY: demo test test-latest lint lock lock-check bench clean setup setup-dev

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## setup: the core package only (what `make demo` needs), exactly as locked
setup: $(UV)
	$(UV) sync --quiet --locked --inexact

## setup-dev: core, both clouds, test and lint tools, exactly as locked
setup-dev: $(UV)
	$(UV) sync --quiet --locked --extra dev

## demo: run the example job on this machine (cloud_tasks run, provider local)
demo: setup
	cd examples/local && MY_WORKER_RESULTS_DIR=../../demo-results ../../$(BIN)/cloud_tasks run --config config.yml --tasks my_tasks.json --db-file ../../demo.db --force

## test: run the whole test suite on the locked versions
test: setup-dev
	$(BIN)/python -m pytest -q -n $(XDIST) --dist worksteal

## test-latest: the suite on the newest versions pyproject.toml allows (drift check)
test-latest: $(UV)
	$(UV) venv --quiet --allow-existing .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --quiet --upgrade --resolution highest -e '.[dev]'
	.venv-latest/bin/python -m pytest -q -n $(XDIST) --dist worksteal

## lint: ruff and mypy --strict on src/
lint: setup-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src

## lock: re-resolve uv.lock after a change to pyproject.toml's dependencies
lock: $(UV)
	$(UV) lock

## lock-check: fail when uv.lock no longer matches pyproject.toml
lock-check: $(UV)
	$(UV) lock --check

clean:
	rm -rf $(VENV) .venv-latest $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf demo-results demo.db demo.db-* .cloud_tasks examples/local/.cloud_tasks examples/local/events.log src/*.egg-info
