# chimle: `make repro` runs the pipeline on the embedded default, `make test` runs the test suite.
# Both create the pinned environment in .venv when it is missing; a second call installs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chimle-installed
export PATH := $(abspath $(BIN)):$(PATH)
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0

.PHONY: repro test lab bench export clean-nbs env

env: $(STAMP)

$(STAMP): settings.ini setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest tests

lab: $(STAMP)
	$(BIN)/jupyter lab nbs

bench: $(STAMP)
	$(BIN)/python -m chimle.bench

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean
