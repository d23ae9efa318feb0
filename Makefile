# cats-dogs-classifier — every entry point a user or CI needs.
# Two commands on a fresh machine: `make up` (train → export → serve) and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= python3.11
VENV := .venv
TRITON_VENV := .venv-triton
PY := $(VENV)/bin/python
PIP_INSTALL := $(VENV)/bin/pip install --disable-pip-version-check -q

# Data source for ingest: `synthetic` (offline default), `download` (Microsoft PetImages) or a folder.
DATA_DIR ?=
SOURCE ?= $(if $(DATA_DIR),$(DATA_DIR),synthetic)
TRAIN_CONFIG ?= configs/train.yaml
TRAIN_SET ?=
# The preprocess cache must be at the size the training config trains at.
IMAGE_SIZE ?= $(or $(shell awk '/^image_size:/ {print $$2}' $(TRAIN_CONFIG) 2>/dev/null),224)
PYTEST_ARGS ?=

.PHONY: help setup download ingest preprocess train evaluate export-onnx rollback triton gateway up stop \
        test lint format mlflow-ui smoke-test dvc-repro clean score perf build run compose-up compose-down deploy-k8s bench reload fuzz reliability

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --- environments -------------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -c constraints.txt -e '.[dev]'
	@touch $@

$(TRITON_VENV)/.installed: serving/requirements-triton.txt
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON_BASE) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install --disable-pip-version-check -q -r serving/requirements-triton.txt
	@touch $@

setup: $(VENV)/.installed $(TRITON_VENV)/.installed ## Create both venvs (project + Triton server/backend)

# --- data → model ------------------------------------------------------------------------
download: setup ## Fetch Microsoft PetImages (824 MB, resumable, verified)
	$(PY) -m training.data download

ingest: setup ## Validate, deduplicate and split the source into data/manifest.csv (SOURCE=synthetic|download|DIR)
	$(PY) -m training.data ingest --source $(SOURCE)

preprocess: setup ## Resize every manifest image into the training cache (parallel, idempotent)
	$(PY) -m training.data preprocess --image-size $(IMAGE_SIZE)

train: setup ## Train with MLflow tracking; registers alias `challenger`
	$(PY) -m training.train --config $(TRAIN_CONFIG) $(foreach s,$(TRAIN_SET),--set $(s))

evaluate: setup ## Test-split metrics → metrics.json; promote to `champion` only on improvement
	$(PY) -m training.evaluate

export-onnx: setup ## Champion → ONNX → model_repository/cats_dogs/<next version> (+ CPU repository)
	$(PY) -m export

rollback: setup ## Serve the previous model version again (repository + MLflow alias)
	$(PY) -m export.rollback

dvc-repro: setup ## Run the DVC pipeline (ingest → preprocess → train → evaluate → export)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro --all-pipelines

mlflow-ui: setup ## MLflow UI on http://127.0.0.1:5001
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port 5001 --workers 1

# --- serving -----------------------------------------------------------------------------
triton: setup ## Start the local Triton server on the derived CPU repository
	$(PY) -m serving.triton start

gateway: setup ## Start the FastAPI gateway in the background
	$(PY) -m serving.gateway_process start

up: setup ## The main job: data → train → export (first time) → Triton + gateway
	$(PY) -m serving.up --source $(SOURCE)

stop: ## Stop what `make up` started
	@test -x $(PY) && $(PY) -m serving.stop || echo "nothing to stop (no venv)"

smoke-test: setup ## Health / Root / Metrics / Prediction against URL (default the local gateway)
	$(PY) scripts/smoke_test.py --url $(or $(URL),http://127.0.0.1:8000) --wait

# --- bulk scoring and load tests ---------------------------------------------------------
IN ?=
OUT ?=
PERF_IMAGES ?= $(or $(PETS_DEV_DIR),../shared/data/pets-dev)
score: setup ## Score a folder or manifest through Triton gRPC: make score IN=photos/ OUT=scores.csv
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make score IN=<folder|manifest.csv> OUT=<file.csv|file.parquet>"; exit 2; }
	$(PY) -m scoring --input "$(IN)" --output "$(OUT)" $(SCORE_ARGS)

perf: setup ## Concurrency sweeps: Triton direct (perf_analyzer when present) and the gateway
	$(PY) -m benchmarks.perf triton --images "$(PERF_IMAGES)" --out build/perf/triton.csv
	$(PY) -m benchmarks.perf gateway --images "$(PERF_IMAGES)" --out build/perf/gateway.csv

bench: setup ## Benchmark suite (side by side, medians of 3) → BENCHMARKS.md + docs/benchmarks/*.png
	$(PY) -m benchmarks.suite --images "$(PERF_IMAGES)" $(BENCH_ARGS)

reload: setup ## Make the running local Triton load new/rolled-back versions
	$(PY) -m serving.triton reload

# --- containers and clusters (need Docker / kubectl; clear exit 3 where missing) -----------
OVERLAY ?= gpu
build: ## Build the gateway, trainer and Triton images (Docker)
	scripts/deploy.sh build
run: ## Run the gateway image against TRITON_URL (default: the host's Triton on :8001)
	scripts/deploy.sh run
compose-up: ## Compose stack: GPU, or the CPU override without one; MONITORING=1 adds Prometheus+Grafana
	scripts/deploy.sh compose-up
compose-down: ## Stop the compose stack
	scripts/deploy.sh compose-down
deploy-k8s: ## kubectl apply -k k8s/overlays/$(OVERLAY) (gpu|cpu), wait for the rollouts
	scripts/deploy.sh deploy-k8s $(OVERLAY)

fuzz: setup ## Fuzz the decoder, /predict and every OpenAPI operation on the real stack (>= 10k cases)
	$(PY) tests/hardening/fuzz_main.py $(if $(FUZZ_EXAMPLES),--examples $(FUZZ_EXAMPLES))

reliability: setup ## Hardening suite → docs/reliability/hardening.json → RELIABILITY.md
	HARDENING_RESULTS=$(CURDIR)/docs/reliability/hardening.json $(PY) -m pytest tests/hardening -q -s
	$(PY) -m benchmarks.reliability_report

# --- quality -----------------------------------------------------------------------------
test: setup ## Run the test suite (unit + integration with a real Triton)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: setup ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/validate_deploy.py

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## Remove caches and build outputs (keeps data, mlflow.db and venvs)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
