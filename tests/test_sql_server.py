"""The JDBC/ODBC endpoint: `jobs/sql_server.py start` serves the catalog through Spark's Thrift
server; beeline (shipped with pyspark) asks it what Spark itself answers."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyspark
import pytest

from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.silver import silver_schema

from conftest import ROOT, free_port

BEELINE = Path(pyspark.__file__).parent / "bin" / "beeline"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def silver_rows(ids_amounts):
    base = {"event_time": T0, "card_token": "a" * 64, "card_last4": "1111", "customer_id": "c1", "merchant_id": "m1",
            "merchant_country": "FR", "mcc": "5411", "currency": "EUR", "channel": "ecommerce", "terminal_id": None,
            "lat": None, "lon": None, "device_id": None, "extras": None, "kafka_partition": 0, "kafka_timestamp": T0, "silver_time": T0}
    return [tuple({**base, "event_id": i, "amount": Decimal(a), "kafka_offset": n}[f.name] for f in silver_schema("transactions").fields)
            for n, (i, a) in enumerate(ids_amounts)]


def beeline(url: str, sql: str) -> list[list[str]]:
    out = subprocess.run([str(BEELINE), "-u", url, "--outputformat=csv2", "--silent=true", "--showHeader=false", "-e", sql],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    text = re.sub(r"^\d+: jdbc:hive2://\S+> ", "", out.stdout, flags=re.M)   # beeline's prompt before the rows
    return [row for row in csv.reader(io.StringIO(text)) if row]


def spark_rows(spark, sql: str) -> list[list[str]]:
    return [["" if v is None else str(v) for v in r] for r in spark.sql(sql).collect()]


@pytest.fixture(scope="module")
def sql_home(spark, cfg, overrides, job_env, tmp_path_factory):
    """A home with two versions of silver.transactions, fraud scores and quality results."""
    home = tmp_path_factory.mktemp("sql_home")
    port = free_port()
    scfg = load_config("local", [*overrides, f"sql_server.port={port}"], home=home)
    catalog = Catalog(scfg)
    catalog.register(spark)   # the names point here; silver.transactions and ops.dq_results exist, empty (version 0)
    schema = silver_schema("transactions")
    spark.createDataFrame(silver_rows([("t1", "10.00"), ("t2", "20.50"), ("t3", "7.25")]), schema) \
        .write.format("delta").mode("append").saveAsTable("silver.transactions")          # version 1
    spark.createDataFrame(silver_rows([("t4", "99.99"), ("t5", "1.00")]), schema) \
        .write.format("delta").mode("append").saveAsTable("silver.transactions")          # version 2
    scores = catalog.spec("gold.fraud_scores")   # declared: created empty by register, in its columns
    spark.createDataFrame([{**dict.fromkeys(scores.schema.fieldNames()), "event_id": i, "score": p, "model_version": "3", "decision": d}
                           for i, p, d in (("t1", 0.91, "alert"), ("t3", 0.02, "pass"), ("t9", 0.5, "pass"))], scores.schema) \
        .write.format("delta").mode("append").save(scores.location)
    spark.createDataFrame([(T0, "silver.transactions", 1, "finlake.pipeline", "duplicates_dropped", "true", 2, 5, None),
                           (T0, "silver.transactions", 1, "finlake.pipeline", "amount_positive", "false", 1, 5, {"k": "v"})],
                          "run_time timestamp, table string, batch_id long, suite string, expectation string, success string, "
                          "unexpected_count long, element_count long, details map<string,string>") \
        .write.format("delta").mode("append").save(catalog.spec("ops.dq_results").location)
    catalog.register(spark)
    env = dict(job_env, FINLAKE_HOME=str(home))
    conf = ["--conf", f"sql_server.port={port}", "--conf", "spark.driver_memory=1g"]
    started = subprocess.run([sys.executable, "-m", "jobs.sql_server", "start", *conf], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-2000:]
    yield scfg, f"jdbc:hive2://127.0.0.1:{port}/default", env, conf
    subprocess.run([sys.executable, "-m", "jobs.sql_server", "stop", *conf], cwd=ROOT, env=env, capture_output=True, timeout=120)
    Catalog(cfg).register(spark)   # table names point back at the suite's home


QUERIES = {
    "join": "SELECT t.event_id, CAST(t.amount AS STRING), CAST(f.score AS STRING), f.model_version "
            "FROM gold.fraud_scores f JOIN silver.transactions t ON f.event_id = t.event_id ORDER BY t.event_id",
    "time_travel": "SELECT count(*), CAST(sum(amount) AS STRING) FROM silver.transactions VERSION AS OF 1",
    "dq_results": "SELECT expectation, success, unexpected_count FROM ops.dq_results WHERE `table` = 'silver.transactions' "
                  "ORDER BY expectation",
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_jdbc_clients_get_what_spark_answers(spark, sql_home, name):
    _, url, _, _ = sql_home
    got = beeline(url, QUERIES[name])
    assert got == spark_rows(spark, QUERIES[name])
    assert got   # each query has rows: the comparison is not between two empty answers


def test_the_answers_are_the_tables_contents(sql_home):
    _, url, _, _ = sql_home
    assert beeline(url, QUERIES["join"]) == [["t1", "10.00", "0.91", "3"], ["t3", "7.25", "0.02", "3"]]
    assert beeline(url, QUERIES["time_travel"]) == [["3", "37.75"]]
    assert beeline(url, "SELECT count(*) FROM silver.transactions") == [["5"]]


def test_status_start_twice_and_stop(sql_home):
    _, url, env, conf = sql_home

    def job(action):
        out = subprocess.run([sys.executable, "-m", "jobs.sql_server", action, *conf], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        import json

        return json.loads(out.stdout)

    assert job("status")["running"] is True
    assert job("start")["already_running"] is True
    assert job("stop") == {"stopped": True}
    assert job("status")["running"] is False
    assert job("stop") == {"stopped": False}
