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
# The Chromium the browser tests drive: a path, or `playwright` for Playwright's own build
# (CI on Ubuntu, where the chromium package is a snap). Exported: tests/web/conftest.py
# reads it from the environment, or asks this file for the default.
DEBIAN_CHROMIUM := /usr/bin/chromium
CHROMIUM ?= $(DEBIAN_CHROMIUM)
export CHROMIUM

.PHONY: help setup wheel twin-synth dev test lint format synth ls bench cost clean browser \
	mutate screenshots contract

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# llama.cpp is compiled with the inference image's own CMake flags (the Dockerfile's
# `ENV CMAKE_ARGS` owns them): a generic AVX2 x86-64 build, never the build machine's CPU,
# so a wheel built on one host runs on every other and on Lambda. pip's own cache keys a
# wheel it built only by the sdist, not the flags, so the wheel is built with pip's cache
# off into a folder keyed by version, flags and Python, and installed from there.
DOCKERFILE := lambda_image/Dockerfile
LLAMA_CMAKE_ARGS := $(shell sed -n 's/^ENV CMAKE_ARGS="\(.*\)"$$/\1/p' $(DOCKERFILE))
LLAMA_PIN := $(shell grep -E '^llama-cpp-python==' lambda_image/requirements.txt)
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llambda/wheels
WHEEL_DIR = $(WHEEL_CACHE)/$(shell printf '%s|%s|%s' '$(LLAMA_PIN)' '$(LLAMA_CMAKE_ARGS)' \
	"$$($(PYTHON) -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')" \
	| sha256sum | cut -c1-16)
WHEEL_STAMP = $(WHEEL_DIR)/.built

$(WHEEL_STAMP):
	@test -n '$(LLAMA_CMAKE_ARGS)' || { echo "no ENV CMAKE_ARGS line in $(DOCKERFILE)"; exit 1; }
	@echo "building $(LLAMA_PIN) with CMAKE_ARGS=\"$(LLAMA_CMAKE_ARGS)\" (once per flags; several minutes)"
	rm -rf $(WHEEL_DIR).tmp && mkdir -p $(WHEEL_DIR).tmp
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(PYTHON) -m pip wheel --quiet --disable-pip-version-check \
		--no-cache-dir --no-deps --no-binary llama-cpp-python -w $(WHEEL_DIR).tmp '$(LLAMA_PIN)'
	rm -rf $(WHEEL_DIR) && mv $(WHEEL_DIR).tmp $(WHEEL_DIR) && touch $@

