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

# JupyterLab on this machine only (127.0.0.1); LAB_PORT=... to change the port. As root (a container), Jupyter
# refuses to start without --allow-root. The address with its login token is printed once the server is up.
LAB_PORT ?= 8888
lab: $(STAMP)
	@echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab (open the address with ?token=... that Jupyter prints below)"
	$(BIN)/jupyter lab nbs --ip 127.0.0.1 --port $(LAB_PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(BIN)/python -m chimle.bench

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean
