# finlake: one-command local stack. Everything lands under FINLAKE_HOME (default .finlake/).
SHELL := /bin/bash
# The newest supported Python on PATH (3.13, 3.12, 3.11); `make install PYTHON=python3.11` picks one.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
export FINLAKE_HOME ?= $(CURDIR)/.finlake
PYTEST_ARGS ?=
# Installs come from uv.lock (versions and hashes) through uv, pinned here and bootstrapped into
# .tools/ with the chosen Python. cpu: xgboost-cpu; gpu: xgboost with CUDA (the RAPIDS profile).
UV_VERSION := 0.13.9
UV ?= .tools/uv-$(UV_VERSION)/bin/uv
XGBOOST ?= cpu
EXTRAS := --extra spark --extra $(XGBOOST)
DEV_EXTRAS := $(EXTRAS) --extra dev --extra sequence
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# The system's certificate store, so that a TLS-inspecting company proxy works as it does for pip.
export UV_SYSTEM_CERTS ?= 1
# Tests that need no Kafka broker and no long Spark job: what CI runs on the other Pythons.
FAST_TESTS ?= tests/test_config.py tests/test_calibration.py tests/test_generators.py tests/test_schedule.py \
	tests/test_stats.py tests/test_topology.py tests/test_imports.py tests/test_metrics.py tests/test_cli.py tests/test_preflight.py tests/test_jvm_trees.py tests/test_sequence.py

.PHONY: help preflight install install-dev jars up down status demo bench chaos test soak test-fast lock clean sql-server sql-server-stop schedule unschedule

help:
	@echo "make demo    run the end-to-end demo on the embedded local stack"
	@echo "make test    run the test suite (starts its own Kafka broker and Spark)"
	@echo "make soak    the long runs of whole tools at CI size (the chaos run, the benchmark harness), left out of make test"
	@echo "make install | install-dev   the locked environment in $(VENV) (install-dev adds the test and sequence extras)"
	@echo "make test-fast   the tests that need no broker (PYTHON=python3.11 VENV=.venv-3.11 for another Python)"
	@echo "make lock    re-resolve uv.lock after a change to pyproject.toml"
	@echo "make bench   run the benchmark harness (bench/run.py) at several offered loads, then the ingest capacity (bench/pipeline.py)"
	@echo "make chaos   run the chaos and fuzz run (bench/chaos.py): hostile input, SIGKILLs, broker restart"
	@echo "make up | down | status   manage the local Kafka broker"
	@echo "make sql-server | sql-server-stop   Spark's Thrift JDBC/ODBC server over every table (127.0.0.1:10000)"
	@echo "make schedule | unschedule   install (remove) the monitor, retrain, report and maintenance crontab entries"
	@echo "make clean   stop services and remove FINLAKE_HOME and the venv"

# A supported Python and a JDK (not macOS's stub), each missing one named in one line.
preflight:
	@[ -n "$(PYTHON)" ] || { echo "finlake: error: Python 3.11, 3.12 or 3.13 is required and none of python3.13, python3.12, python3.11 runs here: install one (Debian/Ubuntu: sudo apt-get install python3.13 python3.13-venv; macOS: brew install python@3.13) or name it: make install PYTHON=/path/to/python3.x" >&2; exit 2; }
	@$(PYTHON) -m lakehouse.preflight

$(UV):
	@mkdir -p "$(FINLAKE_HOME)/logs"
	@{ $(PYTHON) -m venv $(dir $(UV)).. && $(dir $(UV))pip install -q uv==$(UV_VERSION); } >"$(FINLAKE_HOME)/logs/install.log" 2>&1 \
	 || { tail -n 5 "$(FINLAKE_HOME)/logs/install.log"; echo "finlake: error: installing uv $(UV_VERSION) with $(PYTHON) failed (Debian/Ubuntu: sudo apt-get install python3-venv for its venv module); log: $(FINLAKE_HOME)/logs/install.log" >&2; rm -rf $(dir $(UV))..; exit 1; }

# $(1): the extras. uv sync makes the venv exactly the lock's packages for them (a no-op when it is).
define sync
	@mkdir -p "$(FINLAKE_HOME)/logs"
	@start=$$(date +%s); $(UV) sync --locked --python $(PYTHON) $(1) >"$(FINLAKE_HOME)/logs/install.log" 2>&1 \
	 || { tail -n 20 "$(FINLAKE_HOME)/logs/install.log"; echo "finlake: error: installing the locked Python packages into $(VENV) failed; full log: $(FINLAKE_HOME)/logs/install.log" >&2; exit 1; }; \
	 added=$$(sed -n 's/^Installed \([0-9]*\) package.*/\1/p' "$(FINLAKE_HOME)/logs/install.log"); \
	 removed=$$(sed -n 's/^Uninstalled \([0-9]*\) package.*/\1/p' "$(FINLAKE_HOME)/logs/install.log"); \
	 if [ -n "$$added$$removed" ]; then \
	   echo "finlake: $(VENV) now holds what uv.lock names for $$($(PY) -c 'import platform; print("Python", platform.python_version())'): $${added:-0} packages installed, $${removed:-0} removed, in $$(( $$(date +%s) - start )) s"; fi
endef

install: preflight $(UV)
	$(call sync,$(EXTRAS))

install-dev: preflight $(UV)
	$(call sync,$(DEV_EXTRAS))

lock: $(UV)
	$(UV) lock

# Resolve the JVM jars (Kafka broker, Delta, the Kafka connector) into FINLAKE_HOME's caches and
# compile finlake's JVM functions: part of the install, so the demo's clock starts with them there.
# Says so only when it had work to do (a cached run takes about 4 s).
jars: install
	@start=$$(date +%s); $(PY) -m jobs.stack fetch >/dev/null || exit 1; took=$$(( $$(date +%s) - start )); \
	 if [ $$took -gt 6 ]; then echo "finlake: the JVM jars (Kafka broker, Delta, Kafka connector, finlake's functions) fetched in $$took s"; fi

up: install
	$(PY) -m jobs.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m jobs.stack down; fi

status: install
	$(PY) -m jobs.stack status

sql-server: install
	$(PY) -m jobs.sql_server start

sql-server-stop:
	@if [ -x $(PY) ]; then $(PY) -m jobs.sql_server stop; fi

schedule: install
	$(PY) -m jobs.schedule install

unschedule:
	@if [ -x $(PY) ]; then $(PY) -m jobs.schedule remove; fi

demo: jars
	$(PY) jobs/demo.py

# The whole stack at offered loads (bench/run.py), then the ingest capacity against the raw
# Spark limit taken in the same run (bench/pipeline.py).
BENCH_BACKLOG ?= 200000
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.pipeline --streams all --backlog $(BENCH_BACKLOG)

chaos: install-dev
	$(PY) -m bench.chaos $(CHAOS_ARGS)

# The long runs of whole tools (marker soak: the chaos run, the benchmark harness, each at CI
# size) are `make soak`; CI runs both. A -m in PYTEST_ARGS replaces the selection.
test: install-dev
	$(PY) -m pytest -m "not soak" $(PYTEST_ARGS)

soak: install-dev
	$(PY) -m pytest -m soak $(PYTEST_ARGS)

test-fast: install-dev
	$(PY) -m pytest $(PYTEST_ARGS) $(FAST_TESTS)

clean: down sql-server-stop
	rm -rf "$(FINLAKE_HOME)" $(VENV) .tools spark-warehouse metastore_db derby.log
