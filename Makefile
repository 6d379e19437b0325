# aimass: `make run` starts the platform with a demo, `make test` runs every test.
# Both set up their own virtual environment in .venv on first use. `make run` installs
# only what the server and its demo need (the core) with uv, which resolves and installs
# in parallel and links files from its cache: seconds once its cache is warm. uv itself
# is installed once per machine into $(UV_HOME) (or taken from PATH). `make test`,
# `make lint` and `make install` add the extras (torch, Ray, the model library's
# libraries, the dev tools) with pip, a few GB and minutes more.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
EXTRAS ?= dev,torch,ray,zoo,grpc,llm
UV_VERSION ?= 0.13.9
UV_HOME ?= $(HOME)/.cache/aimass-uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_HOME)/bin/uv)
# What `run` and `test` need built before they start: `run` the core and the web UI's
# bundle; `test` also the extras and the UI's client checked against the server's OpenAPI.
RUN_NEEDS := core ui
TEST_NEEDS := extras ui-client ui

.PHONY: install core extras run test lint check bench clean ui ui-client

install: extras ## everything: the core, the extras ($(EXTRAS)) and the test set-up

core: $(VENV)/.core ## create .venv with aimass's core dependencies only (what `make run` needs)

extras: $(VENV)/.extras ## add the extras ($(EXTRAS)) and Chromium for the browser tests

$(VENV)/.core: pyproject.toml
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; } \
		|| echo "bubblewrap is missing and could not be installed: jobs and code-bearing models need it"
	@test -x "$(UV)" || { echo "installing uv $(UV_VERSION) in $(UV_HOME) (once per machine)"; \
		$(PYTHON) -m venv $(UV_HOME) && $(UV_HOME)/bin/python -m pip install -q uv==$(UV_VERSION); } \
		|| echo "uv could not be installed: installing with pip (slower)"
	@# uv makes the venv (with pip in it, for the extras) in a second; venv's ensurepip takes longer.
	@test -x $(BIN)/python || { test -x "$(UV)" && $(UV) venv -q --seed -p $(PYTHON) $(VENV); } \
		|| $(PYTHON) -m venv $(VENV)
	@# Compiled bytecode, as pip leaves it: without it every start compiles fastapi, SQLAlchemy,
	@# pydantic... again (benchmarks/plugins/start_time.py: about 3x the start's CPU time).
	@if test -x "$(UV)"; then $(UV) pip install -q --compile-bytecode --python $(BIN)/python -e .; \
		else $(BIN)/python -m pip install -q -e .; fi
	@touch $@

$(VENV)/.extras: $(VENV)/.core
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium is missing and could not be installed: the browser tests will be skipped"
	@command -v prometheus >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; } \
		|| echo "prometheus is missing and could not be installed: the Prometheus scrape test will be skipped"
	@command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy; } \
		|| echo "haproxy is missing and could not be installed: the rolling-restart test will be skipped"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

run: $(RUN_NEEDS) ## start the server on the embedded default (SQLite, local files) with the demo
	$(BIN)/aimass server --demo

test: $(TEST_NEEDS) ## run the whole test suite (PostgreSQL tests run when 127.0.0.1:5432 answers)
	$(BIN)/pytest

lint: extras ## ruff, formatting, mypy strict and the import contracts
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test ## everything CI runs

bench: extras ## the benchmarks (long; not part of the tests)
	@ls benchmarks/*/run.sh 2>/dev/null | xargs -r -n1 bash

UI_DIST := src/aimass/api/ui_dist/index.html
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/package-lock.json ui/index.html ui/vite.config.ts

ui: $(UI_DIST) ## build the web UI into the package (npm ci, vite build; seconds)

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --prefer-offline

$(UI_DIST): $(UI_SOURCES) ui/node_modules/.package-lock.json
	cd ui && npm run bundle

ui-client: core ui/node_modules/.package-lock.json ## regenerate the UI's typed client from the server's OpenAPI and type-check the UI
	$(BIN)/python -m aimass.api.openapi_dump > ui/openapi.json
	cd ui && npm run gen && npx tsc --noEmit

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
