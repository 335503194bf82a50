# Two entry points (see README.md): `make pipeline` and `make test`. Both build .venv first.
PYTHON ?= python3
# Extra pip arguments for torch. Here the CPU wheel is local; elsewhere on Linux, where PyPI's torch
# is the CUDA build, use TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
TORCH_PIP_ARGS ?=
VENV := .venv
STAMP := $(VENV)/.sail-installed

# Nothing is downloaded at run time: models and datasets are local paths given as parameters.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: .venv pipeline test bench lab

.venv: $(STAMP)

# torch is installed alone and first, pinned, so pip keeps the CPU build instead of resolving a
# multi-GB CUDA build for the packages that depend on it. Editing pyproject.toml reinstalls.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(TORCH_PIP_ARGS) torch==2.13.0
	$(VENV)/bin/pip install -e ".[dev]"
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name sail --display-name "Python (sail)"
	touch $@

# A run writes only under outputs/tiny/ (cards in outputs/tiny/data_cards/); the reference run's
# cards are then published at the top level, in data_cards/.
pipeline: .venv
	$(VENV)/bin/sail run --profile tiny
	cp outputs/tiny/data_cards/*.md outputs/tiny/data_cards/*.json data_cards/

test: .venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

# Every bench/ script at a quick size, after `make pipeline` (they read its outputs): one
# outputs/tiny/bench.json with each script's ratios and whole result.
bench: .venv
	$(VENV)/bin/python bench/run_all.py --profile tiny

lab: .venv
	cd notebooks && ../$(VENV)/bin/jupyter lab
