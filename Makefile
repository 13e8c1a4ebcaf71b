# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first:
# `make demo` with what the library needs, `make test` with the test tools on top.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.core-installed
DEV := $(VENV)/.dev-installed

.PHONY: setup demo test test-fast bench clean

$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch CPU first (a plain `torch` requirement would pull a multi-GB CUDA build)
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e .
	touch $(CORE)

$(DEV): $(CORE)
	$(PY) -m pip install -q --no-compile -e ".[dev]"
	touch $(DEV)

setup: $(DEV)

demo: $(CORE)
	$(PY) -m terracodec.demo

test: $(DEV)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: $(DEV)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

bench: $(DEV)
	$(PY) benchmarks/entropy_coding.py

clean:
	rm -rf $(VENV) .pytest_cache
