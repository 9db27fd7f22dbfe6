# msads-capi: every target runs `setup` first, so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test test-fast test-clock test-ui browsers lint demo run run-celery stop migrate emulator clean help

help:
	@echo "make demo   - the whole job end to end on embedded defaults (warehouse + Microsoft emulator)"
	@echo "make run    - Airflow 3.3 with the UI on http://localhost:8080 (Ctrl-C stops it)"
	@echo "make run-celery - the same on the CeleryExecutor: two workers, Redis, PostgreSQL metadata (docs/scaling.md)"
	@echo "make test   - the test suite (embedded PostgreSQL unless MSADS_WAREHOUSE_URL is set)"
	@echo "make test-clock - the time-sensitive tests again, 45 days ahead and across a DST change (needs libfaketime)"
	@echo "make browsers - install Chromium (Debian's package) for the browser tests of the Microsoft CAPI page"
	@echo "make test-ui - the Microsoft CAPI page's tests: real api-server, Chromium"
	@echo "make stop   - stop the embedded warehouse"
	@echo "make lint   - ruff"
	@echo "make setup  - create .venv and install everything (the other targets run it)"

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "msads-capi needs Python 3.11; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==26.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not airflow and not slow" $(PYTEST_ARGS)

# The time-sensitive tests again under libfaketime, with the clock moved (tests/clock/shift.py).
test-clock: setup
	$(PY) -m tests.clock.shift $(PYTEST_ARGS)

# Browser tests drive Debian's Chromium through playwright (its own download cannot work here).
browsers:
	@command -v chromium >/dev/null || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version 2>/dev/null

test-ui: setup browsers
	MSADS_REQUIRE_BROWSER=1 $(PY) -m pytest tests/ui $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

migrate: setup
	$(VENV)/bin/msads db migrate

demo: setup
	$(PY) -m include.msads_capi.local.demo

run: setup
	$(PY) -m include.msads_capi.local.run_airflow

run-celery: setup
	$(PY) -m include.msads_capi.local.run_celery

emulator: setup
	$(VENV)/bin/msads emulator --seed $(EMULATOR_ARGS)

stop: setup
	$(VENV)/bin/msads warehouse stop

clean: stop
	rm -rf .local .airflow
