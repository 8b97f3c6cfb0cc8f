"""Tables by name over real Delta tables: write, read, time travel, and a second process."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse.catalog import Catalog
from lakehouse.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = ("0 AS kafka_partition", "CAST(0 AS LONG) AS kafka_offset", "current_timestamp() AS kafka_timestamp",
              "current_timestamp() AS silver_time")


def test_catalog_registers_every_declared_table(spark, cfg):
    catalog = Catalog(cfg)
    registered = {f"{r.namespace}.{r.tableName}" for db in ("bronze", "silver", "quarantine", "ops", "truth", "gold")
                  for r in spark.sql(f"SHOW TABLES IN {db}").collect()}
    declared_with_schema = {s.name for s in catalog if s.schema is not None}
    assert declared_with_schema <= registered
    # The gold feature views' columns follow the config (the user's declared features): their
    # writers define them. Every other table's schema is declared in code.
    assert {s.name for s in catalog if s.schema is None} == {"gold.card_features", "gold.market_features", "gold.borrower_features"}
    spec = catalog.spec("silver.transactions")
    assert (spec.location, spec.checkpoint) == (f"{cfg['paths.warehouse']}/silver/transactions",
                                                f"{cfg['paths.checkpoints']}/silver/transactions")
    assert "card_pan" not in spark.table("silver.transactions").columns


def test_unknown_table_is_a_clear_error(cfg):
    with pytest.raises(ConfigError, match=r"unknown table 'silver.transaction' \(did you mean 'silver.transactions'\?\)"):
        Catalog(cfg).spec("silver.transaction")


def test_delta_write_read_and_time_travel_by_name(spark):
    rows_v1 = [("tx-1", "2026-01-01T00:00:00.000Z", True), ("tx-2", "2026-01-01T00:00:01.000Z", False)]
    df = spark.createDataFrame(rows_v1, "event_id string, labelled_at string, is_fraud boolean").selectExpr(
        "event_id", "is_fraud", "CAST(labelled_at AS TIMESTAMP) AS labelled_at", *PROVENANCE)
    df.write.format("delta").mode("append").saveAsTable("silver.tx_labels")
    spark.sql("DELETE FROM silver.tx_labels WHERE event_id = 'tx-2'")
    latest = spark.table("silver.tx_labels").select("event_id", "is_fraud")
    assertDataFrameEqual(latest, spark.createDataFrame([("tx-1", True)], "event_id string, is_fraud boolean"))
    versions = [r.version for r in spark.sql("DESCRIBE HISTORY silver.tx_labels").collect()]
    assert sorted(versions) == [0, 1, 2]  # create, append, delete
    before_delete = spark.sql("SELECT event_id, is_fraud FROM silver.tx_labels VERSION AS OF 1")
    assertDataFrameEqual(before_delete, spark.createDataFrame([("tx-1", True), ("tx-2", False)], "event_id string, is_fraud boolean"))


def test_second_process_reads_tables_by_name_with_sql_job(spark, job_env):
    spark.createDataFrame([("m-1", "2026-02-01 00:00:00", "AAA", 10.5, 3, 10.4, 10.6, 5, 6, "X")],
                          "event_id string, t string, symbol string, price double, size long, bid double, ask double, bid_size long, ask_size long, venue string") \
        .selectExpr("event_id", "CAST(t AS TIMESTAMP) AS event_time", "symbol", "price", "size", "bid", "ask", "bid_size", "ask_size", "venue",
                    *PROVENANCE) \
        .write.format("delta").mode("append").saveAsTable("silver.market_ticks")
    out = subprocess.run([sys.executable, str(ROOT / "jobs" / "sql.py"), "--format", "json",
                          "SELECT symbol, price FROM silver.market_ticks; SELECT count(*) AS n FROM silver.market_ticks VERSION AS OF 0"],
                         env=job_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert lines == [{"symbol": "AAA", "price": 10.5}, {"n": 0}]


def test_sql_job_reports_bad_sql_in_one_line(job_env):
    out = subprocess.run([sys.executable, str(ROOT / "jobs" / "sql.py"), "SELECT * FROM silver.nope"],
                         env=job_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    err = [l for l in out.stderr.splitlines() if l.startswith("finlake: error:")]
    assert err == ["finlake: error: SQL failed: [TABLE_OR_VIEW_NOT_FOUND] The table or view `silver`.`nope` cannot be found. "
                   "Verify the spelling and correctness of the schema and catalog."], out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "SQLQueryContextLogger" not in out.stderr


def test_split_statements_respects_quotes_and_comments():
    from jobs.sql import split_statements

    assert split_statements("SELECT ';' AS a; -- c;\nSELECT 2;\n\n") == ["SELECT ';' AS a", "SELECT 2"]


def test_a_stored_table_that_drifted_from_its_schema_is_one_clear_error(spark, cfg, tmp_path, overrides):
    from lakehouse.config import load_config

    drift = load_config("local", overrides, home=tmp_path)
    location = Catalog(drift).spec("silver.tx_labels").location
    spark.createDataFrame([("x", True)], "event_id string, is_fraud boolean").write.format("delta").save(location)
    with pytest.raises(ConfigError, match=r"table silver.tx_labels at .* does not match its declared schema 'tx_labels' "
                                          r"\(missing: extras, kafka_offset, kafka_partition, kafka_timestamp, labelled_at, silver_time; "
                                          r"unexpected: -; retyped: -\); migrate it, or remove it \(make clean\) to start over"):
        Catalog(drift).register(spark, ["silver.tx_labels"])


def test_registering_another_home_points_the_names_there_and_back(spark, cfg, tmp_path, overrides):
    from lakehouse.config import load_config

    other = Catalog(load_config("local", overrides, home=tmp_path))
    row = spark.createDataFrame([("only-in-other", True)], "event_id string, is_fraud boolean").selectExpr(
        "event_id", "is_fraud", "current_timestamp() AS labelled_at", *PROVENANCE)
    before = spark.table("silver.tx_labels").count()
    try:
        other.register(spark, ["silver.tx_labels"])
        row.write.format("delta").mode("append").saveAsTable("silver.tx_labels")
        assert [r.event_id for r in spark.table("silver.tx_labels").collect()] == ["only-in-other"]
        assert spark.read.format("delta").load(other.spec("silver.tx_labels").location).count() == 1
    finally:
        Catalog(cfg).register(spark, ["silver.tx_labels"])
    assert spark.table("silver.tx_labels").where("event_id = 'only-in-other'").count() == 0
    assert spark.table("silver.tx_labels").count() == before
