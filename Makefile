# Two entry points (see README): `make demo` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,landmarks]'
	touch $(STAMP)

# The whole study on the embedded synthetic data, then the self-contained HTML report.
demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

# Unit tests, the end-to-end .test workflow, a real single-node SLURM (when root), lint gates.
test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
