# Two commands on a fresh clone:  `make repro` (set up, run the pipeline) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3.11
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Without a mirror set, use the sibling offline mirror when there is one (the layout CI uses);
# otherwise ingest downloads the pinned public URLs. Either way every file's SHA-256 is checked.
CYBERSENTINEL_DATA_MIRROR ?= $(wildcard $(abspath ../shared/data/upstream))
export CYBERSENTINEL_DATA_MIRROR

.PHONY: setup repro test lint params bench feeds bench-intel bench-ingest

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed  ## create the virtualenv and install the pinned requirements

repro: setup  ## run the pipeline on the default configuration (params.yaml)
	dvc repro

test: setup  ## lint and run the test suite
	ruff check src stages tests benchmarks
	pytest -q

lint: setup
	ruff check src stages tests benchmarks

params: setup  ## recompose params.yaml from conf/ (what `dvc exp run` does with hydra enabled)
	python -m cybersentinel.params $(OVERRIDES)

bench: setup  ## time a full and a no-op `dvc repro`
	python benchmarks/pipeline.py

feeds: setup  ## refresh the threat-intel feed snapshots (offline mirror when CYBERSENTINEL_FEEDS_MIRROR is set)
	cybersentinel feeds refresh --out data/feeds

bench-intel: setup  ## IP/domain lookup speed on the real feeds
	python benchmarks/intel_lookup.py

bench-ingest: setup  ## ingest throughput from PostgreSQL and a JSON API, ETL load throughput
	python benchmarks/ingest_throughput.py
