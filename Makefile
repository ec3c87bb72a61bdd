# Everything installs into .venv from this project's own files; nothing by hand.
# Two installs: what the `patchwire` command needs (demo, sandbox, serve), and on top of it
# the development and test tooling (`dev` extra: pytest, mypy, ruff, Playwright, Temporal,
# schemathesis, the vendors' webhook SDKs...) for lint, typecheck, pytest and bench.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-demo
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint typecheck pytest bench sandbox serve clean

$(VENV)/pyvenv.cfg:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Patchwire needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(BASE): pyproject.toml | $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet -e .
	@touch $(BASE)

# the dev install includes the base one, so it stamps both
$(STAMP): pyproject.toml | $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(BASE)

demo: $(BASE)
	$(BIN)/patchwire demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# everything: the quick set spread over TEST_WORKERS processes (each test process has its
# own PostgreSQL database, tests/support/store.py), then the slow and external suites
# (Temporal, browsers, npm servers, crash recovery) over SLOW_WORKERS processes, a whole
# file to each (--dist loadfile): a file's servers (Prism's pool, Temporal) start once, in
# one process, in the order its tests use them
SLOW_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS)
	$(BIN)/pytest -m slow -n $(SLOW_WORKERS) --dist loadfile

# the quick loop: the slow and external suites left out, tests spread over TEST_WORKERS
# processes (more than the cores: most tests wait on loopback servers, not the CPU)
TEST_WORKERS ?= 3
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python bench/call_overhead.py
	$(BIN)/python bench/outage.py
	$(BIN)/python bench/ratelimit.py
	$(BIN)/python bench/tool_call.py
	$(BIN)/python bench/flow_throughput.py
	$(BIN)/python bench/webhook_ingest.py
	$(BIN)/python bench/deliveries.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/end_users.py

sandbox: $(BASE)
	$(BIN)/patchwire sandbox

serve: $(BASE)
	$(BIN)/patchwire serve

clean:
	rm -rf $(VENV) .patchwire .patchwire-demo .patchwire-scale .pytest_cache .mypy_cache .ruff_cache
