# ecmeta: set-up, tests and reproduction.
#   make reproduce   run every notebook (PROFILE=quick by default), regenerate figures/ and the
#                    executed notebooks in notebooks/executed/ (committed, outputs inline)
#   make test        pytest on tests/, then every notebook on the smoke profile, validated by nbval
# Both create .venv and install the package on first use.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install when the dependency list changes; otherwise install only once.
STAMP := $(VENV)/.ecmeta-installed
# Pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
PROFILE ?= quick
PYTEST_ARGS ?=
EXECUTED := notebooks/_executed
PUBLISHED := notebooks/executed

# The venv comes first on PATH, so the notebooks' kernel and every tool are the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export MPLBACKEND := Agg
# Silences a debugger warning that ipykernel prints on every kernel start.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help install test pytest notebooks nbval reproduce ablations paper-8k lab bench lint clean

help:
	@echo "make reproduce [PROFILE=smoke|quick|paper]  run notebooks/ in order, write figures/"
	@echo "                                             and notebooks/executed/"
	@echo "make test                                    pytest + notebooks (smoke) + nbval"
	@echo "make ablations                               notebook 06's study at PROFILE (hours)"
	@echo "make paper-8k                                Table I at 8,000 updates vs quick (hours)"
	@echo "make lab                                     JupyterLab on notebooks/"
	@echo "make bench                                   run every script in benchmarks/"
	@echo "make lint                                    ruff check"
	@echo "make clean                                   remove .venv and generated files"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH_PIN)
	$(BIN)/pip install -e '.[dev]'
	touch $@

test: pytest notebooks nbval

pytest: $(STAMP)
	$(BIN)/pytest tests $(PYTEST_ARGS)

# Smoke runs write their figures next to the executed notebooks, not over figures/.
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py --profile smoke --out $(EXECUTED) \
		--figures-dir $(EXECUTED)/figures

nbval: $(STAMP)
	$(BIN)/pytest --nbval-lax --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg $(EXECUTED)

# The executed notebooks go to $(PUBLISHED) (sanitised: a rerun on the same machine gives the same
# files); figures/PROVENANCE.md records the machine, date and commit that made the figures.
reproduce: $(STAMP)
	$(BIN)/python tools/run_notebooks.py --profile $(PROFILE) --out $(PUBLISHED) \
		--figures-dir figures --provenance figures/PROVENANCE.md

# The ablation study of notebook 06 at the quick size: 123 runs, ~2.5-3 hours on 2 cores (cached);
# then `make reproduce` shows it.
ablations: $(STAMP)
	$(BIN)/python -m ecmeta_lib ablate --profile $(PROFILE) --ablations all \
		--methods pearl sac_aisf_1 --seeds 0 1 2 --task-seed 42 --workers 2 --figures figures

# Table I as specified at the quick profile's 8,000 gradient steps, PEARL and SAC_AiSF_1, 3 seeds
# (~35 min per run, two at a time on 2 cores: ~1 h 45 min; cached), then both profiles' agents on
# the same final slots, paired by seed: figures/paper_8k/profile_comparison.{md,csv}. It needs the
# quick grid's runs of the same methods and seeds (make reproduce trains them).
paper-8k: $(STAMP)
	$(BIN)/python -m ecmeta_lib run --profile paper_8k --methods pearl sac_aisf_1 \
		--seeds 0 1 2 --workers 2
	$(BIN)/python -m ecmeta_lib compare --profile paper_8k --against quick \
		--methods pearl sac_aisf_1 --seeds 0 1 2 --figures figures/paper_8k

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

lint: $(STAMP)
	$(BIN)/ruff check .

# Keeps figures/ (committed results) and results/ (the training cache).
clean:
	rm -rf $(VENV) $(EXECUTED) build *.egg-info .pytest_cache .hypothesis .ruff_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
