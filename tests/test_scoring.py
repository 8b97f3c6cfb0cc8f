"""Streaming scoring against the real broker, Delta tables and MLflow registry: exact scores,
alerts read back from Kafka, a champion hot swap mid-stream, and a SIGKILL mid-batch."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from tests.conftest import ROOT

pytestmark = pytest.mark.kafka


def moved(cfg, folder, tables):
    """``cfg`` with ``tables`` (and their checkpoints) relocated under ``folder``."""
    data = copy.deepcopy(dict(cfg.data))
    for t in tables:
        entry = dict(data["tables"][t] or {})
        entry["location"] = str(folder / "tables" / t)
        entry["checkpoint"] = str(folder / "checkpoints" / t)
        data["tables"][t] = entry
    return dataclasses.replace(cfg, data=data)


def read(spark, cfg, table):
    from lakehouse.catalog import Catalog

    return spark.read.format("delta").load(Catalog(cfg).spec(table).location)


def consume(cfg, topic: str, idle_s: float = 6.0) -> list[dict]:
    from confluent_kafka import Consumer

    from lakehouse.kafka.clients import client_config, topic_name

    c = Consumer(client_config(cfg, **{"group.id": f"t-{time.time_ns()}", "auto.offset.reset": "earliest"}))
    c.subscribe([topic_name(cfg, topic)])
    out, last = [], time.monotonic()
    while time.monotonic() - last < idle_s:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append({"key": m.key().decode(), **json.loads(m.value())})
        last = time.monotonic()
    c.close()
    return out


def test_streaming_scores_equal_the_booster_and_alerts_match(kafka, spark, ml_cfg, fraud_result, tmp_path):
    from lakehouse.kafka.clients import ensure_topics
    from ml import registry
    from ml.scoring import start_scoring

    cfg = moved(ml_cfg, tmp_path, ["gold.fraud_scores", "quarantine.scoring"])
    ensure_topics(cfg)
    query, fn = start_scoring(spark, cfg, "fraud", available_now=True)
    query.awaitTermination()
    assert query.exception() is None
    features = json.loads(registry.connect(cfg).get_model_version("finlake-fraud", "1").tags["features"])
    gold = read(spark, cfg, "gold.card_features").toPandas()
    booster = registry.load_booster("finlake-fraud", "1")
    calibration = registry.load_calibration(registry.connect(cfg), "finlake-fraud", "1")
    assert calibration.method == "isotonic"   # the version serves calibrated probabilities
    gold["score"] = calibration.apply(booster.inplace_predict(gold[features].astype("float64")))
    scores = read(spark, cfg, "gold.fraud_scores")
    quarantined = read(spark, cfg, "quarantine.scoring")
    # Every gold row is scored or refused by the gate, once.
    assert scores.count() + quarantined.count() == len(gold) and scores.select("event_id").distinct().count() == scores.count()
    refused = {json.loads(p)["event_id"] for p in quarantined.select("payload").toPandas()["payload"]}
    expected = spark.createDataFrame(gold.loc[~gold["event_id"].isin(refused), ["event_id", "score"]])
    assertDataFrameEqual(scores.select("event_id", "score"), expected)  # exactly: same booster and map, same float64 rows
    assert {r[0] for r in scores.select("model_version").distinct().collect()} == {"1"}
    # Alerts by expected loss: calibrated probability x amount at or above the version's threshold.
    threshold = float(fraud_result["model"]["threshold"])
    assert fraud_result["model"]["threshold_objective"] == "expected_loss"
    kept = gold.loc[~gold["event_id"].isin(refused)]
    alerted = scores.where("decision = 'alert'").toPandas()
    assert len(alerted) == int((kept["score"] * kept["amount"].astype(float) >= threshold).sum()) > 0
    alerts = consume(cfg, "fraud_alerts")
    assert {a["key"] for a in alerts} == set(alerted["event_id"])
    one = alerts[0]
    assert one["event_id"] == one["key"] and one["model_version"] == "1" and len(one["top_features"]) == 3
    assert one["top_features"][0]["contribution"] >= one["top_features"][-1]["contribution"]
    assert "card_pan" not in json.dumps(one) and all(len(a["card_token"]) == 64 for a in alerts)
    latency = read(spark, cfg, "ops.stream_metrics").where("query_name = 'score_fraud' AND metrics['latency_p99_ms'] IS NOT NULL")
    row = latency.orderBy(F.col("timestamp").desc()).first()
    assert 0 < row.metrics["latency_median_ms"] <= row.metrics["latency_p99_ms"]


def test_the_scoring_gate_quarantines_bad_feature_rows_with_reasons(spark, ml_cfg, fraud_result, tmp_path):
    from ml.scoring import ScoreBatch

    cfg = moved(ml_cfg, tmp_path, ["gold.fraud_scores", "quarantine.scoring", "ops.dq_results", "ops.stream_metrics"])
    gold = read(spark, ml_cfg, "gold.card_features").orderBy("event_id").limit(20)
    broken = gold.withColumn("amount", F.when(F.col("event_id") == gold.first()["event_id"], F.lit(-5).cast(gold.schema["amount"].dataType))
                             .otherwise(F.col("amount")))
    fn = ScoreBatch(cfg, "fraud", str(tmp_path / "ckpt"), alerts=False)
    fn(broken, 0)
    fn(broken, 0)  # a replayed batch writes nothing twice
    q = read(spark, cfg, "quarantine.scoring").collect()
    assert [(r.source_table, r.reasons, json.loads(r.payload)["event_id"]) for r in q] == [
        ("gold.fraud_scores", ["be_between:amount"], gold.first()["event_id"])]
    assert read(spark, cfg, "gold.fraud_scores").count() == 19
    dq = read(spark, cfg, "ops.dq_results").where("expectation = 'be_between:amount'").collect()
    assert [(r.suite, r.success, r.unexpected_count) for r in dq] == [("finlake.gold.score_fraud", "false", 1)]


def test_champion_hot_swap_mid_stream(spark, ml_cfg, fraud_result, tmp_path):
    import mlflow
    import xgboost as xgb

    from ml import registry
    from ml.scoring import start_scoring

    cfg = moved(ml_cfg, tmp_path, ["gold.card_features", "gold.fraud_scores", "quarantine.scoring"])
    client = registry.connect(cfg)
    gold = read(spark, ml_cfg, "gold.card_features").orderBy("event_time").limit(600).cache()
    first, second = gold.limit(300), gold.join(gold.limit(300), "event_id", "left_anti")
    location = str(tmp_path / "tables" / "gold.card_features")
    first.write.format("delta").save(location)
    query, fn = start_scoring(spark, cfg, "fraud", processing_time="1 second", alerts=False)
    try:
        deadline = time.monotonic() + 120
        while sum(b["scored"] for b in fn.history) < 300 and time.monotonic() < deadline:
            time.sleep(0.5)
        # A new version: a booster on the same features, moved to champion while the query runs.
        features = json.loads(client.get_model_version("finlake-fraud", "1").tags["features"])
        pdf = gold.toPandas()
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(pdf[features].astype("float64"), label=np.arange(len(pdf)) % 2), 5)
        with mlflow.start_run(experiment_id=registry.experiment(cfg, client, "fraud")):
            v2 = registry.log_booster(client, booster, "finlake-fraud", pdf[features].head(3).astype("float64"),
                                      booster.inplace_predict(pdf[features].head(3).astype("float64")),
                                      {"features": json.dumps(features), "threshold": "0.5", "classes": "[]"})
        client.set_registered_model_alias("finlake-fraud", "champion", v2)
        second.write.format("delta").mode("append").save(location)
        deadline = time.monotonic() + 120
        while sum(b["scored"] for b in fn.history) < 600 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        query.stop()
        client.set_registered_model_alias("finlake-fraud", "champion", "1")
    assert query.exception() is None
    scores = read(spark, cfg, "gold.fraud_scores")
    assert scores.count() == scores.select("event_id").distinct().count() == 600
    by_version = {r["model_version"]: {x.event_id for x in scores.where(F.col("model_version") == r["model_version"]).select("event_id").collect()}
                  for r in scores.select("model_version").distinct().collect()}
    assert by_version == {"1": {r.event_id for r in first.select("event_id").collect()},
                          v2: {r.event_id for r in second.select("event_id").collect()}}
    got = scores.where(F.col("model_version") == v2).select("event_id", "score").toPandas().sort_values("event_id")
    exp = second.toPandas().sort_values("event_id")
    assert np.array_equal(got["score"].to_numpy(), booster.inplace_predict(exp[features].astype("float64")))


def test_sigkill_mid_batch_then_restart_scores_each_event_once(spark, ml_cfg, fraud_result, job_env):
    from lakehouse.catalog import Catalog

    env = dict(job_env, FINLAKE_HOME=str(ml_cfg.home), FINLAKE_TOPIC_PREFIX="ml_")
    spec = Catalog(ml_cfg).spec("gold.fraud_scores")
    args = [sys.executable, "jobs/score.py", "--use-case", "fraud", "--no-alerts", *sum((["--conf", o] for o in
            ["spark.shuffle_partitions=2", "spark.driver_memory=1g", "security.pan_hmac_key_missing=generate"]), [])]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    log = os.path.join(spec.location, "_delta_log", "00000000000000000000.json")
    committed = os.path.join(spec.checkpoint, "commits", "0")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not os.path.exists(log) and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the scores are in Delta; the checkpoint may not say so yet
    proc.wait()
    assert os.path.exists(log), proc.stderr.read().decode()[-2000:]
    killed_before_checkpoint = not os.path.exists(committed)
    out = subprocess.run([*args, "--available-now"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    scores = read(spark, ml_cfg, "gold.fraud_scores")
    gold_ids = read(spark, ml_cfg, "gold.card_features").select("event_id")
    refused = read(spark, ml_cfg, "quarantine.scoring").count()
    assert scores.count() == scores.select("event_id").distinct().count()
    assert scores.select("event_id").union(gold_ids).distinct().count() == gold_ids.count() == scores.count() + refused
    print("killed between the Delta commit and the checkpoint commit:", killed_before_checkpoint)
