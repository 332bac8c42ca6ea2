# The set-up and the two commands of the README (`make book`, `make test`).
# Every target first makes sure .venv holds exactly requirements.txt and the
# package; that step re-runs only when requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html/index.html
# strict: a warning (a broken reference, a missing figure) fails the build
JB_FLAGS := -W -n --keep-going
PYTEST := $(BIN)/python -m pytest

.PHONY: book test unit nbval book-strict notebooks lab bench clean setup

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## make book: build the HTML book from the stored notebook outputs
book: $(STAMP)
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book: $(abspath $(HTML))"

## make test: unit tests, every chapter re-run by nbval, and a strict build
test: unit nbval book-strict

unit: $(STAMP)
	$(PYTEST) tests

nbval: $(STAMP)
	$(PYTEST) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg book

book-strict: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book: $(abspath $(HTML))"

## make notebooks: re-execute every chapter in place (the only way outputs are made)
notebooks: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py book/*.ipynb

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab
	cd book && ../$(BIN)/jupyter lab

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf _build .pytest_cache src/*.egg-info
