# finlake: one-command local stack. Everything lands under FINLAKE_HOME (default .finlake/).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
export FINLAKE_HOME ?= $(CURDIR)/.finlake
PYTEST_ARGS ?=

.PHONY: help install jars up down status demo bench chaos test clean sql-server sql-server-stop schedule unschedule

help:
	@echo "make demo    run the end-to-end demo on the embedded local stack"
	@echo "make test    run the test suite (starts its own Kafka broker and Spark)"
	@echo "make bench   run the benchmark harness (bench/run.py) at several offered loads, then the ingest capacity (jobs/bench_pipeline.py)"
	@echo "make chaos   run the chaos and fuzz run (bench/chaos.py): hostile input, SIGKILLs, broker restart"
	@echo "make up | down | status   manage the local Kafka broker"
	@echo "make sql-server | sql-server-stop   Spark's Thrift JDBC/ODBC server over every table (127.0.0.1:10000)"
	@echo "make schedule | unschedule   install (remove) the monitor, retrain, report and maintenance crontab entries"
	@echo "make clean   stop services and remove FINLAKE_HOME and the venv"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "finlake: error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	@command -v java >/dev/null || [ -n "$$JAVA_HOME" ] || { echo "finlake: error: Java 17+ is required: no java on PATH and JAVA_HOME unset"; exit 2; }
	@command -v javac >/dev/null || [ -x "$$JAVA_HOME/bin/javac" ] || { echo "finlake: error: a JDK 17+ is required (javac builds finlake's JVM functions): apt-get install openjdk-17-jdk-headless, or set JAVA_HOME to a JDK"; exit 2; }
	@mkdir -p "$(FINLAKE_HOME)/logs"
	@echo "finlake: installing the Python packages into $(VENV) (log: $(FINLAKE_HOME)/logs/install.log)"
	@{ $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip setuptools wheel \
	   && $(PY) -m pip install -q -e '.[dev,sequence]'; } >"$(FINLAKE_HOME)/logs/install.log" 2>&1 \
	 || { tail -n 20 "$(FINLAKE_HOME)/logs/install.log"; echo "finlake: error: installing the Python packages failed; full log: $(FINLAKE_HOME)/logs/install.log"; exit 1; }
	@touch $@

install: $(VENV)/.installed

# Resolve the JVM jars (Kafka broker, Delta, the Kafka connector) into FINLAKE_HOME's caches.
jars: install
	$(PY) -m jobs.stack fetch
	$(PY) -c "from lakehouse.config import load_config; from lakehouse.jvm import ensure_jars; ensure_jars(load_config())"

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

demo: install
	$(PY) jobs/demo.py

# The whole stack at offered loads (bench/run.py), then the ingest capacity against the raw
# Spark limit taken in the same run (jobs/bench_pipeline.py).
BENCH_BACKLOG ?= 200000
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) jobs/bench_pipeline.py --streams all --backlog $(BENCH_BACKLOG)

chaos: install
	$(PY) -m bench.chaos $(CHAOS_ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean: down sql-server-stop
	rm -rf "$(FINLAKE_HOME)" $(VENV) spark-warehouse metastore_db derby.log
