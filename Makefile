# qckit developer entry points. Everything runs inside .venv, created on first use from Python 3.11 (else 3.12).
#   make demo   set up and run `qckit demo` on the embedded synthetic data (reports/demo/)
#   make test   set up and run the default test suite (what CI runs, via .ci/run); when the machine also has the
#               other supported Python (3.11 / 3.12), the suite runs there too, in .venv-other

PY311  := $(shell sh tools/find-python 3.11)
PY312  := $(shell sh tools/find-python 3.12)
PYTHON ?= $(or $(PY311),$(PY312),$(shell command -v python3))
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qckit-installed

.PHONY: setup demo test test-other test-all docs bench oracles lint clean prerequisites preview-py313

setup: $(STAMP)

# pyradiomics-bhklab ships no wheels: it builds from source, which needs a C compiler and the Python headers.
prerequisites:
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v in ((3, 11), (3, 12)) else "qckit needs Python 3.11 or 3.12, found %d.%d (set PYTHON=/path/to/python3.11; 3.13: see README)" % v)'
	@$(PYTHON) -c 'import os, sys, sysconfig; h = os.path.join(sysconfig.get_paths()["include"], "Python.h"); sys.exit(0 if os.path.isfile(h) else "the Python headers are missing (%s): install python3-dev (Debian/Ubuntu) or python3-devel (Fedora); pyradiomics builds from source" % h)'
	@command -v "$${CC:-cc}" >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || { echo "no C compiler (cc/gcc): install build-essential (Debian/Ubuntu) or gcc; pyradiomics builds from source" >&2; exit 1; }

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory prerequisites PYTHON=$(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qckit demo --output-dir reports/demo

# the other supported interpreter, when this machine has it
OTHER := $(if $(filter $(PY311),$(PYTHON)),$(PY312),$(if $(filter $(PY312),$(PYTHON)),$(PY311),))
OTHER_VENV := .venv-other
OTHER_STAMP := $(OTHER_VENV)/.qckit-installed

# the suite runs on every core (pytest-xdist), one test file per worker so module fixtures are built once
PYTEST_JOBS ?= -n auto --dist loadfile

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_JOBS)
ifneq ($(OTHER),)
	@$(MAKE) --no-print-directory test-other
else
	@echo "one supported Python only ($(PYTHON)): the suite ran on it alone"
endif

$(OTHER_STAMP): pyproject.toml
	@$(MAKE) --no-print-directory prerequisites PYTHON=$(OTHER)
	$(OTHER) -m venv $(OTHER_VENV)
	$(OTHER_VENV)/bin/python -m pip install --quiet --upgrade pip wheel
	$(OTHER_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $(OTHER_STAMP)

# the docs tests (site build, examples) do not depend on the interpreter: they run once, in .venv; so does the
# whole-demo test (two minutes; every stage of the demo has its own tests, which run on both interpreters), and so
# do the agreement tests on the third-party reference data (marker `reference`: the same numbers from the same
# numpy/scipy/pyradiomics versions; every analysis they check also has its synthetic known-answer tests here)
test-other: $(OTHER_STAMP)
	@echo "== the test suite again, on $$($(OTHER_VENV)/bin/python -V)"
	$(OTHER_VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_JOBS) -m "not slow and not docs and not reference" \
		--deselect tests/test_demo.py::test_demo_runs_and_writes_index

# The documentation site (MkDocs + Material + mkdocstrings) into build/site; `make test` builds it too (strict).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

# Python 3.13 preview: not supported (neuroHarmonize pins numpy<2, numpy 1.26 has no 3.13 build), but kept
# tested so the day the pin lifts is a version bump: qckit with numpy 2.3 on 3.13, neuroHarmonize without its pin,
# and the suite (less the docs and the tests of the 3.11/3.12-only Makefile and wheel).
PY313 := $(shell sh tools/find-python 3.13)
preview-py313:
	@test -n "$(PY313)" || { echo "no Python 3.13 on this machine" >&2; exit 2; }
	$(PY313) -m venv .venv-313
	.venv-313/bin/python -m pip install --quiet --upgrade pip wheel
	.venv-313/bin/python tools/preview_requirements.py > .venv-313/requirements.txt
	.venv-313/bin/python -m pip install --quiet -r .venv-313/requirements.txt
	.venv-313/bin/python -m pip install --quiet --no-deps 'neuroHarmonize>=2.5.2' neuroCombat
	.venv-313/bin/python -m pip install --quiet --no-deps --ignore-requires-python -e .
	.venv-313/bin/python -m pytest -p no:cacheprovider -m "not slow and not docs" --deselect tests/test_makefile.py \
		--deselect tests/test_wheel.py --deselect tests/test_demo.py

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

# pylinac 3.49 (ACRMRILarge, the second opinion on the ACR tests) gets a venv of its own as well.
PYLINAC_STAMP := .venv-pylinac/.installed
$(PYLINAC_STAMP):
	$(PYTHON) -m venv .venv-pylinac
	.venv-pylinac/bin/python -m pip install --quiet 'pylinac==3.49.*'
	@touch $(PYLINAC_STAMP)

# Test oracles from independent implementations, written once into tests/ as golden values (the tests never import
# them): combatlearn (nested ComBat's order search) in a venv of its own, without qckit.
ORACLE_STAMP := .venv-oracle/.installed
$(ORACLE_STAMP):
	$(PYTHON) -m venv .venv-oracle
	.venv-oracle/bin/python -m pip install --quiet 'combatlearn==2.3.0'
	@touch $(ORACLE_STAMP)

oracles: $(ORACLE_STAMP)
	.venv-oracle/bin/python benchmarks/oracles/combatlearn_nested.py

bench: $(BENCH_STAMP) $(HAZEN_STAMP) $(PYLINAC_STAMP)
	.venv-bench/bin/python benchmarks/bench_scan.py
	.venv-bench/bin/python benchmarks/bench_combat.py
	.venv-bench/bin/python benchmarks/bench_extract.py
	.venv-bench/bin/python benchmarks/bench_diffusion.py
	.venv-bench/bin/python benchmarks/bench_listen.py
	PYLINAC_PYTHON=$(CURDIR)/.venv-pylinac/bin/python .venv-bench/bin/python benchmarks/bench_catphan.py
	.venv-bench/bin/python benchmarks/bench_startup.py
	HAZEN_BIN=$(CURDIR)/.venv-hazen/bin/hazen .venv-bench/bin/python benchmarks/bench_relaxometry.py
	HAZEN_BIN=$(CURDIR)/.venv-hazen/bin/hazen PYLINAC_PYTHON=$(CURDIR)/.venv-pylinac/bin/python \
		.venv-bench/bin/python benchmarks/bench_qc.py

lint: $(STAMP)
	$(BIN)/ruff check qckit tests benchmarks
	$(BIN)/ruff format --check qckit tests benchmarks

clean:
	rm -rf $(VENV) .venv-other .venv-bench .venv-hazen .venv-pylinac .venv-oracle .venv-313 build *.egg-info .pytest_cache
