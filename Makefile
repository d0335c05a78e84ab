# qckit developer entry points. Everything runs inside .venv, created from Python 3.11 on first use.
#   make demo   set up and run `qckit demo` on the embedded synthetic data (reports/demo/)
#   make test   set up and run the default test suite (what CI runs, via .ci/run)

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qckit-installed

.PHONY: setup demo test test-all bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "qckit needs Python 3.11, found %d.%d (set PYTHON=/path/to/python3.11)" % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qckit demo --out reports/demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

# Benchmarks run in .venv-bench: qckit plus the peers they compare against (not project dependencies).
BENCH_STAMP := .venv-bench/.qckit-installed
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip wheel
	.venv-bench/bin/python -m pip install --quiet -e '.[dev]' 'intensity-normalization==3.0.1'
	@touch $(BENCH_STAMP)

# hazen 2.0 needs numpy >= 2 and qckit (neuroHarmonize) numpy < 2: hazen gets a venv of its own.
HAZEN_STAMP := .venv-hazen/.installed
$(HAZEN_STAMP):
	$(PYTHON) -m venv .venv-hazen
	.venv-hazen/bin/python -m pip install --quiet 'hazen==2.0.*'
	@touch $(HAZEN_STAMP)

bench: $(BENCH_STAMP) $(HAZEN_STAMP)
	.venv-bench/bin/python benchmarks/bench_scan.py
	.venv-bench/bin/python benchmarks/bench_combat.py
	.venv-bench/bin/python benchmarks/bench_extract.py
	.venv-bench/bin/python benchmarks/bench_startup.py
	HAZEN_BIN=$(CURDIR)/.venv-hazen/bin/hazen .venv-bench/bin/python benchmarks/bench_relaxometry.py

lint: $(STAMP)
	$(BIN)/ruff check qckit tests benchmarks
	$(BIN)/ruff format --check qckit tests benchmarks

clean:
	rm -rf $(VENV) .venv-bench .venv-hazen build *.egg-info .pytest_cache
