# `make search`: set everything up on a fresh machine and run the default search
# (`make search BUDGET=11ms` for another budget).
# `make test`: set up and run the tests; `make test-fast`: only those that take seconds (no
# subprocess searches, no PostgreSQL server, no optuna-dashboard).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FASHION := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data postgres search test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

data:
	@if [ -f $(FASHION)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "could not install dataset-fashion-mnist; pass --data-dir DIR with the IDX files"; \
	else echo "Fashion-MNIST is not in $(FASHION) and apt-get is missing: pass --data-dir DIR with the IDX files"; fi

# PostgreSQL's server for the tests of workers sharing a PostgreSQL study (they are skipped,
# saying why, where it cannot be installed).
postgres:
	@scripts/postgres.sh install || echo "PostgreSQL is missing: its tests will be skipped"

BUDGET ?= 20ms

search: setup data
	$(PY) run_search.py --latency-budget $(BUDGET) --workers auto

test: setup postgres
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not postgres and not dashboard"

bench: setup data
	$(PY) benchmarks/latency_accuracy.py

clean:
	rm -rf $(VENV) *.egg-info
