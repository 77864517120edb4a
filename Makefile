# Two entry points (see README): `make demo` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed
# A fresh .venv/ takes about 6.5 GB (PyTorch's CUDA build brings 3 GB of NVIDIA libraries); say so
# before pip starts instead of its "No space left on device" half-way. NEED_GB=0 skips the check.
NEED_GB ?= 7

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -c "import shutil, sys; free = shutil.disk_usage('.').free / 2**30; \
	sys.exit(0 if free >= $(NEED_GB) else f'make: setup needs about $(NEED_GB) GB free for $(VENV)/ \
	(PyTorch with its CUDA libraries) but $(CURDIR) has {free:.1f} GB free. Free some space \
	(rm -rf results/ of old runs, old clones) or run with NEED_GB=0 to try anyway.')"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,landmarks,workflow,onnx,keras]'
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
