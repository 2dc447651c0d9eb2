# Two commands from a fresh clone: `make run` and `make test`. Everything they need is made here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.toml
DB     ?= watcher.db

.PHONY: run test test-fast lint format bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamp files make the install rerun when pyproject.toml changes, and only then.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/watcher --config $(CONFIG) --db $(DB) run

# Lint and types are part of green: `make test` runs them first, so CI (.ci/run -> make test) enforces them.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check watcher tests bench
	$(BIN)/ruff check watcher tests bench
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format watcher tests bench
	$(BIN)/ruff check --fix watcher tests bench

test: lint
	$(BIN)/python -m pytest -q

# Everything but the slow tests (daemons and servers as subprocesses, browsers, the hostile-feed matrix): the edit-test loop.
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m "not slow"

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
