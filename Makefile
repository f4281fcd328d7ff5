# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export FLOWTOOLS_PROGRESS ?= 1

.PHONY: demo test test-all bench docs clean

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

## Benchmarks: prints a table and writes results/benchmarks/summary.json.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run.py

## The documentation site (site/).
docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) results site .pytest_cache
