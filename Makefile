# The two commands of the README: `make demo` and `make test`. Each creates (or reuses) .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench clean iam-deps asl-deps lock audit

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

# The Lambda asset installs requirements/lambda.txt with --require-hashes (infra/bundling.py). `make lock` recompiles
# it from pyproject's base dependencies for arm64 and the Lambda Python; `make audit` asks the vulnerability
# database about exactly those pins (it needs the network, so it stays out of `make test`).
LAMBDA_LOCK := requirements/lambda.txt
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[lock]'
	$(BIN)/python -m infra.bundling

audit: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[audit]'
	$(BIN)/pip-audit --strict --require-hashes --disable-pip -r $(LAMBDA_LOCK)

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
