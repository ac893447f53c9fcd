# The two commands of the README. Everything they need is installed here, never by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint lock bench fuzz put-back clean chromium promtool

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies from the lock files (requirements/, `make lock`), each checked against its hash;
# then the project itself, editable, without resolving anything. A changed lock reinstalls.
$(VENV)/.dev: requirements/dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.test: requirements/test.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.dev

# Re-resolve the lock files from pyproject.toml (for Python 3.11 on Linux, with every file's hash),
# keeping every pinned version that still fits; UPGRADE="stripe uvicorn" moves those to their newest.
# runtime.txt is the image's (the project's dependencies); test.txt and dev.txt take its versions.
UV_VERSION := 0.13.10
UPGRADE ?=
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --python-version 3.11 --python-platform linux \
	--generate-hashes --custom-compile-command 'make lock' $(foreach p,$(UPGRADE),--upgrade-package $(p))

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(COMPILE) -o requirements/runtime.txt
	$(COMPILE) --extra test -c requirements/runtime.txt -o requirements/test.txt
	$(COMPILE) --extra dev -c requirements/test.txt -o requirements/dev.txt

run: $(VENV)/.dev
	$(BIN)/python -m devstack

# The browser tests' Debian chromium and chromium-driver (apt, as root; a no-op when installed).
chromium:
	bash tests/browser/install_chromium.sh

# Debian's prometheus package for its promtool, which checks and unit-tests deploy/prometheus/alerts.yml.
promtool:
	bash deploy/prometheus/install_promtool.sh

test: $(VENV)/.test chromium promtool
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# The overall benchmark (bench/overall.py): every path next to its ceiling, in one run, as markdown.
# BENCH_SECONDS, BENCH_EVENTS, BENCH_RATE, BENCH_RUNS scale it; BENCH_CODE=DIR measures another checkout.
# Last, the worker memory soak: BENCH_SOAK_EVENTS (50,000; 0 skips it) through one worker (`python -m bench soak`: it alone).
bench: $(VENV)/.test
	bash bench/install_wrk.sh
	$(BIN)/python -m bench

# The payment model (tests/model) searched for long: a new search each run, 2,000 examples of 60 steps.
# HYPOTHESIS_PROFILE=fuzz; a failure prints the steps to paste into a regression test there.
fuzz: $(VENV)/.test
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/model -p no:cacheprovider -x -s -k one_payments_life --timeout=0 --session-timeout=86400

# Each money finding put back, one at a time, and the payment model run on it (tests/model/put_back.py):
# fails when the model misses one it should find. About a minute or two per finding.
put-back: $(VENV)/.test
	$(BIN)/python -m tests.model.put_back

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
