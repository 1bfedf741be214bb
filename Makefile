# Set-up commands of perturbridge (see README). Python 3.11, Debian.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest options of `make test` and `make test-fast`: the suite on every core (pytest-xdist;
# tests/conftest.py keeps the tests that share an expensive session fixture on one worker).
# One process: make test PYTEST_PARALLEL=
PYTEST_PARALLEL ?= -n auto --dist loadgroup

.PHONY: demo test test-fast lint r-oracle browser refdata bench clean

# pip compiles every module at install time (about half of a fresh install): keep it, a
# machine that sets PYTHONDONTWRITEBYTECODE would otherwise compile every imported module
# again in every process of the test suite
$(BIN)/perturbridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,models,refs]'
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

## refdata: optional reference data from Debian (as root): org.Hs.eg.db's gene table
refdata:
	@sh scripts/install_refdata.sh

## test: install, get the R oracle, the browser and the optional reference data (outside
## any namespace), run the gates
## (ruff check, ruff format --check, mypy), then the test suite with networking disabled:
## pytest runs in a network namespace with only loopback when `unshare -n` works (root,
## util-linux, iproute2); otherwise it runs normally and says why
test: $(BIN)/perturbridge r-oracle browser refdata
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	@if unshare -n sh -c 'ip link set lo up' 2>/dev/null; then \
		echo "pytest: networking disabled (network namespace with only loopback)"; \
		unshare -n sh -c 'ip link set lo up && exec $(BIN)/pytest $(PYTEST_PARALLEL)'; \
	else \
		echo "pytest: cannot disable networking here (unshare -n needs root and util-linux," \
			"ip needs iproute2); running with the network as it is" >&2; \
		$(BIN)/pytest $(PYTEST_PARALLEL); \
	fi

## test-fast: the quick loop, without the tests marked slow
test-fast: $(BIN)/perturbridge
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow"

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
