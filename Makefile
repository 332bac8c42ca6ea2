# The set-up and the two commands of the README (`make book`, `make test`).
# Every target first makes sure .venv holds exactly requirements.txt and the
# package, and node_modules/ the pinned MathJax the book serves itself; that
# step re-runs only when requirements.txt, pyproject.toml or package-lock.json
# change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html/index.html
# strict: a warning (a broken reference, a missing figure) fails the build
JB_FLAGS := -W -n --keep-going
PYTEST := $(BIN)/python -m pytest
# the unit tests and the chapters run on two workers (pytest-xdist); a
# chapter's cells stay together on one worker (--dist loadfile), in order
PARALLEL := -n 2 --dist loadfile
# the same kernels on every x86-64 machine, so that stored outputs reproduce
# digit for digit (see the file); exported to everything make runs
include tests/numerics.env
export $(shell sed -n 's/^\([A-Z_]*\)=.*/\1/p' tests/numerics.env)

.PHONY: book test unit nbval book-strict browser notebooks runs test-portable lab bench clean setup msign-table

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm (Debian: sudo apt-get install nodejs npm); the book serves MathJax from the npm registry's package"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## make book: build the HTML book from the stored notebook outputs
book: $(STAMP)
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book: $(abspath $(HTML))"

## make test: unit tests, every chapter re-run by nbval, a strict build, and
## every page of that build checked offline in headless Chromium
test: unit nbval book-strict browser

unit: $(STAMP)
	$(PYTEST) $(PARALLEL) tests --ignore=tests/browser

nbval: $(STAMP)
	$(PYTEST) $(PARALLEL) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg book

book-strict: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book: $(abspath $(HTML))"

## make test-portable: the torch tests and every chapter again under other
## float kernels (torch's scalar paths, torch unpinned, no pins at all), and
## under each a planted error that must be caught (tests/portable.py)
test-portable: $(STAMP)
	$(BIN)/python tests/portable.py

# needs the build above; screenshots of every page go to _build/screenshots/
browser: $(STAMP)
	$(PYTEST) -rs tests/browser

## make notebooks: re-execute every chapter in place (the only way outputs are made)
notebooks: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py book/*.ipynb

## make runs: train the real-network chapter's runs and store what they
## measured in book/data/real-network/ (the only way those data are made;
## then `make notebooks` re-runs the chapter's analysis on them)
runs: $(STAMP)
	$(BIN)/python -m optstats.network book/data/real-network

# As root (most containers) Jupyter refuses to start without --allow-root;
# LAB_FLAGS adds more, e.g. `make lab LAB_FLAGS="--no-browser --port 8899"`.
LAB_FLAGS ?=
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab
	cd book && ../$(BIN)/jupyter lab $(ROOT_FLAG) $(LAB_FLAGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

## make msign-table: regenerate the matrix arcsine law's table shipped with
## the package (src/optstats/theory/msign_table.npz; about ten CPU-minutes)
msign-table: $(STAMP)
	$(BIN)/python -m optstats.theory.msign_table

clean:
	rm -rf _build .pytest_cache src/*.egg-info node_modules
