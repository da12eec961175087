# The two commands of README.md: `make demo` (the main job) and `make test` (the test suite).
# Each makes its own virtual environment in .venv on first use: the demo needs only the torch-free
# core install and the serve extra (FastAPI, uvicorn: the page its last line opens); the tests add
# PyTorch (the CPU wheel, installed first) and the test extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
FULL := $(VENV)/.installed

.PHONY: demo test clean

$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[serve]'
	touch $(CORE)

$(FULL): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so nothing pulls a CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(FULL) $(CORE)

demo: $(CORE)
	$(BIN)/vidseek demo

test: $(FULL)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-library
