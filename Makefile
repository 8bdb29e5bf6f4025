# Pigeonhole: the few commands a newcomer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STATE_DIR ?= $(CURDIR)/.stack
UV_VERSION := 0.13.9
UV := $(STATE_DIR)/tools/uv/bin/uv
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PIGEONHOLE_STATE_DIR := $(STATE_DIR)

.PHONY: help up down restart status test test-faults unit lint fmt bench venv stack migrate topics logs asyncapi sdk sdk-deps browser screenshots demo

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@python3 -m venv $(STATE_DIR)/tools/uv
	@$(STATE_DIR)/tools/uv/bin/pip install -q uv==$(UV_VERSION)

venv: $(UV) ## install the locked Python dependencies into .venv
	@$(UV) sync --frozen --quiet
	@echo "venv: $(VENV) in sync with uv.lock"

stack: ## install (if missing) and start PostgreSQL, Redis, Kafka and Prometheus on loopback
	@bash deploy/local/stack.sh up

migrate: venv ## apply database migrations
	@$(BIN)/pigeonhole db migrate

topics: venv ## create the Kafka topics of shared/topics.py
	@$(BIN)/pigeonhole kafka create-topics

up: venv stack migrate topics ## install what is missing and start everything; returns once all is healthy
	@bash deploy/local/services.sh up
	@echo "up: publisher http://127.0.0.1:8080  sync http://127.0.0.1:8081  prometheus http://127.0.0.1:9090  (make status, make down)"

down: ## stop the services and the stack
	@bash deploy/local/services.sh down
	@bash deploy/local/stack.sh down

restart: venv migrate topics ## restart the four services (after a code change)
	@bash deploy/local/services.sh down
	@bash deploy/local/services.sh up

status: ## what is running where
	@bash deploy/local/stack.sh status
	@bash deploy/local/services.sh status

test: up sdk-deps browser ## bring the stack up, then run every test (unit, integration, end to end, browser)
	@cd sdk/web && node --test test/
	@$(BIN)/pytest -q

browser: ## install Debian's chromium and chromium-driver (apt) for the browser tests
	@bash deploy/local/stack.sh install browser

screenshots: up browser ## run the browser tests and refresh the SDK guide's docs/img/web-sdk-*.png
	@PIGEONHOLE_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

demo: up ## a web SDK demo page on http://127.0.0.1:8090 (demo app, contact, banner, inbox)
	@$(BIN)/python deploy/local/demo.py

test-faults: up ## the fault suite alone: Kafka, PostgreSQL, Redis and each service broken mid-campaign
	@$(BIN)/pytest -q tests/faults

unit: venv sdk-deps ## unit tests only (no services needed)
	@cd sdk/web && node --test test/
	@$(BIN)/pytest -q tests/unit

lint: venv sdk-deps ## ruff (lint + format check), mypy, promtool (Prometheus config and alert rules), tsc and a current SDK build
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy
	@command -v promtool >/dev/null || bash deploy/local/stack.sh install prometheus
	@promtool check config --lint=all --lint-fatal deploy/prometheus/prometheus.yml >/dev/null
	@promtool check rules --lint=all --lint-fatal deploy/prometheus/alerts.yml
	@cd sdk/web && npx --no-install tsc -p . && node build.mjs --check

fmt: venv ## format and fix what ruff can
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

sdk-deps: ## install the web SDK's locked build tools (esbuild, TypeScript) into sdk/web/node_modules
	@cd sdk/web && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }

sdk: sdk-deps ## build the web SDK (sdk/web) into services/sync/static/sdk; then `make restart`
	@cd sdk/web && npx --no-install tsc -p . && node build.mjs

asyncapi: venv ## write docs/asyncapi.yaml (the Kafka topics) from shared/events.py and topics.py
	@$(BIN)/python -m shared.asyncapi

BENCH_LOG := bench/results/bench.log

# Each benchmark exits non-zero (and so stops `make bench`) when a run misses its time
# limit or a recipient is lost, duplicated or not visible to sync.
bench: up ## run every benchmark against the local stack; BENCH_N=100000 for a quick run
	@mkdir -p bench/results && : >$(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.fanout $(if $(BENCH_N),--n $(BENCH_N)) | tee -a $(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.delivery_throughput $(if $(BENCH_N),--n $(BENCH_N)) | tee -a $(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.scaleout $(if $(BENCH_N),--n $(BENCH_N)) | tee -a $(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.sync_load $(if $(BENCH_N),--contacts $(BENCH_N)) | tee -a $(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.scheduler_memory $(if $(BENCH_N),--n $(BENCH_N)) | tee -a $(BENCH_LOG)
	@set -o pipefail; $(BIN)/python -m bench.stream_latency $(if $(BENCH_N),--n $(BENCH_N) --streams $$(( $(BENCH_N) / 10 ))) | tee -a $(BENCH_LOG)
	@echo "bench: the figures (details in bench/results/*.json, the whole output in $(BENCH_LOG)):"
	@grep -h '^BENCH ' $(BENCH_LOG)

logs: ## follow the service logs
	@tail -F $(STATE_DIR)/logs/{publisher,sync,scheduler,delivery}.log $(wildcard $(STATE_DIR)/logs/delivery-[0-9]*.log)
