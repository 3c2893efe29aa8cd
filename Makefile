# The one interface for people and CI. Every target sets itself up first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-tests run test test-fast lint format bench docs clean

setup:
	@scripts/setup.sh

setup-tests:
	@scripts/setup.sh --tests

run: setup
	$(BIN)/flowyard server start

test: setup-tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff format --check flowyard tests bench
	$(BIN)/ruff check flowyard tests bench
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format flowyard tests bench
	$(BIN)/ruff check --fix flowyard tests bench

bench: setup
	$(BIN)/python -m bench

docs: setup
	$(BIN)/python -m flowyard.cli.docs > docs/cli.md

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
