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

.PHONY: repro repro-stages test lab bench gpu-check export clean-nbs env demo browser docs photos curves

env: $(STAMP)

$(STAMP): settings.ini setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@# the notebooks' kernel under the name nbdev_clean writes into them, so JupyterLab opens them unmodified
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	@touch $(STAMP)

# With params.yaml's run_baselines false (the default), `make repro` leaves out the comparison methods' stages (the
# report then shows the evaluations of them that runs/<profile>/eval already holds) and trains and evaluates only
# the train_runs whose method is in REPRO_METHODS: at this budget the photo ablations (no_ic, no_ic_pe) differ by
# less than their spread, so their part of the hour goes to the exactly known benchmarks (stage mode_forcing), where
# every ablation runs with seeds; their committed evaluations stay in the report. `dvc repro` runs every stage, and
# `make repro REPRO_METHODS="chimle cimle no_ic no_ic_pe"` the photo ablations too. `make repro-stages` lists them.
# Neither runs the learning curves (`make curves`, hours); the report reads the ones committed.
REPRO_METHODS ?= chimle cimle
REPRO_STAGES = release sample_efficiency mode_forcing $(shell $(BIN)/python -c "import yaml; \
  runs = yaml.safe_load(open('params.yaml'))['train_runs']; \
  print(*(f'evaluate@{k}' for k, r in runs.items() if r['method'] in '$(REPRO_METHODS)'.split()))")

repro: $(STAMP) photos
	@if $(BIN)/python -c "import sys, yaml; sys.exit(not yaml.safe_load(open('params.yaml'))['run_baselines'])"; then \
	  $(BIN)/dvc repro evaluate evaluate_baseline release sample_efficiency mode_forcing \
	    && $(BIN)/dvc repro --single-item report; \
	else \
	  $(BIN)/dvc repro $(REPRO_STAGES) && $(BIN)/dvc repro --single-item report; \
	fi

repro-stages: $(STAMP)
	@echo $(REPRO_STAGES)

test: $(STAMP) browser photos
	$(BIN)/python -m pytest tests

# The embedded profile's photos from two Debian packages (data/README.md). When one is missing, its package (18 MB
# for both) is downloaded once into fetch.downloads (data/downloads/debian), checked against its pinned SHA-256 and
# the photos extracted there: no root, no apt-get, nothing installed system-wide. Offline, it says which photos are
# missing and how to supply them, and goes on; the stages and tests that need them stop later, naming them.
photos: $(STAMP)
	@$(BIN)/python -m chimle.fetch --photos \
	  || echo "Going on without them: the embedded profile's fetch stage and the tests that read these photos will stop"

# The demo's browser tests (tests/test_demo.py) drive a headless Chromium. When it or its driver is missing and we
# are root with apt-get (a container, CI), they are installed here; otherwise those tests are skipped, saying so.
browser:
	@if ! { command -v chromium && command -v chromedriver; } >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing chromium and chromium-driver for the demo's browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
	      || echo "Could not install chromium and chromium-driver: the demo's browser tests will be skipped"; \
	  else echo "No chromium or chromedriver here: the demo's browser tests will be skipped (apt-get install chromium chromium-driver)"; fi; \
	fi

# JupyterLab on this machine only (127.0.0.1); LAB_PORT=... to change the port. As root (a container), Jupyter
# refuses to start without --allow-root. The address with its login token is printed once the server is up.
LAB_PORT ?= 8888
lab: $(STAMP)
	@echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab (open the address with ?token=... that Jupyter prints below)"
	$(BIN)/jupyter lab nbs --ip 127.0.0.1 --port $(LAB_PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# The demo page (chimle-demo: the released models) on this machine only (127.0.0.1); DEMO_PORT=... to change the
# port. Ctrl-C stops it.
DEMO_PORT ?= 7860
demo: $(STAMP)
	@echo "Demo: http://127.0.0.1:$(DEMO_PORT) (Ctrl-C stops it)"
	$(BIN)/chimle-demo --port $(DEMO_PORT)

# The documentation site in _site/ (mkdocs.yml): one page per notebook of nbs/ with the outputs it was committed with
# (nothing is run) and the API of the module it exports, the README and the results report. Offline: every asset
# comes from the installed packages. The docs packages are in the `dev` extra (and a `docs` extra of their own).
DOCS_PORT ?= 8000
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --clean
	@echo "The site is in $(abspath _site) (start page: _site/index.html). To view it:"
	@echo "  $(BIN)/python -m http.server -d _site -b 127.0.0.1 $(DOCS_PORT)   then open http://127.0.0.1:$(DOCS_PORT)/"

# Timings on a shared CPU: OpenMP threads that sleep rather than spin, and an explicit thread count (BENCH_THREADS).
BENCH_THREADS ?= 2
bench: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python -m chimle.bench

# The GPU check, prepared to run as is on the first GPU machine (under 10 minutes): the paper profile's bench and a
# training smoke, written under "cuda" in bench/results.json (bench/gpu_check.sh; nbs/09_bench, section 8).
gpu-check:
	bash bench/gpu_check.sh

# The learning curves on the unseen photos (params.yaml's curves; outside `make repro`: hours on a 2-core CPU).
# chimle.curves trains CURVE_JOBS curves at once, one process and one thread each, resuming any it finds begun; then the
# curve stages record them, curves_release releases the chosen models into models/<profile>-long, and the report is
# written again.
CURVE_JOBS ?= 2
curves: $(STAMP) photos
	$(BIN)/dvc repro prepare
	OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 $(BIN)/python -m chimle.curves --jobs $(CURVE_JOBS)
	$(BIN)/dvc repro curves_release && $(BIN)/dvc repro --single-item report

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean
