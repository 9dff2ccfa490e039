# The two commands of the README: `make demo` and `make test`. Each creates (or reuses) .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cognito-backuper demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n 2 --durations=15

# tests/unit only (no engine, no CDK synthesis): the quick loop while editing.
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache cdk.out

# The scale benchmark (emulated Cognito on a virtual clock): writes BENCHMARKS.md, bench/bench.png, bench/results.json.
# `make bench BENCH_ARGS="--sizes 10000,100000 --restore-sizes 10000"` for a shorter run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.run --out BENCHMARKS.md $(BENCH_ARGS)
