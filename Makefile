# Credence: `make run` starts the whole platform, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# paired rounds (Credence, then the baseline, back to back) after the tables of bench-check-asgi and bench-reads
BENCH_ROUNDS ?= 5
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install browser promtool kubectl run run-emulated demo migrate test test-unit test-integration test-e2e test-faults lint docs bench bench-quick bench-check bench-check-asgi bench-reads bench-slow bench-tools bench-import soak clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium headless (and a Chinese font, so its screenshots are readable);
# installed here when missing.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-zenhei
browser:
	@{ command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; } || { \
	  echo "Installing Debian's $(BROWSER_PACKAGES) (browser test)"; \
	  $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; }; }

# The observability tests check Prometheus' configuration, the alert rules (and their unit tests) and the
# dashboard's queries with promtool, from Debian's prometheus package; installed here when missing. The
# package enables the Prometheus server it ships at boot and starts it unless policy-rc.d forbids it (as on
# these machines): nothing here wants a server on 9090, so it is stopped and disabled straight away.
promtool:
	@command -v promtool >/dev/null || { \
	  echo "Installing Debian's prometheus (promtool, for the observability tests)"; \
	  $(SUDO) apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && \
	    $(SUDO) apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1; \
	  else $(SUDO) service prometheus stop >/dev/null 2>&1; $(SUDO) update-rc.d prometheus disable >/dev/null 2>&1; fi; \
	  command -v promtool >/dev/null; }

# The Kubernetes tests (tests/unit/test_k8s.py) render deploy/k8s with `kubectl kustomize`, which needs kubectl 1.27
# or newer (kustomize v5 inside). Installed here as the kubectl package when an apt repository offering it is
# configured (the Kubernetes project's pkgs.k8s.io, or Google Cloud's); Debian itself has only kubernetes-client
# 1.20, too old, and this Makefile downloads nothing outside apt: without such a repository it stops and says what
# to install.
KUBECTL ?= kubectl
kubectl_ok = $(KUBECTL) version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([5-9]|[1-9][0-9])'
kubectl:
	@$(kubectl_ok) || { \
	  echo "Installing the kubectl package (kubectl kustomize, for the Kubernetes tests)"; \
	  $(SUDO) apt-get install -y -q kubectl >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q kubectl >/dev/null 2>&1; }; \
	  $(kubectl_ok) || { \
	    echo "make: kubectl 1.27 or newer is needed (tests/unit/test_k8s.py runs 'kubectl kustomize', kustomize v5)" \
	         "and apt could not install it (does a configured repository offer kubectl? Debian's own kubernetes-client is 1.20, too old)." >&2; \
	    echo "  Install kubectl from https://pkgs.k8s.io (the Kubernetes apt repository, package kubectl) or" \
	         "the official binary (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/), then re-run." >&2; \
	    exit 1; }; }

# RabbitMQ started when it is installed but down (deploy/local-services says what it did)
run: $(STAMP)
	@deploy/local-services rabbitmq
	$(PY) -m deploy.platform

# make run with the real provider adapters against local emulators of WeChat Pay, FaceID, Tencent SMS and the degree
# registry (deploy/emulated.py; databases under var/emulated/)
run-emulated: $(STAMP)
	@deploy/local-services rabbitmq
	$(PY) -m deploy.emulated

demo: $(STAMP)
	$(PY) -m deploy.demo

# the data-key migrations read the keys the environment allows: development unless the shell says otherwise
migrate: $(STAMP)
	CREDENCE_ENV=$${CREDENCE_ENV:-development} $(PY) -m credence_common.persistence.migrations all

# Every test: unit, integration (SQLite and PostgreSQL) and end-to-end (SQLite and PostgreSQL).
test: $(STAMP) browser promtool kubectl
	@deploy/local-services rabbitmq management postgresql
	$(PY) -m deploy.preflight
	$(PY) -m ruff check .
	KUBECTL=$(KUBECTL) $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: $(STAMP) promtool kubectl
	KUBECTL=$(KUBECTL) $(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	@deploy/local-services rabbitmq management postgresql
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP) browser
	@deploy/local-services rabbitmq management postgresql
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test-faults: $(STAMP)
	@deploy/local-services rabbitmq management postgresql
	$(PY) -m tests.faults.suite
	$(PY) -m tests.faults.suite --backend postgresql
	$(PY) -m tests.faults.suite --backend postgresql --standby
	$(PY) -m tests.faults.suite --cluster

# ruff, then the package boundaries of pyproject.toml's [tool.importlinter] (tests/unit/test_import_contracts.py),
# then the type checker, pyproject.toml's [tool.mypy] (tests/unit/test_type_check.py)
lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

docs: $(STAMP)
	$(PY) -m credence_common.contracts.docs > docs/events.md
	$(PY) -m gateway.access_doc > docs/access.md

bench: $(STAMP) bench-tools
	$(PY) -m bench.suite

bench-quick: $(STAMP) bench-tools
	$(PY) -m bench.suite --quick

bench-check: $(STAMP) bench-tools
	$(PY) -m bench.public_check --backend postgresql

# the same, with the honest comparison measured for both gateways (GATEWAY_SERVER=nameko, then asgi)
bench-check-asgi: $(STAMP) bench-tools
	$(PY) -m bench.public_check --backend postgresql --gateway both --rounds $(BENCH_ROUNDS)

bench-reads: $(STAMP) bench-tools
	$(PY) -m bench.honest_reads --rounds $(BENCH_ROUNDS)

bench-slow: $(STAMP) bench-tools
	$(PY) -m bench.slow_clients

bench-tools:
	@command -v wrk >/dev/null || { echo "Installing Debian's wrk (HTTP load generator)"; \
	  $(SUDO) apt-get install -y -q wrk >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q wrk >/dev/null; }; }

bench-import: $(STAMP)
	$(PY) -m bench.result_import

# issue #22 item 7: an hour of mixed load against the whole platform on a RabbitMQ node of its own, every process's
# memory slope, every queue's depth and every table's rows (bench/soak.py; docs/reliability.md "Soak").
# SOAK_ARGS="--backend postgresql" for throw-away PostgreSQL databases, "--minutes 30" shorter.
SOAK_ARGS ?=
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf var .pytest_cache
