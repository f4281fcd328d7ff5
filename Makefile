# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export FLOWTOOLS_PROGRESS ?= 1

.PHONY: demo test test-all bench bench-full docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## The flagship study (results in results/minimal_model/).
demo: $(STAMP)
	$(PY) studies/minimal_model.py

## The test suite (quick modes of every study; slow runs excluded).
test: $(STAMP)
	FLOWTOOLS_PROGRESS=0 $(PY) -m pytest -q -n 2 -m "not slow"

## Everything, slow runs included.
test-all: $(STAMP)
	FLOWTOOLS_PROGRESS=0 $(PY) -m pytest -q -n 2

## Benchmarks (about 10 minutes on 2 cores): prints a table and writes results/benchmarks/summary.json.
## `make bench-full` adds the long sweeps (an hour or more).
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py

bench-full: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --full

## The documentation site (site/).
docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) results site .pytest_cache
