# The two commands in the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck services bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: serve the gateway on http://127.0.0.1:8080 with the demo data (SQLite under ./data)
run: install
	$(BIN)/care-gateway serve --host 127.0.0.1 --port 8080 --demo

services:
	bash .ci/services.sh

lint: install
	$(BIN)/ruff check gateway tests bench fixtures
	$(BIN)/ruff format --check gateway tests bench fixtures

typecheck: install
	$(BIN)/mypy

## make test: lint, type-check and the whole pytest suite (real SQLite, PostgreSQL and Redis)
test: install services lint typecheck
	$(BIN)/pytest -q

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
