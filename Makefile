# Two commands for a fresh machine with Python 3.11+:  make run  |  make test
# Both install the exact versions in requirements.lock (hash-checked) into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
STAMP  := $(VENV)/.installed-stamp
DATA   := data/synthetic/nlca_patients.csv.gz
JOBS   ?= 2
# newest versions pyproject.toml allows, in their own environment (make test-latest)
LATEST := .venv-latest
# the peer implementation for benchmarks/bench_pyfixest.py, in its own environment (make bench-pyfixest)
BENCH  := .venv-bench
PYFIXEST_VERSION := 0.60.0
# the lock tool, in its own environment (make lock)
TOOLS  := .venv-tools
UV_VERSION := 0.13.9
LOCK_FLAGS := --extra test --universal --fork-strategy fewest --python-version 3.11 --generate-hashes \
              --custom-compile-command "make lock"

.PHONY: run test test-latest install lock bench bench-pyfixest validate data clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Every package at the locked version and hash, nothing resolved on this machine; then the project itself.
$(STAMP): $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/rp2pr-eval summary --data $(DATA)
	$(BIN)/rp2pr-eval run --params parameters

# Each test session gets its own temporary root: pytest's shared /tmp/pytest-of-<user>/ keeps only the last
# three sessions, so on a machine where several sessions run at once they would delete each other's files.
PYTEST = tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/rp2pr-tests.XXXXXX"); \
	$(1)/python -m pytest -q -m "not slow" -n $(JOBS) --basetemp="$$tmp/t"; rc=$$?; rm -rf "$$tmp"; exit $$rc

test: install
	@$(call PYTEST,$(BIN))

# The same tests against the newest releases pyproject.toml allows (upstream breakage shows here first).
test-latest:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[test]"
	$(LATEST)/bin/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	@$(call PYTEST,$(LATEST)/bin)

# Regenerate requirements.lock from pyproject.toml (keeps today's pins where still allowed;
# `make lock UPGRADE=1` resolves every package anew to its newest allowed release).
$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(TOOLS)/bin/uv
	$(TOOLS)/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade,) -o $(LOCK)

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# pyfixest side by side with the study's trust-level estimators; pyfixest is not a dependency of the package,
# so it lives in its own environment: the locked packages, the project, then pyfixest and what it needs.
$(BENCH)/bin/python:
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BENCH)/bin/python -m pip install --quiet --no-deps -e .
	$(BENCH)/bin/python -m pip install --quiet pyfixest==$(PYFIXEST_VERSION)

bench-pyfixest: $(BENCH)/bin/python
	$(BENCH)/bin/python benchmarks/bench_pyfixest.py

validate: install
	$(BIN)/rp2pr-eval validate-methods --reps 200 --out outputs/validation

data: install
	$(BIN)/rp2pr-eval simulate --seed 20100401 --effect active_treatment=0.3 --effect cns_seen=0.4 --effect nsclc_resection=0.25 --out $(DATA) --force
	$(BIN)/rp2pr-eval simulate --seed 20100401 --effect active_treatment=0.3 --effect cns_seen=0.4 --effect nsclc_resection=0.25 --raw data/synthetic/raw --force

clean:
	rm -rf $(VENV) $(LATEST) $(TOOLS) $(BENCH) outputs .pytest_cache
