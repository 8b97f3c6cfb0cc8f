"""The whole pipeline against the real broker: a known mix lands in exact counts, a SIGKILL
mid-stream loses and doubles nothing, and no clear PAN is stored anywhere."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.generators.base import iso_ms
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.kafka.clients import client_config, ensure_topics, topic_name

ROOT = Path(__file__).resolve().parent.parent


def pipeline_env(job_env, home):
    return dict(job_env, FINLAKE_HOME=str(home))


def send(cfg, messages):
    """messages: (topic, key, value) with value a dict or raw str; returns the count sent."""
    producer = Producer(client_config(cfg, **{"enable.idempotence": True}))
    for topic, key, value in messages:
        body = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        producer.produce(topic_name(cfg, topic), key=key, value=body.encode())
    assert producer.flush(60) == 0
    return len(messages)


def table(spark, cfg, name):
    return spark.read.format("delta").load(Catalog(cfg).spec(name).location)


def run_stream(args, env, timeout=900):
    out = subprocess.run([sys.executable, "jobs/stream.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("FINLAKE_RESULT ")][0].split(" ", 1)[1])


def live_events(seed, topics, n):
    stream = generate(GeneratorConfig(seed=seed, start=datetime.now(timezone.utc).timestamp() - 120, rate=200.0,
                                      streams=tuple(topics), label_delay_s=1.0))
    out = {t: [] for t in topics}
    for e in stream:
        if e.topic in out and len(out[e.topic]) < n:
            out[e.topic].append(e)
        if all(len(v) >= n for v in out.values()):
            return out


@pytest.mark.kafka
@pytest.mark.parametrize("ingest", ["one_query", "bronze_apart", "per_layer"])
def test_known_mix_lands_in_exact_counts(kafka, spark, overrides, job_env, tmp_path, ingest):
    home = tmp_path / "it"
    prefix = f"it_{ingest}_"
    cfg = load_config("local", overrides + [f"kafka.topic_prefix={prefix}", f"pipeline.ingest={ingest}"], home=home)
    ensure_topics(cfg)
    ev = live_events(31, ["transactions", "user_events", "market_ticks", "tx_labels"], 20)
    txs = [e.event for e in ev["transactions"]]
    pans = {t["card_pan"] for t in txs}
    late_time = iso_ms(datetime.now(timezone.utc).timestamp() - 7200)
    bad = {
        "malformed-1": ("transactions", "k", '{"event_id":"malformed-1","card_pan":"' + txs[0]["card_pan"] + '","amount":'),
        "missing": ("transactions", "k", {k: v for k, v in dict(txs[1], event_id="missing").items() if k != "amount"}),
        "mistyped": ("transactions", "k", dict(txs[2], event_id="mistyped", amount="n/a")),
        "late": ("transactions", "k", dict(txs[3], event_id="late", event_time=late_time)),
        "outofrange": ("transactions", "k", dict(txs[4], event_id="outofrange", amount="-5.00")),
    }
    messages = [("transactions", "card", t) for t in txs]
    messages += [("transactions", "card", txs[i]) for i in (5, 6, 7)]                       # duplicates
    messages += [("transactions", "card", dict(txs[8], event_id="evolved", x_schema_v2=1))]  # unknown field: accepted
    messages += list(bad.values())
    messages += [("user_events", e.key, e.event) for e in ev["user_events"]]
    messages += [("market_ticks", e.key, e.event) for e in ev["market_ticks"]] + [("market_ticks", "AAPL", "not json")]
    messages += [("tx_labels", e.key, e.event) for e in ev["tx_labels"]]
    send(cfg, messages)

    result = run_stream(["--available-now", "--conf", f"kafka.topic_prefix={prefix}", "--conf", f"pipeline.ingest={ingest}"],
                        pipeline_env(job_env, home))
    counts = result["tables"]
    assert {k: v for k, v in counts.items() if not k.endswith(("bureau_updates", "loan_applications"))} == {
        "bronze.transactions": 29, "silver.transactions": 21, "quarantine.transactions": 5,
        "bronze.user_events": 20, "silver.user_events": 20, "quarantine.user_events": 0,
        "bronze.market_ticks": 21, "silver.market_ticks": 20, "quarantine.market_ticks": 1,
        "bronze.tx_labels": 20, "silver.tx_labels": 20, "quarantine.tx_labels": 0,
        "gold.card_features": 21, "gold.market_features": 20,
    }
    silver_ids = {r.event_id for r in table(spark, cfg, "silver.transactions").select("event_id").collect()}
    assert silver_ids == {t["event_id"] for t in txs} | {"evolved"}
    quarantined = {}
    for r in table(spark, cfg, "quarantine.transactions").collect():
        quarantined[json.loads(r.payload)["event_id"] if r.payload.endswith("}") else "malformed-1"] = r.reasons
    nulls = [f"not_be_null:{c}" for c in ("event_id", "event_time", "card_token", "card_last4", "customer_id", "merchant_id",
                                          "merchant_country", "mcc", "amount", "currency", "channel")]
    assert quarantined == {
        "malformed-1": ["malformed_json", *nulls], "missing": ["missing_field:amount", "not_be_null:amount"],
        "mistyped": ["mistyped_field:amount", "not_be_null:amount"], "late": ["late_event"],
        "outofrange": ["be_between:amount"]}
    dq = table(spark, cfg, "ops.dq_results").where("suite = 'finlake.pipeline' AND table = 'silver.transactions'")
    totals = {r.expectation: r.n for r in dq.groupBy("expectation").agg(F.sum("unexpected_count").alias("n")).collect()}
    assert (totals["rows"], totals["quarantined"], totals["duplicates_dropped"], totals["late_events"],
            totals["malformed_json"], totals["unknown_fields"]) == (29, 5, 3, 1, 1, 1)
    gold_ids = {r.event_id for r in table(spark, cfg, "gold.card_features").select("event_id").collect()}
    assert gold_ids == silver_ids
    metrics = table(spark, cfg, "ops.stream_metrics").groupBy("query_name").agg(F.sum("num_input_rows").alias("n"))
    read = {r.query_name: r.n for r in metrics.collect()}
    expected_reads = {"one_query": {"ingest": 90}, "bronze_apart": {"bronze": 90, "ingest": 90},
                      "per_layer": {"bronze_transactions": 29}}[ingest]
    assert {q: read[q] for q in expected_reads} == expected_reads

    # No clear PAN in any table, checkpoint, log or state file the pipeline wrote.
    for name in Catalog(cfg).names():
        spec = Catalog(cfg).spec(name)
        if spec.format == "delta" and Path(spec.location, "_delta_log").exists():
            text_cols = [f.name for f in table(spark, cfg, name).schema.fields if f.dataType.simpleString() == "string"]
            rows = table(spark, cfg, name).select(*text_cols).collect()
            blob = "\n".join(str(v) for r in rows for v in r)
            assert not [p for p in pans if p in blob], name
    for f in home.rglob("*"):
        if f.is_file() and "warehouse" not in f.parts and "kafka" not in f.parts:
            data = f.read_bytes()
            assert not [p for p in pans if p.encode() in data], f


@pytest.mark.kafka
def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(kafka, spark, overrides, job_env, tmp_path):
    home = tmp_path / "crash"
    cfg = load_config("local", overrides + ["kafka.topic_prefix=crash_"], home=home)
    ensure_topics(cfg)
    txs = [e.event for e in live_events(41, ["transactions"], 3000)["transactions"]]
    sent = send(cfg, [("transactions", "card", t) for t in txs] + [("transactions", "card", t) for t in txs[::10]])
    env = pipeline_env(job_env, home)
    args = ["--streams", "transactions", "--layers", "bronze,silver", "--conf", "kafka.topic_prefix=crash_",
            "--conf", "pipeline.max_offsets_per_trigger=150", "--conf", "pipeline.trigger_interval=1 second"]
    proc = subprocess.Popen([sys.executable, "jobs/stream.py", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    silver = Catalog(cfg).spec("silver.transactions").location
    deadline = time.monotonic() + 300
    landed = 0
    while time.monotonic() < deadline and landed == 0:
        time.sleep(2)
        if any(Path(silver, "_delta_log").glob("*.json")):   # a commit, not only the log folder
            landed = spark.read.format("delta").load(silver).count()
    assert landed > 0, "the pipeline never wrote silver"
    os.killpg(proc.pid, signal.SIGKILL)   # the job and its JVM, mid-stream
    proc.wait(30)
    assert landed < len(txs), "the stream finished before it could be killed; send more"

    result = run_stream(["--available-now", *args], env)
    rows = spark.read.format("delta").load(silver).select("event_id")
    ids = Counter(r.event_id for r in rows.collect())
    assert set(ids) == {t["event_id"] for t in txs}
    assert max(ids.values()) == 1
    assert result["tables"]["bronze.transactions"] == sent
    assert result["tables"]["quarantine.transactions"] == 0
