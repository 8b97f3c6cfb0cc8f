"""Live metrics: the Prometheus endpoint a stream job opens moves with the data it processes."""
from __future__ import annotations

import argparse
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import functions as F

from lakehouse import observe
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.streaming import kafka_query
from lakehouse.kafka.clients import ensure_topics, topic_name

from conftest import free_port
from test_pipeline import live_events, send


def test_kafka_lag_is_latest_minus_end_offset_per_topic():
    source = SimpleNamespace(latestOffset='{"a":{"0":100,"1":50},"b":{"0":7}}', endOffset='{"a":{"0":90,"1":50},"b":{"0":7}}')
    assert observe.kafka_lag(source) == {"a": 10, "b": 0}
    assert observe.kafka_lag(SimpleNamespace(latestOffset=None, endOffset='{"a":{"0":1}}')) == {}
    assert observe.kafka_lag(SimpleNamespace(latestOffset="not json", endOffset="{}")) == {}


def test_quarantine_and_decision_metrics_count_what_they_are_given():
    def value(name, **labels):
        for family in text_string_to_metric_families(_text()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0

    before = value("finlake_quarantine_reasons_total", table="unit", reason="malformed_json")
    observe.quarantined("unit", 3, ["malformed_json", "malformed_json", "late_event", "malformed_json"])
    assert value("finlake_quarantine_reasons_total", table="unit", reason="malformed_json") == before + 3
    observe.decisions("unit", ["alert", "approve", "approve"], [40.0, 900.0, None])
    assert value("finlake_decisions_total", use_case="unit", decision="approve") >= 2
    assert value("finlake_decision_latency_seconds_bucket", use_case="unit", le="0.05") >= 1
    assert value("finlake_decision_latency_seconds_count", use_case="unit") >= 2


def _text(url: str | None = None) -> str:
    if url is None:
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(REGISTRY).decode()
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def _samples(url: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(_text(url)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.kafka
def test_the_endpoint_moves_with_the_data(kafka, spark, cfg, overrides, tmp_path):
    from jobs import stream

    port = free_port()
    mcfg = load_config("local", [*overrides, f"metrics.ports.stream={port}", "kafka.topic_prefix=obs_",
                                 "security.pan_hmac_key_missing=generate"], home=tmp_path / "obs")
    ensure_topics(mcfg)
    url = observe.serve(mcfg, "stream")
    assert url == f"http://127.0.0.1:{port}/metrics"
    before = _samples(url)
    txs = [e.event for e in live_events(7, ["transactions"], 40)["transactions"]]
    bad = ['{"event_id": "x1", "amount": ', dict(txs[0], event_id="x2", amount="lots"), {k: v for k, v in txs[1].items() if k != "card_pan"} | {"event_id": "x3"},
           dict(txs[2], amount="1.23")]   # malformed, mistyped, missing the card, a conflicting replay of txs[2]
    sent = send(mcfg, [("transactions", "card", t) for t in txs] + [("transactions", "card", b) for b in bad])
    Catalog(mcfg).register(spark)
    try:
        result = stream.run(spark, mcfg, argparse.Namespace(streams="transactions", layers="bronze,silver",
                                                             available_now=True, timeout=None))
        quarantine = spark.read.format("delta").load(Catalog(mcfg).spec("quarantine.transactions").location)
        rows = quarantine.count()
        reasons = {r["r"]: r["n"] for r in quarantine.select(F.explode("reasons").alias("r")).groupBy("r").agg(F.count("*").alias("n")).collect()}
    finally:
        Catalog(cfg).register(spark)
    after = _samples(url)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert rows == 4 and result["metrics_endpoint"] == url
    assert delta("finlake_quarantined_rows_total", table="silver.transactions") == rows
    assert {r: delta("finlake_quarantine_reasons_total", table="silver.transactions", reason=r) for r in reasons} == reasons
    bronze_query = kafka_query(mcfg, "transactions")   # the query reading the topic: "ingest" by default
    assert delta("finlake_query_input_rows_total", query=bronze_query) == sent
    assert delta("finlake_query_batches_total", query=bronze_query) >= 1
    assert after[("finlake_kafka_lag_records", (("query", bronze_query), ("topic", topic_name(mcfg, "transactions"))))] == 0
    assert ("finlake_query_last_batch_seconds", (("query", bronze_query),)) in after


def test_scrape_config_and_dashboard_match_the_code(cfg):
    import json
    import re

    import yaml
    from prometheus_client import REGISTRY

    from conftest import ROOT
    from lakehouse.config import load_config

    base = load_config("local", home=cfg.home)   # the shipped ports, not the tests' overrides
    prom = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    targets = {c["job_name"]: c["static_configs"][0]["targets"][0] for c in prom["scrape_configs"]}
    assert targets == {f"finlake-{job}": f"{base['metrics.host']}:{base[f'metrics.ports.{job}']}" for job in ("stream", "decide", "score")}
    # every series a panel asks for is one finlake exports
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exported = {f.name + x for f in REGISTRY.collect() for x in suffixes.get(f.type, ())}
    dashboard = json.loads((ROOT / "monitoring" / "grafana" / "dashboards" / "finlake.json").read_text())
    asked = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"\bfinlake_[a-z_]+", t["expr"])}
    assert asked and asked <= exported, asked - exported
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"finlake-prometheus"}
