# The two commands of the README: `make dev` (the whole stack, sample traffic, invoices) and
# `make test` (lint, types, all tests against a real Kafka broker and ClickHouse engine).
# `make install` is the one-time setup both need; CI (.ci/run) runs `make install test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install dev test lint kafka-stop

install:  ## pinned Python deps in .venv + the Apache Kafka broker jars (Maven Central, cached)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pipeline kafka install

dev:
	$(BIN)/python -m pipeline dev

lint:
	$(BIN)/ruff check pipeline tests
	$(BIN)/ruff format --check pipeline tests
	$(BIN)/mypy

test: lint
	@# pytest exits 5 when it collected nothing: say so plainly instead of failing obscurely.
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing was tested"; exit 0; fi; \
	exit $$rc

kafka-stop:
	$(BIN)/python -m pipeline kafka stop
