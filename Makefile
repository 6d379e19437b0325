# aimass: `make run` starts the platform with a demo, `make test` runs every test.
# Both set up their own virtual environment in .venv on first use.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
EXTRAS ?= dev,torch,ray,zoo

.PHONY: install run test lint check bench clean ui

install: $(VENV)/.installed ## create .venv and install aimass with its dev extras

$(VENV)/.installed: pyproject.toml
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; } \
		|| echo "bubblewrap is missing and could not be installed: jobs and code-bearing models need it"
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium is missing and could not be installed: the browser tests will be skipped"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

run: install ## start the server on the embedded default (SQLite, local files) with the demo
	$(BIN)/aimass server --demo

test: install ## run the whole test suite (PostgreSQL tests run when 127.0.0.1:5432 answers)
	$(BIN)/pytest

lint: install ## ruff, formatting, mypy strict and the import contracts
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test ## everything CI runs

bench: install ## the benchmarks (long; not part of the tests)
	@ls benchmarks/*/run.sh 2>/dev/null | xargs -r -n1 bash

UI_DIST := src/aimass/api/ui_dist/index.html
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/package-lock.json ui/index.html ui/vite.config.ts

ui: $(UI_DIST) ## build the web UI into the package (npm ci, client from the OpenAPI, vite build)

$(UI_DIST): $(UI_SOURCES)
	cd ui && npm ci --no-audit --no-fund
	$(BIN)/python -m aimass.api.openapi_dump > ui/openapi.json
	cd ui && npm run gen && npm run build

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
