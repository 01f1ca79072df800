# Credence: `make run` starts the whole platform, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run demo migrate test test-unit test-integration test-e2e lint docs bench bench-import clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.platform

demo: $(STAMP)
	$(PY) -m deploy.demo

migrate: $(STAMP)
	$(PY) -m credence_common.migrations all

# Every test: unit, integration (SQLite and PostgreSQL) and end-to-end (SQLite and PostgreSQL).
test: $(STAMP)
	$(PY) -m deploy.preflight
	$(PY) -m ruff check .
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

docs: $(STAMP)
	$(PY) -m credence_common.contracts.docs > docs/events.md
	$(PY) -m gateway.access_doc > docs/access.md

bench: $(STAMP)
	$(PY) -m bench.public_check

bench-import: $(STAMP)
	$(PY) -m bench.result_import

clean:
	rm -rf var .pytest_cache
