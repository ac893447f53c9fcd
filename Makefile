# The two commands of the README. Everything they need is installed here, never by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint bench fuzz clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.dev

run: $(VENV)/.dev
	$(BIN)/python -m devstack

# The browser tests' Debian chromium and chromium-driver (apt, as root; a no-op when installed).
chromium:
	bash tests/browser/install_chromium.sh

test: $(VENV)/.test chromium
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# The overall benchmark (bench/overall.py): every path next to its ceiling, in one run, as markdown.
# BENCH_SECONDS, BENCH_EVENTS, BENCH_RATE, BENCH_RUNS scale it; BENCH_CODE=DIR measures another checkout.
bench: $(VENV)/.test
	bash bench/install_wrk.sh
	$(BIN)/python -m bench

# The payment model (tests/model) searched for long: a new search each run, 2,000 examples of 60 steps.
# HYPOTHESIS_PROFILE=fuzz; a failure prints the steps to paste into a regression test there.
fuzz: $(VENV)/.test
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/model -p no:cacheprovider -x -s -k one_payments_life --timeout=0 --session-timeout=0

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
