# The two commands of the README: `make demo` and `make test`. Each creates (or reuses) .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench clean iam-deps asl-deps

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

# The IAM contract's evaluator (tests/iam, npm, AGPL): a test-time tool only, never shipped or bundled.
IAM_STAMP := tests/iam/node_modules/.installed
$(IAM_STAMP): tests/iam/package.json tests/iam/package-lock.json
	npm ci --prefix tests/iam --no-audit --no-fund
	touch $(IAM_STAMP)

iam-deps: $(IAM_STAMP)

# The ASL validator (tests/asl, npm): checks the synthesized definitions as AWS would at deploy time.
ASL_STAMP := tests/asl/node_modules/.installed
$(ASL_STAMP): tests/asl/package.json tests/asl/package-lock.json
	npm ci --prefix tests/asl --no-audit --no-fund
	touch $(ASL_STAMP)

asl-deps: $(ASL_STAMP)

test: lint typecheck $(IAM_STAMP) $(ASL_STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache cdk.out

# The scale benchmark (emulated Cognito on a virtual clock): writes BENCHMARKS.md, bench/bench.png, bench/results.json.
# `make bench BENCH_ARGS="--sizes 10000,100000 --restore-sizes 10000"` for a shorter run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.run --out BENCHMARKS.md $(BENCH_ARGS)
