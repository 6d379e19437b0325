# aimass: `make run` starts the platform with a demo, `make test` runs every test.
# Both set up their own virtual environment in .venv on first use. `make run` installs
# only what the server and its demo need (the core), with a current pip (it resolves in
# half the time of Python 3.11's) and no bytecode compiling (Python compiles on import);
# `make test`, `make lint` and `make install` add the extras (torch, Ray, the model
# library's libraries, the dev tools), a few GB and about a minute more.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
EXTRAS ?= dev,torch,ray,zoo
# The web UI's build (a `ui` target) joins these when it lands: what `run` and `test`
# need built before they start.
RUN_NEEDS := core
TEST_NEEDS := extras

.PHONY: install core extras run test lint check bench clean

install: extras ## everything: the core, the extras ($(EXTRAS)) and the test set-up

core: $(VENV)/.core ## create .venv with aimass's core dependencies only (what `make run` needs)

extras: $(VENV)/.extras ## add the extras ($(EXTRAS)) and Chromium for the browser tests

$(VENV)/.core: pyproject.toml
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; } \
		|| echo "bubblewrap is missing and could not be installed: jobs and code-bearing models need it"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -e .
	@touch $@

$(VENV)/.extras: $(VENV)/.core
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium is missing and could not be installed: the browser tests will be skipped"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

run: $(RUN_NEEDS) ## start the server on the embedded default (SQLite, local files) with the demo
	$(BIN)/aimass server --demo

test: $(TEST_NEEDS) ## run the whole test suite (PostgreSQL tests run when 127.0.0.1:5432 answers)
	$(BIN)/pytest

lint: extras ## ruff, formatting, mypy strict and the import contracts
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test ## everything CI runs

bench: extras ## the benchmarks (long; not part of the tests)
	@ls benchmarks/*/run.sh 2>/dev/null | xargs -r -n1 bash

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