wheel: $(WHEEL_STAMP) ## build llama.cpp's wheel with the image's flags (make dev/test do it)
	@ls $(WHEEL_DIR)/*.whl

$(VENV_STAMP): pyproject.toml $(DOCKERFILE) lambda_image/requirements.txt | $(WHEEL_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
		--no-index --find-links $(WHEEL_DIR) '$(LLAMA_PIN)'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --find-links $(WHEEL_DIR) --group dev
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
$(DEBIAN_CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

setup: $(VENV_STAMP) $(NPM_STAMP) ## create .venv and node_modules

# Playwright's Chromium and the system libraries it needs (apt, through sudo when not root);
# re-installed whenever .venv is, since each Playwright release drives its own build.
PLAYWRIGHT_CHROMIUM_STAMP := $(VENV)/.stamp-playwright-chromium
$(PLAYWRIGHT_CHROMIUM_STAMP): $(VENV_STAMP)
	$(VENV)/bin/playwright install --with-deps chromium
	touch $@

# Any other path must already exist: make then stops with "No rule to make target".
BROWSER_PREREQ := $(if $(filter playwright,$(CHROMIUM)),$(PLAYWRIGHT_CHROMIUM_STAMP),$(CHROMIUM))
browser: $(BROWSER_PREREQ) ## install the browser tests' Chromium (CHROMIUM=path or playwright)

# `make dev` runs the Dev stage as `cdk synth` writes it, with the tiny open model on
# llama.cpp (no AccessKey). Extra context: make dev CONTEXT="-c Dev.provisionedConcurrency=1"
TWIN_STAGE := Dev
TWIN_OUT := cdk.out.dev
MODELS_DIR := lambda_image/models
TWIN_MODEL = $(shell $(PY) -m offline.default_model)
TWIN_CONTEXT = -c $(TWIN_STAGE).engine=llamacpp -c $(TWIN_STAGE).modelFile=$(notdir $(TWIN_MODEL)) $(CONTEXT)
# The image's pip step installs llama.cpp from the wheel built above, not from source again.
export PIP_FIND_LINKS = $(WHEEL_DIR)

# Synthesize again only when what the stage is built from changed (a content hash).
twin-synth: $(VENV_STAMP) $(NPM_STAMP)
	@test -f $(MODELS_DIR)/$(notdir $(TWIN_MODEL)) || install -m 0644 $(TWIN_MODEL) $(MODELS_DIR)/
	@inputs=$$( { echo '$(TWIN_CONTEXT)'; \
		find app.py cdk.json $(wildcard llambda.local.json) infra lambda_image web_client -type f \
			-not -path '*/__pycache__/*' -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; \
		} | sha256sum | cut -c1-16 ); \
	if [ "$$(cat $(TWIN_OUT)/.inputs 2>/dev/null)" != "$$inputs" ]; then \
		echo "synthesizing $(TWIN_STAGE) into $(TWIN_OUT)"; \
		rm -rf $(TWIN_OUT).new && npx cdk synth --quiet -o $(TWIN_OUT).new $(TWIN_CONTEXT) >/dev/null \
			&& echo "$$inputs" > $(TWIN_OUT).new/.inputs \
			&& rm -rf $(TWIN_OUT) && mv $(TWIN_OUT).new $(TWIN_OUT); \
	fi

dev: twin-synth ## run the Dev stage locally (the chat): open the printed address
	$(PY) -m offline --assembly $(TWIN_OUT) --stage $(TWIN_STAGE) --port $(PORT) $(ARGS)

# The terminal chat (terminal_client/), with `make dev`'s twin running. For a deployed
# stage: LLAMBDA_TOKEN=<token> make chat URL=wss://<api>.execute-api.<region>.amazonaws.com/prod
.PHONY: chat
chat: $(VENV_STAMP) ## chat in this terminal (make dev's twin; URL=wss://… for a stage)
	$(PY) -m terminal_client $(or $(URL),ws://127.0.0.1:$(PORT)/dev) $(ARGS)

# The page's DOM-free modules under node's own test runner. web_client/ has no package.json
# of its own (it is served as it is): node is told its .js files are ES modules.
NODE_TEST := node --experimental-detect-module --disable-warning=MODULE_TYPELESS_PACKAGE_JSON --test

# checkov pins an older boto3 than the runtime's, so it has a virtual environment of its
# own (pyproject.toml's `checkov` group); tests/infra/test_checkov.py runs it from there.
CHECKOV_STAMP := $(VENV)/checkov/.stamp
$(CHECKOV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check --group checkov
	touch $@

test: twin-synth browser lint $(CHECKOV_STAMP) ## every test (what CI runs)
	$(NODE_TEST) tests/web/node/*.test.mjs
	TWIN_ASSEMBLY=$(TWIN_OUT) TWIN_STAGE=$(TWIN_STAGE) $(PY) -m pytest

# Mutation testing (docs/testing.md): mutmut comes from its own dependency group, so
# `make test` never needs it. `make mutate MODULES=sender` runs one of protocol, sender,
# conversations, router; the results stay in mutants/ (mutants/report.md).
MUTATE_STAMP := $(VENV)/.stamp-mutate
$(MUTATE_STAMP): $(VENV_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --group mutate
	touch $@

mutate: twin-synth $(MUTATE_STAMP) ## break the runtime core on purpose; do its tests notice? (~25 min)
	TWIN_ASSEMBLY=$(TWIN_OUT) TWIN_STAGE=$(TWIN_STAGE) nice -n 10 $(PY) -m tests.mutate $(MODULES)

screenshots: twin-synth browser ## photograph the chat for the README (docs/screenshot*.png)
	TWIN_ASSEMBLY=$(TWIN_OUT) TWIN_STAGE=$(TWIN_STAGE) $(PY) -m tests.web.screenshots

# The CI workflow: actionlint for syntax and expressions (its shellcheck and
# pyflakes passes off: the run: steps are bare make targets, and whether those tools are
# installed differs by machine), zizmor for security findings, offline (no GitHub API).
lint: $(VENV_STAMP) ## ruff and mypy (pyproject.toml); actionlint and zizmor on the CI workflow
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/actionlint -shellcheck= -pyflakes=
	$(VENV)/bin/zizmor --quiet --offline --no-progress --persona pedantic \
		--config .github/zizmor.yml .github/workflows

format: $(VENV_STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

synth: $(INFRA_STAMP) $(NPM_STAMP) ## synthesize both stages into cdk.out/ (no Docker, no AWS)
	npx cdk synth --quiet

ls: $(INFRA_STAMP) $(NPM_STAMP) ## list every stack of both stages
	npx cdk ls

bench: twin-synth ## measure streaming, first token, cold start, synth; write docs/bench/ (ARGS=--help)
	TWIN_ASSEMBLY=$(TWIN_OUT) TWIN_STAGE=$(TWIN_STAGE) $(PY) -m bench $(ARGS)

.PHONY: bench-ab
bench-ab: twin-synth ## added time to first token, this tree against BEFORE=<commit> (ARGS=--help)
	$(PY) -m bench.first_token_ab --before $(BEFORE) $(ARGS)

# Reads the account the current credentials reach, and never changes it (docs/deploy.md).
# It needs only pyproject.toml's infra group (the CDK libraries and boto3).
.PHONY: preflight
preflight: $(INFRA_STAMP) ## check the AWS account and this machine before a deploy
	$(PY) -m preflight $(ARGS)

# The page's copy of the contract between the parts (lambda_image/llambda/contract.py).
contract: $(VENV_STAMP) ## regenerate web_client/contract.js from the contract module
	$(PY) -m llambda.contract web_client/contract.js

# The OpenAI-compatible door's keys: ARGS="create --stage Dev --name my-editor" (printed
# once), "list --stage Dev", "revoke --stage Dev --id <id>"; the twin's: add --table and
# --endpoint-url as make dev prints them.
.PHONY: apikey
apikey: $(INFRA_STAMP) ## create, list or revoke an API key of the OpenAI-compatible endpoint
	$(PY) -m admin.apikey $(ARGS)

# The kill switch: STATE=off refuses new replies within seconds, STATE=on lets them run
# again (no STATE: say which it is); the twin's: ARGS="--parameter <name> --endpoint-url <url>".
STAGE ?= Dev
.PHONY: generation
generation: $(INFRA_STAMP) ## turn a stage's replies off or on: STATE=off|on STAGE=Dev
	$(PY) -m admin.generation $(STATE) --stage $(STAGE) $(ARGS)

cost: $(VENV_STAMP) ## regenerate docs/cost.md from the stage configs
	$(PY) -m bench.cost

clean: ## remove build output (keeps .venv and node_modules)
	rm -rf cdk.out $(TWIN_OUT) cdk.out.variant .pytest_cache .ruff_cache .hypothesis mutants
