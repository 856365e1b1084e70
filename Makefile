# Two commands: `make run` starts the service on the embedded default, `make test` runs the suite.
# The virtualenv is cached in .venv and only reinstalled when pyproject.toml or setup.py changes (the editable
# install maps the compiled modules' shared library by a name that depends on which modules setup.py compiles).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 1984
DATA_DIR ?= ./.tracehouse

# pyproject.toml's build-system.requires: installing compiles the decode path with mypyc (setup.py), in place.
BUILD_DEPS := "setuptools>=70.1" "mypy>=2.4,<3"
# A compiled module's edits run only once it is built again: any change to these rebuilds them all.
COMPILED_SOURCES := setup.py $(wildcard schemas/*.py ingest/*.py ingest/otlp/*.py) storage/batcher.py storage/rowbinary.py ingest/_fresh.c ingest/_multipart.c ingest/_otlp.c storage/_rowbinary.c storage/_rowbinary_put.h
# Removes the compiled modules built beside their sources, before each install too: a module setup.py no longer
# compiles would otherwise load its old build.
UNCOMPILE := rm -rf build *__mypyc*.so && find schemas storage ingest query tracehouse -name '*.so' -delete

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(UNCOMPILE)
	$(BIN)/pip install --quiet $(BUILD_DEPS)
	$(BIN)/pip install --quiet --no-build-isolation -e .
	touch $@ $(VENV)/.compiled

$(VENV)/.installed-dev: pyproject.toml setup.py | $(BIN)/python
	$(UNCOMPILE)
	$(BIN)/pip install --quiet $(BUILD_DEPS)
	$(BIN)/pip install --quiet --no-build-isolation -e '.[dev]'
	touch $@ $(VENV)/.installed $(VENV)/.compiled

$(VENV)/.compiled: $(COMPILED_SOURCES) | $(VENV)/.installed
	$(BIN)/python setup.py --quiet build_ext --inplace --force
	touch $@

run: $(VENV)/.installed $(VENV)/.compiled
	$(BIN)/tracehouse serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: $(VENV)/.installed-dev $(VENV)/.compiled
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.installed-dev $(VENV)/.compiled
	$(BIN)/python -m tests.bench.ingest

clean:
	rm -rf $(VENV) .tracehouse .pytest_cache .ruff_cache
	$(UNCOMPILE)
