# Set-up commands of perturbridge (see README). Python 3.11, Debian.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint r-oracle browser bench clean

$(BIN)/perturbridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## demo: install into .venv and run the embedded demo
demo: $(BIN)/perturbridge
	$(BIN)/perturbridge demo --out demo_out

## r-oracle: R + limma/edgeR/statmod from Debian (as root), for the oracle tests
r-oracle:
	@sh scripts/install_r_oracle.sh

## browser: Debian chromium (as root), for the headless test of the HTML report
browser:
	@sh scripts/install_browser.sh

## test: install, get the R oracle and the browser, lint and run the test suite
test: $(BIN)/perturbridge r-oracle browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest

## lint: ruff and mypy
lint: $(BIN)/perturbridge
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

## bench: the limma-trend benchmark against R (minutes)
bench: $(BIN)/perturbridge r-oracle
	$(BIN)/python benchmarks/de_l1000.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .mypy_cache
