# `make demo` and `make test` each set everything up from a fresh clone: a virtual environment in
# .venv with the package and its pinned dependencies (one pip call), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test,bench]'
	$(BIN)/python -m pip check
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/structures.py --output docs/benchmarks/structures.md

clean:
	rm -rf $(VENV) build *.egg-info
