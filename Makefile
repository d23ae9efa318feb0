# cats-dogs-classifier — every entry point a user or CI needs.
# Two commands on a fresh machine: `make up` (train → export → serve) and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= python3.11
VENV := .venv
TRITON_VENV := .venv-triton
PY := $(VENV)/bin/python
PIP_INSTALL := $(VENV)/bin/pip install --disable-pip-version-check -q

# What `make up` serves: `bundled` (default: the real-photo model in models/bundled/, no training),
# `synthetic` (offline shapes + quick recipe), `download` (Microsoft PetImages) or DATA_DIR=<photos>.
DATA_DIR ?=
# Extra photo folder(s) that only ever enter the train split (space-separated), e.g. small re-encoded photos.
TRAIN_ONLY_DIR ?=
SOURCE ?= $(if $(DATA_DIR),$(DATA_DIR),bundled)
# `make ingest` needs photos: the bundled model brings none, so it ingests the synthetic set then.
INGEST_SOURCE = $(if $(filter bundled,$(SOURCE)),synthetic,$(SOURCE))
# Training recipe: TRAIN_CONFIG when given, else the real-photo recipe (configs/pets.yaml) for
# `make train`; `make up` picks configs/quick.yaml for SOURCE=synthetic and configs/pets.yaml otherwise.
TRAIN_CONFIG ?=
RECIPE = $(or $(TRAIN_CONFIG),configs/pets.yaml)
TRAIN_SET ?=
# The preprocess cache must be at the size the training config trains at.
IMAGE_SIZE ?= $(or $(shell awk '/^image_size:/ {print $$2}' $(RECIPE) 2>/dev/null),224)
PYTEST_ARGS ?=

.PHONY: help setup download ingest preprocess train evaluate export-onnx rollback triton gateway up stop \
        test lint format mlflow-ui smoke-test dvc-repro clean score perf build run compose-up compose-down deploy-k8s bench reload fuzz replicas images promote pull reliability \
        cpu-sweep rss-probe

help: ## List the targets and the variables they read
	@echo "targets:"
	@grep -hE '^[a-zA-Z0-9_.-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo
	@echo "variables (make TARGET VAR=value):"
	@grep -hE '^#: [A-Z_]+ ' $(MAKEFILE_LIST) | sed -E 's/^#: ([A-Z_]+) +/\1|/' | awk -F'|' '{printf "  %-15s %s\n", $$1, $$2}'

# Variables `make help` lists (lines starting with "#: NAME").
#: DATA_DIR       a folder of cat/ and dog/ photos: up trains on it (real recipe), ingest reads it
#: TRAIN_ONLY_DIR extra photo folder(s) that only enter the train split (ingest, up)
#: SOURCE         up: bundled (default, the shipped real-photo model), synthetic, download or a folder
#: TRAIN_CONFIG   training recipe (train: default configs/pets.yaml; up: quick.yaml for synthetic, else pets.yaml)
#: TRAIN_SET      extra training overrides, e.g. TRAIN_SET="epochs=3 lr=0.001"
#: IN             score: the folder or manifest (.csv/.parquet) to score
#: OUT            score: the results file (.csv or .parquet)
#: SCORE_ARGS     score: more python -m scoring flags, e.g. SCORE_ARGS="--shard 0/4 --batch-size 64"
#: PERF_IMAGES    perf, bench, cpu-sweep, rss-probe: the folder of photos to send (PETS_DEV_DIR also sets it)
#: BENCH_ARGS     bench: more python -m benchmarks.suite flags
#: SWEEP_ARGS     cpu-sweep: more python -m benchmarks.cpu_sweep flags (e.g. --rounds 1)
#: RSS_ARGS       rss-probe: more python -m benchmarks.rss_probe flags (e.g. --requests 50000)
#: URL            smoke-test: the gateway to check (default http://127.0.0.1:8000)
#: OVERLAY        deploy-k8s: gpu (default) or cpu
#: FUZZ_EXAMPLES  fuzz: examples per test and per OpenAPI operation
#: PYTEST_ARGS    test: extra pytest arguments, e.g. PYTEST_ARGS="-m 'not slow'"

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
download: setup ## Fetch Microsoft PetImages (824 MB, resumable): exact size checked; sha256 too with SHA256=<hex>
	$(PY) -m training.data download $(if $(SHA256),--sha256 $(SHA256))

ingest: setup ## Validate, deduplicate and split photos into data/manifest.csv (DATA_DIR=… | SOURCE=synthetic|download)
	$(PY) -m training.data ingest --source $(INGEST_SOURCE) $(foreach d,$(TRAIN_ONLY_DIR),--train-only $(d))

preprocess: setup ## Resize every manifest image into the training cache (parallel, idempotent)
	$(PY) -m training.data preprocess --image-size $(IMAGE_SIZE)

train: setup ## Train (TRAIN_CONFIG, default configs/pets.yaml) with MLflow tracking; registers `challenger`
	$(PY) -m training.train --config $(RECIPE) $(foreach s,$(TRAIN_SET),--set $(s))

evaluate: setup ## Test-split metrics → metrics.json; promote to `champion` only on improvement
	$(PY) -m training.evaluate

export-onnx: setup ## Champion → ONNX → model_repository/cats_dogs/<next version> (+ CPU repository); reloads a running Triton
	$(PY) -m export
	$(PY) -m serving.triton reload

rollback: setup ## Serve the previous model version again (repository + MLflow alias); reloads a running Triton
	@# The reload runs even when only the MLflow alias move failed (exit 3): the repository is rolled back.
	$(PY) -m export.rollback; status=$$?; $(PY) -m serving.triton reload || exit $$?; exit $$status

