# The two commands of the README:
#   make up     build what is missing, start the local cluster, register the demo metrics,
#               show chart configs arriving and start the dashboard, printing its URL and
#               the demo login (the main job; no internet, no credentials)
#   make test   lint, type-check and run the whole test suite against the real services
# Everything else is a step of those two.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMPOSE := docker compose
# The group of the Docker socket, for the sandbox runner (the only service given the socket);
# expanded when a recipe runs, after `host` has started the engine.
export METRICLOOM_DOCKER_GID ?= $(shell stat -c %g /var/run/docker.sock 2>/dev/null)

.PHONY: up test down host secrets images venv pglite web services lint typecheck pytest logs clean benchmark chaos

up: host secrets images
	@# migrations, topics and ACLs first (the migrate service), then a worker that is ready
	@# (its health check: every agent consuming) before anything is sent to it
	$(COMPOSE) up -d --wait kafka timescaledb demo-api
	$(COMPOSE) up -d --wait worker
	@# the demo organisation: its principal, ACLs and topics (its password from .env)
	grep '^METRICLOOM_DEMO_PASSWORD=' .env | cut -d= -f2- | \
	  $(COMPOSE) run --rm -T migrate tenant add demo --password-stdin >/dev/null
	@# only the configs this seed causes: on an old volume the topic holds earlier ones
	since=$$(date -u +%Y-%m-%dT%H:%M:%S) && \
	  $(COMPOSE) run --rm -T demo demo seed && \
	  echo "--- chart configs published since $$since on chart-configs.demo (as the demo tenant) ---" && \
	  $(COMPOSE) run --rm -T demo charts tail --org demo --since "$$since" --charts 4 --timeout 120
	@# the dashboard: its own principal (it may read dead letters; everything else it does
	@# as the logged-in organisation), then the service, healthy
	grep '^METRICLOOM_DASHBOARD_KAFKA_PASSWORD=' .env | cut -d= -f2- | \
	  $(COMPOSE) run --rm -T --entrypoint python3 migrate -m dashboard grant
	$(COMPOSE) up -d --wait dashboard
	@echo "--- the cluster keeps running: 'make logs' to watch, 'make down' to stop ---"
	@echo "--- dashboard: http://127.0.0.1:8081/orgs/demo/dashboards/demo ---"
	@echo "--- log in as organisation demo, password $$(grep '^METRICLOOM_DEMO_PASSWORD=' .env | cut -d= -f2-) ---"

test: host secrets images venv pglite web services lint typecheck pytest

host:
	bash scripts/host-setup.sh

# The local cluster's passwords, generated once into .env (never in git).
secrets:
	bash scripts/secrets.sh

images: venv web
	PATH="$(CURDIR)/$(BIN):$$PATH" bash images/build.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# A community-license TimescaleDB (WASM) for the continuous-aggregate tests.
pglite: tools/pglite/node_modules/.installed

tools/pglite/node_modules/.installed: tools/pglite/package.json tools/pglite/package-lock.json
	npm ci --prefix tools/pglite --legacy-peer-deps --no-audit --no-fund
	touch $@

# The dashboard's browser app (React + Recharts, built with Vite from the npm registry)
# into dashboard/web/dist, which the app image's wheel carries.
web: dashboard/web/dist/.built

dashboard/web/dist/.built: dashboard/web/package.json dashboard/web/package-lock.json \
    dashboard/web/index.html dashboard/web/vite.config.ts $(wildcard dashboard/web/src/*)
	npm ci --prefix dashboard/web --no-audit --no-fund
	npm run --prefix dashboard/web build
	touch $@

services:
	$(COMPOSE) up -d --wait kafka timescaledb

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

# All eight benchmarks (about 40 minutes; each prints JSON). See the README for the figures.
benchmark: host images venv services
	$(BIN)/python -m benchmarks.sandbox
	$(BIN)/python -m benchmarks.writer
	$(BIN)/python -m benchmarks.chart_read
	$(BIN)/python -m benchmarks.codegen
	$(BIN)/python -m benchmarks.load
	$(BIN)/python -m benchmarks.kafka_auth
	$(BIN)/python -m benchmarks.freshness
	$(BIN)/python -m benchmarks.startup

# The full fault suite (about 12 minutes; JSON out; see the README's fault-suite figures).
chaos: host images venv services
	$(BIN)/python -m tests.chaos

logs: secrets
	$(COMPOSE) logs -f --tail=50

down: secrets
	$(COMPOSE) down

# Removes the volumes, and the passwords with them (the next `make up` makes new ones).
clean: secrets
	$(COMPOSE) --profile tools down -v
	rm -f .env
