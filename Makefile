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

## Benchmarks, one after another on a quiet machine (about 25 minutes): figures on stdout,
## data in docs/bench-data/, charts in docs/charts/. A target missed does not stop the rest.
bench: $(STAMP)
	./scripts/services.sh
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	-$(BIN)/python bench/webhook.py --json docs/bench-data/webhook.json
	-$(BIN)/python bench/latency.py --json docs/bench-data/latency.json
	-$(BIN)/python bench/processing.py --workers 1,2,4 --json docs/bench-data/processing.json
	-$(BIN)/python bench/sending.py --messages 6000 --workers 2 --concurrency 2 --batch 50 \
		--rate 250 --beat --json docs/bench-data/sending.json
	-$(BIN)/python bench/admin.py --json docs/bench-data
	-$(BIN)/python bench/soak.py
	$(BIN)/python bench/charts.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
