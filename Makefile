# Two commands on a fresh clone:  `make repro` (set up, run the pipeline) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3.11
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Without a mirror set, use the sibling offline mirror when there is one (the layout CI uses);
# otherwise ingest downloads the pinned public URLs. Either way every file's SHA-256 is checked.
CYBERSENTINEL_DATA_MIRROR ?= $(wildcard $(abspath ../shared/data/upstream))
export CYBERSENTINEL_DATA_MIRROR
# The curated collections (no public URL) and the pinned feeds: the sibling folders when present, else
# data/collections (a copy of the team's collections) and the feeds' pinned URLs.
CYBERSENTINEL_COLLECTIONS ?= $(wildcard $(abspath ../shared/data/collections))
export CYBERSENTINEL_COLLECTIONS
CYBERSENTINEL_FEEDS_MIRROR ?= $(wildcard $(abspath ../shared/data/feeds))
export CYBERSENTINEL_FEEDS_MIRROR

.PHONY: setup lock repro test lint params bench feeds bench-intel bench-ingest bench-predict bench-dask serve loadtest \
	bench-observe image

# Dependencies: pyproject.toml declares them (runtime, extras test and dev, ...); requirements.lock pins the
# whole transitive set with hashes and is all `make setup` installs. To add or change a dependency: edit
# pyproject.toml (an exact pin), run `make lock`, commit pyproject.toml and both lock files.
# tests/test_packaging.py fails when the lock no longer matches pyproject.toml.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed  ## create the virtualenv and install requirements.lock (hash-checked), then the package

# One resolution for every platform (Python 3.11+), preferring the versions already in the lock, so `make lock`
# after adding a dependency changes only what it must. requirements-serve.lock is the service's share
# (requirements-serve.in) at the same versions: what the Docker image installs. Needs the package index and
# uv (in .venv after `make setup`, extra `dev`; or UV=/path/to/uv).
UV ?= uv
UV_COMPILE = $(UV) pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command 'make lock'
lock:  ## re-resolve pyproject.toml (all extras) into requirements.lock and requirements-serve.lock
	$(UV_COMPILE) --all-extras pyproject.toml -o requirements.lock
	$(UV_COMPILE) requirements-serve.in -c requirements.lock -o requirements-serve.lock

repro: setup  ## run the pipeline on the default configuration (params.yaml)
	dvc repro

test: setup  ## bring the pipeline up to date (the sanity tests judge its model), lint, run the test suite
	dvc repro
	ruff check src stages tests benchmarks
	pytest -q -rs --durations=15

lint: setup
	ruff check src stages tests benchmarks

params: setup  ## recompose params.yaml from conf/ (what `dvc exp run` does with hydra enabled)
	python -m cybersentinel.mlops.params $(OVERRIDES)

bench: setup  ## time a full and a no-op `dvc repro`
	python benchmarks/pipeline.py

feeds: setup  ## refresh the threat-intel feeds and version the snapshot with DVC (commit data/feeds.dvc, then make push)
	cybersentinel feeds refresh --out data/feeds
	dvc add data/feeds

bench-intel: setup  ## IP/domain lookup speed on the real feeds
	python benchmarks/intel_lookup.py

bench-ingest: setup  ## ingest throughput from PostgreSQL and a JSON API, ETL load throughput
	python benchmarks/ingest_throughput.py

# ---- versioned storage, experiment sweeps, pull-request reports ---------------------------------------------
.PHONY: s3-up s3-down push pull sweep report promote retrain bench-storage

S3_PORT ?= 5577
SWEEP_ARGS ?= -S 'model=logreg,random_forest,xgboost,lightgbm'
JOBS ?= 2
BASE ?= main

s3-up: setup  ## start the local S3 server on 127.0.0.1:$(S3_PORT), create the bucket, point the DVC remote at it
	cybersentinel remote up --port $(S3_PORT)

s3-down: setup  ## stop the local S3 server (it keeps objects in memory: they are discarded)
	cybersentinel remote down

push: setup  ## check the DVC remote, then push data and models to it
	cybersentinel remote push

pull: setup  ## check the DVC remote, then pull data and models from it
	cybersentinel remote pull

# Queued experiments run in temporary copies of the repository: MLflow must log to an absolute store.
sweep: export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
sweep: setup  ## queue a Hydra sweep as DVC experiments (default: the four models), run $(JOBS) at a time, compare
	python -c 'from cybersentinel.tracking.registry import ensure_experiment; ensure_experiment()'
	dvc exp run --queue $(SWEEP_ARGS)
	dvc queue start -j $(JOBS)
	while dvc queue status | grep -qE 'Queued|Running'; do sleep 10; done
	dvc queue status
	dvc exp show --md --sort-by test.roc_auc --sort-order desc --drop '.*' \
	  --keep 'Experiment|Created|State|model\.name|test\.(roc_auc|pr_auc|tpr_at_1pct_fpr|precision|recall)|loco_min_roc_auc'

report: setup  ## the pull-request report against $(BASE): markdown + PNG plots in reports/tmp/pr/ (offline)
	cybersentinel report --base $(BASE)

promote: setup  ## move MLflow's 'champion' alias to the model in models/ if it beats the champion on the test set
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db} cybersentinel promote --model-dir models

# Refresh the feeds, fingerprint the analyst feedback, dvc repro, compare the candidate with the champion (test rows
# held out from both, leave-one-collection-out table), promote only if better by params `retrain`, report, dvc push.
retrain: setup  ## the retraining loop; with nothing new it changes nothing (report: reports/tmp/retrain/)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db} cybersentinel retrain $(RETRAIN_ARGS)

bench-storage: setup  ## dvc push/pull round trip to the local S3 server, 4-model sweep throughput, report build time
	python benchmarks/storage_and_sweeps.py

serve: setup  ## the scoring API and web page on http://127.0.0.1:8000
	cybersentinel serve

image:  ## build the service image with podman on a debootstrapped Debian base (root; scripts/image.sh; no registry)
	scripts/image.sh build

loadtest: setup  ## service latency under load with wrk (500 single-URL requests/s for 60 s; 1,000-URL batches)
	python benchmarks/load_test.py

bench-predict: setup  ## batch scoring throughput vs fraudurl (1M URLs)
	python benchmarks/predict_throughput.py

bench-observe: setup  ## service p50/p99 with and without metrics and the decision log; `drift` on 1M scored rows
	python benchmarks/observe.py

bench-dask: setup  ## batch scoring, local engine vs Dask 2x1 and 1x2 (5M URLs in 20 Parquet files)
	python benchmarks/distributed.py
