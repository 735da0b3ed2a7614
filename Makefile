# Two commands for a fresh machine with Python 3.11:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   := data/synthetic/nlca_patients.csv.gz
JOBS   ?= 2

.PHONY: run test install bench validate data clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/rp2pr-eval summary --data $(DATA)
	$(BIN)/rp2pr-eval run --params parameters

test: install
	$(BIN)/python -m pytest -q -m "not slow" -n $(JOBS)

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

validate: install
	$(BIN)/rp2pr-eval validate-methods --reps 200 --out outputs/validation

data: install
	$(BIN)/rp2pr-eval simulate --seed 20100401 --effect active_treatment=0.3 --effect cns_seen=0.4 --effect nsclc_resection=0.25 --out $(DATA) --force

clean:
	rm -rf $(VENV) outputs .pytest_cache
