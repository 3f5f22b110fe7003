# The two commands of the README, each doing its own set-up first on a fresh machine:
#   make dev   the whole stack on this machine (local Kafka and ClickHouse servers, sample
#              traffic from all five gateways, invoices)
#   make test  lint, types and every test against real Kafka and ClickHouse servers
# Both install what they need first (`make install`, skipped while the pinned inputs are
# unchanged). CI (.ci/run) runs `make test` on a clean clone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Rebuilt when the pinned dependencies change; the Kafka jars are checked on every run
# (a cached copy is found in a moment).
STAMP := $(VENV)/.installed

.PHONY: install dev test lint kafka-stop clickhouse-stop

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## pinned Python deps in .venv + the Apache Kafka broker jars (Maven Central, cached)
	$(BIN)/python -m pipeline kafka install

dev: install
	$(BIN)/python -m pipeline dev

lint: install
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

clickhouse-stop:
	$(BIN)/python -m pipeline clickhouse stop
