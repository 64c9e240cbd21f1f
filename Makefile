# Every set-up step lives here: on a fresh machine `make dev` and `make test` need nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8787
# Python for the virtual environment; Lambda runs 3.12, any 3.11+ works locally.
PYTHON ?= python3

# jsii prints a banner on every run when Node.js is past end-of-life; it drowns CDK output.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20,22
# The CLI never phones home from this project (also set in cdk.json).
export CDK_DISABLE_CLI_TELEMETRY := true

VENV_STAMP := $(VENV)/.stamp-venv
# synth needs only the CDK libraries: a CI or pipeline synth step skips compiling llama.cpp.
INFRA_STAMP := $(VENV)/.stamp-infra
NPM_STAMP := node_modules/.stamp-npm
CHROMIUM := /usr/bin/chromium

.PHONY: help setup dev test lint format synth ls bench cost clean browser

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --group dev
	$(MAKE_PTH)
	touch $@ $(INFRA_STAMP)

$(INFRA_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --group infra
	$(MAKE_PTH)
	touch $@

# The repo is not a package: put its root and the runtime package on the venv's path.
define MAKE_PTH
printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/lambda_image" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/llambda-project.pth"
endef

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

setup: $(VENV_STAMP) $(NPM_STAMP) ## create .venv and node_modules

browser: $(CHROMIUM) ## install Debian's Chromium for the browser tests

dev: $(VENV_STAMP) ## run the whole chat locally: open the printed address
	$(PY) -m offline --port $(PORT) $(ARGS)

test: $(VENV_STAMP) $(NPM_STAMP) $(CHROMIUM) lint ## every test (what CI runs)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV_STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

synth: $(INFRA_STAMP) $(NPM_STAMP) ## synthesize both stages into cdk.out/ (no Docker, no AWS)
	npx cdk synth --quiet

ls: $(INFRA_STAMP) $(NPM_STAMP) ## list every stack of both stages
	npx cdk ls

bench: $(VENV_STAMP) $(NPM_STAMP) ## measure streaming, cold start and synth; write docs/bench/
	$(PY) -m bench

cost: $(VENV_STAMP) ## regenerate docs/cost.md from the stage configs
	$(PY) -m bench.cost

clean: ## remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .ruff_cache .hypothesis
