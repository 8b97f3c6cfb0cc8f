"""Monitoring and retraining end to end on data that really drifts, and on data that does not,
with the real broker, Delta tables and MLflow registry.

One world (300 customers) runs for 50 hours of event time in three stretches:
- 30 h of history backfilled into bronze (24 h of it warm up the 24-hour features); the first
  champion learns from its last 6 h;
- 6 h more of the same world through Kafka: the monitor must say ``ok`` and the scheduled
  retraining (``--when drifting``) must skip, so nothing is promoted;
- 14 h through Kafka with drift switched on (amounts doubled, ATM cash-out fraud): the monitor
  must flag the amount features, and the retraining it triggers must promote a challenger that is
  better on the drifted rows, which the decision path's champion loader then serves.
The stretches run in order in one module (the no-drift stretch first, as a quiet week would come
before a change).
"""
from __future__ import annotations

import argparse
import time

import pytest
from pyspark.sql import functions as F

from tests.conftest import ML_GRID

pytestmark = pytest.mark.kafka

# Event time ends an hour before now: the Kafka stretches are replayed with each record's
# timestamp set to its event time (silver's lateness rule compares the two), inside the topics'
# retention.
START = (time.time() // 3600 - 51) * 3600
RATE = 0.25                     # messages per second of event time (transactions, labels, user events)
HOURS = {"history": 30, "quiet": 6, "drifted": 14}
AMOUNT_FEATURES = {f"amount_{k}_{w}" for k in ("sum", "mean", "max") for w in ("10m", "1h", "24h")}


def _produce(spark, cfg, mode: str, seed: int, start: float, hours: float, drift: str | None = None) -> None:
    from jobs import produce

    argv = ["--mode", mode, "--count", str(int(RATE * hours * 3600)), "--rate", "max", "--sim-rate", str(RATE),
            "--seed", str(seed), "--world-seed", "61", "--customers", "300", "--fraud-rate", "0.05",
            "--streams", "transactions,tx_labels,user_events", "--mix", "transactions=0.8,user_events=0.2",
            "--start", str(start), "--kafka-time", "event", "--quiet"]
    if drift:
        argv += ["--drift", drift]
    result = produce.run(spark, cfg, produce.build_parser().parse_args(argv))
    assert result["failed"] == 0


def _pipeline(spark, cfg, layers: str) -> None:
    from jobs import stream

    stream.run(spark, cfg, argparse.Namespace(streams="transactions,tx_labels,user_events", layers=layers,
                                              available_now=True, timeout=None))


def _iso(epoch: float) -> str:
    """The monitor's window bounds are naive UTC datetimes as text; compare in the same form."""
    import datetime as dt

    return str(dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(tzinfo=None))


def _monitor_rows(spark, cfg):
    from lakehouse.catalog import Catalog

    return spark.read.format("delta").load(Catalog(cfg).spec("ops.model_monitor").location)


@pytest.fixture(scope="module")
def world(spark, cfg, kafka, overrides, tmp_path_factory):
    """The home, with the history in gold and a first champion trained on its last 6 hours."""
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from ml.retrain import retrain_use_case

    home = tmp_path_factory.mktemp("drift_home")
    dcfg = load_config("local", [*overrides, *ML_GRID, "security.pan_hmac_key_missing=generate", "kafka.topic_prefix=drift_",
                                 "monitor.recent_hours=6", "monitor.min_frauds=15",
                                 # This world is 50 hours long: counts over 7 and 30 days (a
                                 # device's uses and age too) and the risk shares built from them
                                 # still grow through it, so those groups would drift by
                                 # construction, not by the world changing.
                                 "ml.features.fraud.drop_groups=[customer_days, device, merchant_risk, terminal_risk]"],
                           home=home)
    try:
        Catalog(dcfg).register(spark)
        _produce(spark, dcfg, "bronze", 61, START, HOURS["history"])
        _pipeline(spark, dcfg, "silver,gold")
        first = retrain_use_case(spark, dcfg, "fraud", "always", window_hours=6)
    finally:
        Catalog(cfg).register(spark)
    assert first["promoted"] and first["reason"] == "no champion yet"
    return dcfg, first


def test_without_drift_the_monitor_stays_ok_and_nothing_is_promoted(spark, cfg, world):
    from lakehouse.catalog import Catalog
    from ml import registry
    from ml.retrain import retrain_use_case

    dcfg, first = world
    try:
        Catalog(dcfg).register(spark)
        _produce(spark, dcfg, "kafka", 62, START + HOURS["history"] * 3600, HOURS["quiet"])
        _pipeline(spark, dcfg, "bronze,silver,gold")
        scheduled = retrain_use_case(spark, dcfg, "fraud", "drifting")
        rows = _monitor_rows(spark, dcfg).collect()
    finally:
        Catalog(cfg).register(spark)
    monitored = scheduled["monitor"]
    # The monitor judged (almost only) the quiet stretch, not the champion's own training rows: a
    # count of messages covers a little less event time than RATE says (fraud bursts add
    # transactions), so the recent window reaches a few minutes back into the history.
    assert monitored["window"][0] >= _iso(START + (HOURS["history"] - 1) * 3600) and monitored["recent_rows"] > 1500
    assert monitored["verdict"] == "ok", monitored
    assert monitored["drifting"] == [] and monitored["version"] == first["challenger"]
    assert not scheduled["retrained"] and not scheduled["promoted"] and "is ok" in scheduled["reason"]
    client = registry.connect(dcfg)
    versions = client.search_model_versions("name='finlake-fraud'")
    assert [str(v.version) for v in versions] == [first["challenger"]]          # nothing was even trained
    assert str(registry.alias_version(client, "finlake-fraud", registry.CHAMPION).version) == first["challenger"]
    skipped = [r for r in rows if r.check == "retrain"]
    assert [(r.status, r.verdict) for r in skipped] == [("skipped", "ok")] and "drifting" in skipped[0].details["reason"]


def test_drift_is_flagged_and_the_retrained_challenger_is_promoted_and_served(spark, cfg, world):
    import mlflow

    from lakehouse.catalog import Catalog
    from ml import registry
    from ml.datasets import USE_CASES
    from ml.retrain import retrain_use_case
    from ml.scoring import Champion

    dcfg, first = world
    try:
        Catalog(dcfg).register(spark)
        serving = Champion(dcfg, USE_CASES["fraud"])       # what the decision path holds while it runs
        before = serving.current().version
        _produce(spark, dcfg, "kafka", 63, START + (HOURS["history"] + HOURS["quiet"]) * 3600, HOURS["drifted"],
                 drift="amounts,atm_cashout")
        _pipeline(spark, dcfg, "bronze,silver,gold")
        r = retrain_use_case(spark, dcfg, "fraud", "drifting", window_hours=12)
        rows = _monitor_rows(spark, dcfg).where(F.col("model_version") == r["challenger"]).collect()
        after = serving.current().version
    finally:
        Catalog(cfg).register(spark)
    monitored = r["monitor"]
    assert monitored["window"][0] >= _iso(START + (HOURS["history"] + HOURS["quiet"]) * 3600) and monitored["recent_rows"] > 1500
    assert monitored["verdict"] in ("drifting", "degraded") and monitored["version"] == before == first["challenger"]
    assert AMOUNT_FEATURES & set(monitored["drifting"]), monitored["drifting"]
    assert r["retrained"] and r["promoted"], r["reason"]
    training = r["training"]
    assert training["promotion"]["challenger_value"] > training["promotion"]["champion_value"]
    assert r["test"] == "DeLong" and r["p_value"] < float(dcfg["ml.promotion.alpha"])
    assert after == r["challenger"] != before
    client = registry.connect(dcfg)
    assert str(registry.alias_version(client, "finlake-fraud", registry.CHAMPION).version) == r["challenger"]
    run = mlflow.get_run(training["model"]["run_id"])
    assert run.data.tags["promoted"] == "true" and run.data.tags["retrain_trigger"].startswith("monitor verdict")
    promotion = [x for x in rows if x.check == "promotion"]
    assert [x.status for x in promotion] == ["promoted"] and promotion[0].verdict == monitored["verdict"]
    assert promotion[0].value == pytest.approx(r["p_value"]) and promotion[0].threshold == pytest.approx(0.05)
