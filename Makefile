# CarePath: `make run` starts everything on embedded defaults; `make test` runs the test suite.
# Both install what they need on first use (see infra/setup.sh).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup setup-test setup-bench bench-active-runs run stop demo demo-rx demo-pay demo-exam demo-nursing test lint fmt bench clean backup restore audit-verify fault-campaign

setup:
	@infra/setup.sh run

setup-test:
	@infra/setup.sh test

setup-bench:
	@infra/setup.sh bench

run: setup
	@$(PY) -m infra.launcher

stop:
	@$(PY) -m infra.launcher stop

demo-rx:
	@$(PY) -m infra.demo_rx $(ARGS)

demo-exam:
	@$(PY) -m infra.demo_exam $(ARGS)

demo-nursing:
	@$(PY) -m infra.demo_nursing $(ARGS)

demo-pay:
	@$(PY) -m infra.demo_pay $(ARGS)

demo:
	@$(PY) -m infra.demo $(ARGS)

# SEC-2: checks the audit trail's chain in the configured database (exit 1 naming the break).
audit-verify:
	@$(PY) -m infra.audit verify $(ARGS)

# Unbuffered: a run that is killed still shows how far it got.
test: setup-test
	@PYTHONUNBUFFERED=1 $(PY) -m pytest $(ARGS)

lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy .
	@.venv/bin/lint-imports

fmt: setup
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

bench: setup-bench
	@$(PY) -m bench.webhook_throughput
	@$(PY) -m bench.messages_throughput
	@$(PY) -m bench.status_callbacks
	@$(PY) -m bench.pathway_stats
	@$(PY) -m bench.workbench_reports
	@$(PY) -m bench.api_load
	@$(PY) -m bench.prescription_autoapproval
	@$(PY) -m bench.payment_faults
	@$(PY) -m bench.fault_campaign

# 100,000 pathway runs waiting on timers, 10,000 due at one minute, on Temporal on PostgreSQL:
# hours on 2 cores, so not part of `make bench`; `ARGS="--runs 20000 --due 2000"` for a smaller one.
bench-active-runs: setup-bench
	@$(PY) -m bench.active_runs $(ARGS)

# Runs, payments and prescriptions under worker kills, server restarts and failing simulators;
# `make fault-campaign ARGS=--quick` for a small one.
fault-campaign: setup-test
	@$(PY) -m bench.fault_campaign $(ARGS)

backup: setup
	@$(PY) -m infra.backup create $(ARGS)

restore: setup
	@test -n "$(FILE)" || { echo "usage: make restore FILE=<backup> [ARGS='--database-url …']"; exit 2; }
	@$(PY) -m infra.backup restore "$(FILE)" $(ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
