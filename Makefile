# Two commands on a fresh machine: `make run` (the product on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run web, worker and scheduler on SQLite with an embedded broker; SMS are printed.
run: $(STAMP)
	$(BIN)/signup serve --demo

## Lint, type-check and run the whole test suite against real PostgreSQL and Redis.
test: $(STAMP)
	./scripts/services.sh
	./scripts/browser.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check signup workers
	$(BIN)/mypy

## Benchmarks (results in docs/benchmarks.md): the webhook vs hello-world, then the admin at 1M rows.
bench: $(STAMP)
	./scripts/services.sh
	$(BIN)/python bench/webhook.py || [ $$? -eq 3 ]
	$(BIN)/python bench/admin.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