dvc-repro: setup ## Run the DVC pipeline (ingest → preprocess → train → evaluate → export)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(PY) -m serving.triton reload

mlflow-ui: setup ## MLflow UI on http://127.0.0.1:5001
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port 5001 --workers 1

# --- serving -----------------------------------------------------------------------------
triton: setup ## Start the local Triton server on the derived CPU repository
	$(PY) -m serving.triton start

gateway: setup ## Start the FastAPI gateway in the background
	$(PY) -m serving.gateway_process start

up: setup ## The main job: the bundled real-photo model (or SOURCE/DATA_DIR → train) → export → Triton + gateway
	$(PY) -m serving.up --source $(SOURCE) $(if $(TRAIN_CONFIG),--config $(TRAIN_CONFIG)) \
		$(foreach d,$(TRAIN_ONLY_DIR),--train-only $(d))

stop: ## Stop what `make up` started
	@test -x $(PY) && $(PY) -m serving.stop || echo "nothing to stop (no venv)"

smoke-test: setup ## Health / Root / Metrics / Prediction against URL (default the local gateway)
	$(PY) scripts/smoke_test.py --url $(or $(URL),http://127.0.0.1:8000) --wait

# --- bulk scoring and load tests ---------------------------------------------------------
IN ?=
OUT ?=
# Photos the load tests send: PERF_IMAGES=DIR (e.g. real photos); unset → synthetic ones generated in build/perf/photos.
PERF_IMAGES ?= $(PETS_DEV_DIR)
PERF_TARGETS ?= triton gateway
PERF_ARGS ?=
score: setup ## Score a folder or manifest through Triton gRPC: make score IN=photos/ OUT=scores.csv
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make score IN=<folder|manifest.csv> OUT=<file.csv|file.parquet>"; exit 2; }
	$(PY) -m scoring --input "$(IN)" --output "$(OUT)" $(SCORE_ARGS)

perf: setup ## Sweeps: Triton direct (real perf_analyzer vs the Python generator, chart) and the gateway → build/perf
	@for target in $(PERF_TARGETS); do \
	  $(PY) -m benchmarks.perf $$target $(if $(PERF_IMAGES),--images "$(PERF_IMAGES)") \
	    --out build/perf/$$target.csv $(PERF_ARGS) || exit $$?; \
	done

bench: setup ## Benchmark suite (side by side, medians of 3) → docs/benchmarks/{BENCHMARKS.md,results.json} + charts
	$(PY) -m benchmarks.suite $(if $(PERF_IMAGES),--images "$(PERF_IMAGES)") $(BENCH_ARGS)

cpu-sweep: setup ## Measure CPU Triton variants (instances × ORT threads, queue delay, preferred batches) → docs/benchmarks/CPU_SWEEP.md
	$(PY) -m benchmarks.cpu_sweep $(if $(PERF_IMAGES),--images "$(PERF_IMAGES)") --resnet18 --record $(SWEEP_ARGS)

rss-probe: setup ## Gateway RSS under sustained load: glibc default vs MALLOC_ARENA_MAX=2 vs tracemalloc → docs/benchmarks/RSS_PROBE.md
	$(PY) -m benchmarks.rss_probe $(if $(PERF_IMAGES),--images "$(PERF_IMAGES)") --record $(RSS_ARGS)

replicas: setup ## nginx → 2 gateways → 2 Tritons + one PostgreSQL on loopback, until Ctrl-C (GATEWAYS=, TRITONS=)
	$(PY) -m serving.topology --gateways $(or $(GATEWAYS),2) --tritons $(or $(TRITONS),2)

reload: setup ## Make the running local Triton load new/rolled-back versions (a no-op when none runs)
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

images: ## Build the gateway, puller and trainer images with a local Docker engine (starts dockerd if needed)
	scripts/images.sh $(IMAGES)

pull: setup ## Write a Triton repository from the registry: make pull DEST=dir [ALIAS=champion] [FLAVOR=gpu|cpu|ort-cpu]
	@test -n "$(DEST)" || { echo "usage: make pull DEST=<dir> [ALIAS=champion] [FLAVOR=gpu]"; exit 2; }
	$(PY) -m export.pull --alias $(or $(ALIAS),champion) --dest "$(DEST)" --flavor $(or $(FLAVOR),gpu)

promote: setup ## Move the alias to VERSION, then kubectl rollout restart Triton: make promote VERSION=7
	@test -n "$(VERSION)" || { echo "usage: make promote VERSION=<registered version> [ALIAS=champion]"; exit 2; }
	$(PY) -m export.promote --version "$(VERSION)" --alias $(or $(ALIAS),champion)

fuzz: setup ## Fuzz the decoder, /predict and every OpenAPI operation on the real stack (>= 10k cases)
	$(PY) tests/hardening/fuzz_main.py $(if $(FUZZ_EXAMPLES),--examples $(FUZZ_EXAMPLES))

reliability: setup ## Hardening suite → docs/reliability/hardening.json → docs/reliability/RELIABILITY.md
	HARDENING_RESULTS=$(CURDIR)/docs/reliability/hardening.json $(PY) -m pytest tests/hardening -q -s
	$(PY) -m benchmarks.reliability_report

# --- quality -----------------------------------------------------------------------------
test: setup ## Run the test suite (unit + integration with a real Triton)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: setup ## ruff (lint + format check), mypy, the import layers (lint-imports), deployment files
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/validate_deploy.py

format: setup ## ruff: fix what it can and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## Remove caches and build outputs (keeps data, mlflow.db and venvs)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
