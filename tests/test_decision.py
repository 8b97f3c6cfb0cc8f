"""The decision path's per-key state against gold: the same events, arriving in batches (late,
out of order and duplicated copies included), give the same features as gold's batch transform
over the events that had arrived by each batch. Whole DataFrames, exact counts, 1e-9 relative
for floats."""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from decimal import Decimal

import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from serving.decision import borrower_features_state, fraud_features, jvm_features, market_features_state
from lakehouse.generators.cards import SCENARIOS
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.gold import (BORROWER_FEATURES, CARD_STATE_FEATURES, MARKET_FEATURES, RISK_FEATURE_GROUPS, borrower_features,
                            card_features, market_features)

TX = ("event_id string, event_time timestamp, card_token string, customer_id string, merchant_id string, terminal_id string, "
      "merchant_country string, mcc string, amount decimal(18,2), channel string, lat double, lon double, "
      "kafka_timestamp timestamp, kafka_partition int, kafka_offset long")
# The same with the device a transaction came from (the fraud state's device features).
TXD = TX.replace(", kafka_timestamp timestamp", ", device_id string, kafka_timestamp timestamp")
UE = ("event_id string, event_time timestamp, customer_id string, event_type string, ip_country string, "
      "kafka_timestamp timestamp, kafka_partition int, kafka_offset long")
TICK = ("event_id string, event_time timestamp, symbol string, bid double, ask double, bid_size long, ask_size long, "
        "kafka_timestamp timestamp, kafka_partition int, kafka_offset long")
APP = ("event_id string, event_time timestamp, customer_id string, loan_amount decimal(18,2), term_months int, purpose string, "
       "kafka_timestamp timestamp, kafka_partition int, kafka_offset long")
BUREAU = ("event_id string, event_time timestamp, customer_id string, credit_score int, utilisation double, delinquencies int, "
          "inquiries_6m int, annual_income decimal(18,2), debt_to_income double, kafka_timestamp timestamp, kafka_partition int, "
          "kafka_offset long")
BATCHES = 4


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.timezone.utc).replace(tzinfo=None)


def _events(seed: int = 5, n_tx: int = 700, rate: float = 0.5, devices: bool = False):
    """Generated transactions (every fraud scenario) and user events of a few customers; with
    ``devices``, each transaction ends with its device id (schema TXD)."""
    cfg = GeneratorConfig(seed=seed, start="2026-03-01T00:00:00Z", rate=rate, streams=("transactions", "user_events"),
                          fraud_rate=0.2, n_customers=25, n_merchants=60)
    tx, ue, scenarios = [], [], set()
    for e in generate(cfg):
        if e.topic == "truth.fraud":
            scenarios.add(e.event["scenario"])
        elif e.topic == "transactions":
            v = e.event
            tx.append((v["event_id"], _t(v["event_time"]), hashlib.sha256(v["card_pan"].encode()).hexdigest(), v["customer_id"],
                       v["merchant_id"], v.get("terminal_id"), v["merchant_country"], v["mcc"], Decimal(str(v["amount"])), v["channel"], v.get("lat"),
                       v.get("lon"), *([v.get("device_id")] if devices else [])))
        elif e.topic == "user_events":
            v = e.event
            ue.append((v["event_id"], _t(v["event_time"]), v["customer_id"], v["event_type"], v.get("ip_country")))
        if len(tx) >= n_tx:
            break
    assert set(SCENARIOS) <= scenarios, f"the event set lacks scenarios {set(SCENARIOS) - scenarios}"
    return tx, ue


def _ticks(n: int = 1000):
    """Generated ticks of a few symbols."""
    cfg = GeneratorConfig(seed=9, start="2026-03-01T00:00:00Z", rate=50.0, streams=("market_ticks",))
    ticks = []
    for e in generate(cfg):
        if e.topic == "market_ticks":
            v = e.event
            ticks.append((v["event_id"], _t(v["event_time"]), v["symbol"], float(v["bid"]), float(v["ask"]), int(v["bid_size"]),
                          int(v["ask_size"])))
        if len(ticks) >= n:
            return ticks


def _loans(n_apps: int = 150):
    """Generated loan applications and bureau updates of a few customers (some apply before any
    snapshot of theirs, most after several)."""
    cfg = GeneratorConfig(seed=6, start="2026-03-01T00:00:00Z", rate=0.05, streams=("loan_applications", "bureau_updates"),
                          n_customers=20)
    apps, bureau = [], []
    for e in generate(cfg):
        v = e.event
        if e.topic == "loan_applications":
            apps.append((v["event_id"], _t(v["event_time"]), v["customer_id"], Decimal(str(v["loan_amount"])), int(v["term_months"]),
                         v["purpose"]))
        elif e.topic == "bureau_updates":
            bureau.append((v["event_id"], _t(v["event_time"]), v["customer_id"], int(v["credit_score"]), float(v["utilisation"]),
                           int(v["delinquencies"]), int(v["inquiries_6m"]), Decimal(str(v["annual_income"])), float(v["debt_to_income"])))
        if len(apps) >= n_apps:
            # A customer the bureau never reported on, and one whose snapshot has the application's instant.
            apps.insert(n_apps // 2, ("la-unknown", apps[n_apps // 2][1], "cust-unknown", Decimal("900.00"), 12, "car"))
            bureau.append(("bu-same", apps[-1][1], apps[-1][2], 640, 0.5, 1, 2, Decimal("40000.00"), 0.3))
            return apps, sorted(bureau, key=lambda r: r[1])


def _arrivals(rows, rng, batches=BATCHES):
    """Split time-ordered rows into arrival batches; some rows arrive one or two batches late
    (after later events were decided) and some arrive twice. Each copy gets a Kafka position."""
    per = -(-len(rows) // batches)
    out = [[] for _ in range(batches)]
    for i, r in enumerate(rows):
        b = min(i // per, batches - 1)
        if rng.random() < 0.06:
            b = min(b + rng.choice([1, 2]), batches - 1)
        out[b].append(r)
        if rng.random() < 0.03:
            out[min(b + 1, batches - 1)].append(r)   # a duplicate copy, later
    offset = 0
    for b, rows_b in enumerate(out):
        stamped = []
        for r in rows_b:
            offset += 1
            stamped.append((*r, dt.datetime(2026, 3, 2) + dt.timedelta(seconds=b * 60, microseconds=offset), 0, offset))
        out[b] = stamped
    return out


def _silver(spark, rows, schema):
    """Rows as silver holds them (gold's transforms carry silver_time along)."""
    return spark.createDataFrame(rows, schema).withColumn("silver_time", F.col("kafka_timestamp"))


def _frame(spark, pdf, schema):
    """pandas rows back into Spark with nulls as nulls (toPandas turns null doubles into NaN)."""
    pdf = pdf.copy()
    for c in pdf.columns:
        if pdf[c].dtype.kind == "f":
            pdf[c] = pdf[c].astype(object).where(pdf[c].notna(), None)
    return spark.createDataFrame(pdf, schema)


def _first_copies(batches):
    """Per batch, the rows whose event id had not arrived before (the ones decided there)."""
    seen, out = set(), []
    for rows in batches:
        fresh = []
        for r in rows:
            if r[0] not in seen:
                seen.add(r[0])
                fresh.append(r)
        out.append(fresh)
    return out


def _stream(spark, tmp_path, name, schema, batches):
    folder = tmp_path / name
    for i, rows in enumerate(batches):
        spark.createDataFrame(rows, schema).coalesce(1).write.parquet(str(folder / f"b{i:03d}"))
    # One file per batch in arrival order: the file source takes one per trigger.
    files = folder / "all"
    files.mkdir()
    for i in range(len(batches)):
        part = next((folder / f"b{i:03d}").glob("*.parquet"))
        part.rename(files / f"{i:03d}.parquet")
    return spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(files))


def _run(df, tmp_path, name):
    """Run a streaming frame batch by batch over the files; its output rows as a DataFrame."""
    from serving.decision import decision_conf

    out = str(tmp_path / f"{name}_out")
    with decision_conf(df.sparkSession, 2):
        q = (df.writeStream.queryName(name).format("parquet").option("path", out).trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / f"{name}_checkpoint")).start())
    q.awaitTermination(600)
    assert q.exception() is None, q.exception()
    return df.sparkSession.read.parquet(out)


def test_the_fraud_state_runs_as_a_batch_in_a_session_that_never_ran_a_stream(job_env, tmp_path):
    """The decision path's state over batch frames (the no-cold-start history, a test's expected
    scores) in a new session: it needs the session's state store coordinator, which Spark makes
    with the first streaming query manager."""
    import subprocess
    import sys
    import textwrap

    from tests.conftest import ROOT

    script = textwrap.dedent("""
        import datetime as dt
        from lakehouse.config import load_config
        from lakehouse.session import build_session
        from serving.decision import fraud_features
        from tests.test_decision import TX, UE, _events
        cfg = load_config("local", ["security.pan_hmac_key_missing=generate"])
        spark = build_session(cfg, app_name="finlake-test-batch-state")
        tx, ue = _events()
        stamp = lambda rows: [(*r, dt.datetime(2026, 3, 2), 0, i) for i, r in enumerate(rows)]
        print("rows", fraud_features(spark.createDataFrame(stamp(tx), TX), spark.createDataFrame(stamp(ue), UE), 3600).count())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(job_env, FINLAKE_HOME=str(tmp_path / "home")),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "rows 700", out.stderr[-2000:]


def test_state_features_are_gold_features(spark):
    assert jvm_features(spark, "FraudState") == CARD_STATE_FEATURES
    assert jvm_features(spark, "MarketState") == MARKET_FEATURES
    assert jvm_features(spark, "BorrowerState") == BORROWER_FEATURES


def test_fraud_state_equals_gold_over_arrived_events(spark, tmp_path):
    rng = random.Random(3)
    tx, ue = _events(devices=True)
    assert len({r[12] for r in tx if r[12]}) < sum(1 for r in tx if r[12])   # devices seen more than once, and new ones
    tx_b, ue_b = _arrivals(tx, rng), _arrivals(ue, rng)
    got = _run(fraud_features(_stream(spark, tmp_path, "tx", TXD, tx_b), _stream(spark, tmp_path, "ue", UE, ue_b), 3600),
               tmp_path, "parity_fraud")
    keep = ["event_id", "event_time", "card_token", "customer_id", "merchant_id", "mcc", "amount", "channel"]
    got = got.select(*keep, *CARD_STATE_FEATURES)
    no_labels = spark.createDataFrame([], "event_id string, is_fraud boolean, labelled_at timestamp")

    tx_first, ue_first = _first_copies(tx_b), _first_copies(ue_b)
    expected, final_differs = None, 0
    final = card_features(_silver(spark, [r for b in tx_first for r in b], TXD),
                          _silver(spark, [r for b in ue_first for r in b], UE), no_labels).select(*keep, *CARD_STATE_FEATURES)
    for i in range(BATCHES):
        arrived_tx = _silver(spark, [r for b in tx_first[: i + 1] for r in b], TXD)
        arrived_ue = _silver(spark, [r for b in ue_first[: i + 1] for r in b], UE)
        ids = [r[0] for r in tx_first[i]]
        part = card_features(arrived_tx, arrived_ue, no_labels).where(F.col("event_id").isin(ids)).select(*keep, *CARD_STATE_FEATURES)
        expected = part.toPandas() if expected is None else pd.concat([expected, part.toPandas()])
    assert got.count() == sum(len(b) for b in tx_first) == len(tx)   # each transaction decided once
    assertDataFrameEqual(got, _frame(spark, expected, got.schema), rtol=1e-9, atol=1e-12)
    # The documented difference: a late event is not counted in decisions already made.
    final_differs = got.exceptAll(final).count()
    assert final_differs > 0


def _by_id(df, batches):
    return df.where(F.col("event_id").isin([r[0] for b in batches for r in b]))


def test_a_new_fraud_checkpoint_starts_from_history_as_if_it_had_run_through(spark, tmp_path):
    """No cold start: a query started at arrival batch K with the events of the batches before K
    as its initial state (as silver holds them: first copies) emits, for every event it decides,
    exactly what a query that ran through every batch emitted for it; without the history it
    does not (the comparison can fail)."""
    rng, k = random.Random(3), 2
    tx, ue = _events(devices=True)
    tx_b, ue_b = _arrivals(tx, rng), _arrivals(ue, rng)
    through = _run(fraud_features(_stream(spark, tmp_path, "tx", TXD, tx_b), _stream(spark, tmp_path, "ue", UE, ue_b), 3600),
                   tmp_path, "through")
    history = {"transactions": spark.createDataFrame([r for b in _first_copies(tx_b)[:k] for r in b], TXD),
               "user_events": spark.createDataFrame([r for b in _first_copies(ue_b)[:k] for r in b], UE)}
    later = lambda name: (_stream(spark, tmp_path, f"tx_{name}", TXD, tx_b[k:]), _stream(spark, tmp_path, f"ue_{name}", UE, ue_b[k:]))
    started = _run(fraud_features(*later("warm"), 3600, history), tmp_path, "warm")
    cold = _run(fraud_features(*later("cold"), 3600), tmp_path, "cold")
    expected = _by_id(through, _first_copies(tx_b)[k:])
    assert started.count() == expected.count() == sum(len(b) for b in _first_copies(tx_b)[k:]) > 100
    assertDataFrameEqual(started, expected, rtol=1e-9, atol=1e-12)
    assert cold.exceptAll(expected).count() > 100   # a cold start counts nothing before K


def test_a_new_market_checkpoint_starts_from_history_as_if_it_had_run_through(spark, tmp_path):
    rng, k = random.Random(4), 2
    ticks = _ticks()
    batches = _arrivals(ticks, rng)
    through = _run(market_features_state(_stream(spark, tmp_path, "ticks", TICK, batches), 86400), tmp_path, "through_market")
    history = spark.createDataFrame([r for b in _first_copies(batches)[:k] for r in b], TICK)
    started = _run(market_features_state(_stream(spark, tmp_path, "ticks_warm", TICK, batches[k:]), 86400, history), tmp_path,
                   "warm_market")
    cold = _run(market_features_state(_stream(spark, tmp_path, "ticks_cold", TICK, batches[k:]), 86400), tmp_path, "cold_market")
    expected = _by_id(through, _first_copies(batches)[k:])
    assert started.count() == expected.count() == sum(len(b) for b in _first_copies(batches)[k:]) > 100
    assertDataFrameEqual(started, expected, rtol=1e-9, atol=1e-12)
    assert cold.exceptAll(expected).count() > 10


def test_state_history_reads_silver_by_name_within_what_the_state_keeps(spark, overrides, tmp_path):
    """The initial state of a new checkpoint comes from the catalog's silver tables, in the live
    frames' columns: fraud keeps each table's events within the longest lookback plus the
    allowed lateness of its newest event; trading keeps each symbol's newest MarketState.KEEP
    ticks. No silver table at all: no initial state."""
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from serving.decision import state_history
    from lakehouse.topology import stream_table

    cfg = load_config("local", [*overrides, "pipeline.allowed_lateness_s=3600"], home=tmp_path / "home")
    live = {"transactions": spark.createDataFrame([], TX), "user_events": spark.createDataFrame([], UE)}
    assert state_history(spark, cfg, "fraud", live) is None
    t0 = dt.datetime(2026, 3, 1)
    tx = lambda i, days: (f"t{i}", t0 - dt.timedelta(days=days), "card", "c1", "m", "term", "FR", "5411", Decimal("10.00"),
                          "pos", 48.0, 2.0, t0, 0, i)
    rows = [tx(0, 31.5), tx(1, 30.01), tx(2, 29.99), tx(3, 1), tx(4, 0)]   # kept: within 30 d + 1 h of the newest
    location = lambda stream: Catalog(cfg).spec(stream_table("silver", stream)).location
    spark.createDataFrame(rows, TX).withColumn("silver_time", F.col("kafka_timestamp")).write.format("delta").save(location("transactions"))
    history = state_history(spark, cfg, "fraud", live)
    assert sorted(r.event_id for r in history["transactions"].collect()) == ["t1", "t2", "t3", "t4"]
    assert history["transactions"].columns == live["transactions"].columns
    assert history["user_events"].count() == 0 and history["user_events"].columns == live["user_events"].columns

    keep = spark.sparkContext._jvm.finlake.MarketState.KEEP
    ticks = [(f"{sym}-{i}", t0 + dt.timedelta(seconds=i), sym, 100.0, 100.1, 1, 1, t0, 0, i) for sym, n in (("AAA", keep + 10), ("BBB", 5))
             for i in range(n)]
    spark.createDataFrame(ticks, TICK).withColumn("silver_time", F.col("kafka_timestamp")).write.format("delta").save(location("market_ticks"))
    got = state_history(spark, cfg, "trading", {"market_ticks": spark.createDataFrame([], TICK)})["market_ticks"]
    assert sorted(r.event_id for r in got.collect()) == sorted([f"AAA-{i}" for i in range(10, keep + 10)] + [f"BBB-{i}" for i in range(5)])


def test_a_decision_checkpoint_of_an_earlier_state_format_is_refused_in_one_line(spark, cfg, tmp_path):
    """A checkpoint whose state an earlier finlake wrote (flatMapGroupsWithState, or state objects
    in Kryo's generic format; no format file, or another format in it) cannot be read by this
    one: the start fails with a ConfigError naming it (one line, exit 2 in a job) before
    anything runs. A checkpoint without state yet gets this finlake's format."""
    from lakehouse.config import ConfigError
    from serving.decision import STATE_FORMAT, STATE_FORMAT_FILE, _check_state_format, start_decisions

    old = tmp_path / "old_checkpoint"
    (old / "state" / "0" / "_metadata").mkdir(parents=True)
    (old / "state" / "0" / "_metadata" / "metadata").write_text("{}")
    with pytest.raises(ConfigError, match=f"per-key state an earlier finlake wrote \\(before {STATE_FORMAT_FILE}\\)"):
        start_decisions(spark, cfg, "fraud", checkpoint=str(old))
    (old / STATE_FORMAT_FILE).write_text("transformWithState, Kryo state objects")
    with pytest.raises(ConfigError, match="earlier finlake wrote \\(transformWithState, Kryo state objects\\)"):
        start_decisions(spark, cfg, "fraud", checkpoint=str(old))
    new = tmp_path / "new_checkpoint"
    _check_state_format(spark, str(new))
    assert (new / STATE_FORMAT_FILE).read_text() == STATE_FORMAT
    (new / "state").mkdir()
    _check_state_format(spark, str(new))   # its own format: accepted


def test_a_key_idle_longer_than_its_ttl_starts_over(spark, tmp_path):
    """The state's TTL (processing time, a timer per key): a symbol without a tick for longer than
    the TTL is removed when a later batch runs, so its next tick has no history (no return); with
    a longer TTL the same ticks, arriving the same way, keep it (the check can fail)."""
    import time

    t0 = dt.datetime(2026, 3, 1)
    tick = lambda i, sym: (f"{sym}-{i}", t0 + dt.timedelta(seconds=i), sym, 100.0 + i, 100.2 + i, 5, 7, t0, 0, i)
    arrivals = [[tick(i, "AAA") for i in range(5)], [tick(10, "BBB")], [tick(20, "AAA")]]
    folder = tmp_path / "ticks_ttl"
    folder.mkdir()
    short, long_ = (market_features_state(spark.readStream.schema(TICK).parquet(str(folder)), ttl) for ttl in (6, 86400))
    for i, rows in enumerate(arrivals):
        spark.createDataFrame(rows, TICK).coalesce(1).write.mode("overwrite").parquet(str(tmp_path / "staged"))
        next((tmp_path / "staged").glob("*.parquet")).rename(folder / f"{i}.parquet")
        got = {name: _run(df, tmp_path, name) for name, df in (("ttl_short", short), ("ttl_long", long_))}
        if i == 0:
            time.sleep(8)   # AAA idle for longer than the short TTL
    last = {name: df.where("event_id = 'AAA-20'").select("ret_1").first()[0] for name, df in got.items()}
    assert last["ttl_short"] is None
    assert last["ttl_long"] == pytest.approx(math.log((120.1) / (104.1)))


def test_risk_snapshots_give_the_decision_path_gold_risk_features(spark, cfg, tmp_path):
    """Merchant and terminal risk served from hourly snapshots of silver equal gold's, for
    transactions in two hours, a merchant never seen before, and a transaction with no terminal."""
    from lakehouse.risk import RiskSnapshots
    from tests.test_scoring import moved

    tx, _ = _events(seed=7, n_tx=900, rate=0.02)
    rng = random.Random(8)
    frauds = {r[0] for r in tx if rng.random() < 0.3}
    labels = [(r[0], r[0] in frauds, r[1] + dt.timedelta(minutes=rng.choice([5, 50, 200]))) for r in tx]
    t_end = max(r[1] for r in tx)
    cut = t_end.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    # Silver holds every transaction (later ones too: a snapshot must not see them); the batch
    # is the last two hours.
    silver_tx = list(tx)
    batch = [r for r in tx if r[1] >= cut]
    batch.append(("new-merchant", cut + dt.timedelta(minutes=90), "card", "cust", "m-never", None, "FR", "5411",
                  Decimal("10.00"), "card_present", None, None))
    assert len(silver_tx) > 300 and len({r[1].hour for r in batch}) == 2
    label_ddl = "event_id string, is_fraud boolean, labelled_at timestamp"
    moved_cfg = moved(cfg, tmp_path, ["silver.transactions", "silver.tx_labels"])
    from lakehouse.catalog import Catalog

    catalog = Catalog(moved_cfg)
    spark.createDataFrame(silver_tx, TX[: TX.index(", kafka_timestamp")]).write.format("delta").save(catalog.spec("silver.transactions").location)
    spark.createDataFrame(labels, label_ddl).write.format("delta").save(catalog.spec("silver.tx_labels").location)
    arrived = spark.createDataFrame(batch, TX[: TX.index(", kafka_timestamp")])
    risk = RiskSnapshots(moved_cfg)
    names = [n for g in RISK_FEATURE_GROUPS.values() for n in g]
    got = risk.attach(arrived).select("event_id", *names)
    # Gold over all transactions and labels: its risk for an hour counts only what came before it.
    everything = spark.createDataFrame(silver_tx + batch[-1:], TX[: TX.index(", kafka_timestamp")]).withColumn(
        "kafka_timestamp", F.col("event_time")).withColumn("silver_time", F.col("event_time"))
    no_ue = spark.createDataFrame([], UE)
    expected = (card_features(everything, no_ue, spark.createDataFrame(labels, label_ddl))
                .where(F.col("event_id").isin([r[0] for r in batch])).select("event_id", *names))
    assertDataFrameEqual(got, expected, rtol=1e-12)
    assert risk.computed == 2
    # The decision plan's lookup (finlake.Risk in the served snapshot file of the hours around
    # "now", here the batch's second hour) gives the same features.
    from lakehouse.gold import RISK_SNAPSHOT_MS
    from lakehouse.jvm import register_functions
    from lakehouse.risk import ServedRisk

    register_functions(spark)
    served = ServedRisk(moved_cfg, str(tmp_path / "serving" / "risk.json"))
    from lakehouse.gold import risk_asof

    hours = sorted(r[0] for r in arrived.select(risk_asof().alias("h")).distinct().collect())
    assert hours[1] - hours[0] == RISK_SNAPSHOT_MS
    served.write(spark, now_ms=int(hours[1]))
    served.register(spark, "finlake_risk_test")
    looked_up = arrived.withColumns(ServedRisk.columns("finlake_risk_test")).select("event_id", *names)
    assertDataFrameEqual(looked_up, expected, rtol=1e-12)
    row = got.where("event_id = 'new-merchant'").first()
    assert row.merchant_tx_count_30d == 0.0 and row.merchant_fraud_share_30d is None and row.terminal_tx_count_30d is None
    assert got.where("merchant_fraud_share_7d > 0").count() > 0   # not vacuous


def test_streamed_gold_card_features_equal_gold_over_all_of_silver(spark, cfg, tmp_path):
    """The gold query's batches (new silver rows plus the history their customer windows and
    merchant and terminal risk read) give what the transform gives over all of silver."""
    from lakehouse.catalog import Catalog
    from lakehouse.gold import CARD_FEATURES
    from lakehouse.pipeline import GoldBatch
    from tests.test_scoring import moved

    tx, ue = _events(seed=11, n_tx=800, rate=0.02)
    rng = random.Random(12)
    labels = [(r[0], rng.random() < 0.25, r[1] + dt.timedelta(minutes=rng.choice([5, 50, 200]))) for r in tx]
    moved_cfg = moved(cfg, tmp_path, ["silver.transactions", "silver.user_events", "silver.tx_labels", "gold.card_features"])
    catalog = Catalog(moved_cfg)
    stamp = lambda df: df.withColumn("kafka_timestamp", F.col("event_time")).withColumn("silver_time", F.col("event_time"))  # noqa: E731
    silver_tx = stamp(spark.createDataFrame(tx, TX[: TX.index(", kafka_timestamp")]))
    silver_ue = stamp(spark.createDataFrame(ue, UE[: UE.index(", kafka_timestamp")]))
    silver_labels = spark.createDataFrame(labels, "event_id string, is_fraud boolean, labelled_at timestamp")
    for df, name in ((silver_tx, "silver.transactions"), (silver_ue, "silver.user_events"), (silver_labels, "silver.tx_labels")):
        df.write.format("delta").save(catalog.spec(name).location)
    fn = GoldBatch(moved_cfg, "gold.card_features", str(tmp_path / "checkpoint"))
    order = sorted(tx, key=lambda r: r[1])
    # Two long batches (hours of transactions: the exact transform over silver), then batches
    # within one or two hours (live: risk from hourly snapshots).
    hour = lambda r: r[1].replace(minute=0, second=0, microsecond=0)  # noqa: E731
    live_from = next(i for i in range(len(order) - 1, 0, -1) if hour(order[i]) != hour(order[-1]))
    live_from = next(i for i in range(live_from, 0, -1) if hour(order[i]) != hour(order[live_from]))
    cuts = [(0, 300), (300, live_from + 1), (live_from + 1, len(order) - 20), (len(order) - 20, len(order))]
    for i, (a, b) in enumerate(cuts):
        fn(silver_tx.where(F.col("event_id").isin([r[0] for r in order[a:b]])), i)
    assert fn.risk is not None and fn.risk.computed >= 1   # the live batches took the snapshots
    got = spark.read.format("delta").load(catalog.spec("gold.card_features").location).select("event_id", *CARD_FEATURES)
    expected = card_features(silver_tx, silver_ue, silver_labels).select("event_id", *CARD_FEATURES)
    assert got.count() == len(tx)
    assertDataFrameEqual(got, expected, rtol=1e-9, atol=1e-12)
    assert got.where("merchant_fraud_share_30d > 0 AND terminal_fraud_share_7d > 0").count() > 0   # not vacuous


def test_market_state_equals_gold_over_arrived_ticks(spark, tmp_path):
    rng = random.Random(4)
    ticks = _ticks()
    batches = _arrivals(ticks, rng)
    got = _run(market_features_state(_stream(spark, tmp_path, "ticks", TICK, batches), 86400), tmp_path, "parity_market")
    keep = ["event_id", "event_time", "symbol"]
    got = got.select(*keep, *MARKET_FEATURES)
    first = _first_copies(batches)
    expected = None
    for i in range(BATCHES):
        arrived = _silver(spark, [r for b in first[: i + 1] for r in b], TICK)
        ids = [r[0] for r in first[i]]
        part = market_features(arrived).where(F.col("event_id").isin(ids)).select(*keep, *MARKET_FEATURES)
        expected = part.toPandas() if expected is None else pd.concat([expected, part.toPandas()])
    assert got.count() == len(ticks)
    assertDataFrameEqual(got, _frame(spark, expected, got.schema), rtol=1e-9, atol=1e-12)


def test_borrower_state_equals_gold_over_arrived_events(spark, tmp_path):
    """Loan PD's state: each application's latest bureau snapshot at or before it, its age and the
    loan against income, as gold computes them over the applications and snapshots that had
    arrived by its batch (late and duplicated copies of both included; applications with no
    snapshot yet get null bureau features)."""
    rng = random.Random(6)
    apps, bureau = _loans()
    apps_b, bureau_b = _arrivals(apps, rng), _arrivals(bureau, rng)
    got = _run(borrower_features_state(_stream(spark, tmp_path, "apps", APP, apps_b), _stream(spark, tmp_path, "bureau", BUREAU, bureau_b),
                                       400 * 86_400_000), tmp_path, "parity_borrower")
    keep = ["event_id", "event_time", "customer_id", "purpose", "kafka_timestamp"]
    got = got.select(*keep, *BORROWER_FEATURES)
    apps_first, bureau_first = _first_copies(apps_b), _first_copies(bureau_b)
    expected = None
    for i in range(BATCHES):
        arrived_apps = _silver(spark, [r for b in apps_first[: i + 1] for r in b], APP)
        arrived_bureau = _silver(spark, [r for b in bureau_first[: i + 1] for r in b], BUREAU)
        ids = [r[0] for r in apps_first[i]]
        part = borrower_features(arrived_apps, arrived_bureau).where(F.col("event_id").isin(ids)).select(*keep, *BORROWER_FEATURES)
        expected = part.toPandas() if expected is None else pd.concat([expected, part.toPandas()])
    assert got.count() == len(apps)   # each application decided once
    assertDataFrameEqual(got, _frame(spark, expected, got.schema), rtol=1e-9, atol=1e-12)
    assert got.where("credit_score IS NULL").count() > 0 and got.where("snapshot_age_s > 0").count() > 50   # both kinds of row
    assert got.where("event_id = 'la-unknown'").first().loan_amount == 900.0


def test_a_new_loan_checkpoint_starts_from_history_as_if_it_had_run_through(spark, tmp_path):
    rng, k = random.Random(7), 2
    apps, bureau = _loans()
    apps_b, bureau_b = _arrivals(apps, rng), _arrivals(bureau, rng)
    lookback = 400 * 86_400_000
    through = _run(borrower_features_state(_stream(spark, tmp_path, "apps", APP, apps_b), _stream(spark, tmp_path, "bureau", BUREAU, bureau_b),
                                           lookback), tmp_path, "through_loans")
    history = {"loan_applications": spark.createDataFrame([r for b in _first_copies(apps_b)[:k] for r in b], APP),
               "bureau_updates": spark.createDataFrame([r for b in _first_copies(bureau_b)[:k] for r in b], BUREAU)}
    later = lambda name: (_stream(spark, tmp_path, f"apps_{name}", APP, apps_b[k:]), _stream(spark, tmp_path, f"bureau_{name}", BUREAU, bureau_b[k:]))
    started = _run(borrower_features_state(*later("warm"), lookback, history), tmp_path, "warm_loans")
    cold = _run(borrower_features_state(*later("cold"), lookback), tmp_path, "cold_loans")
    expected = _by_id(through, _first_copies(apps_b)[k:])
    assert started.count() == expected.count() == sum(len(b) for b in _first_copies(apps_b)[k:]) > 50
    assertDataFrameEqual(started, expected, rtol=1e-9, atol=1e-12)
    # A cold start knows no snapshot from before K: the applications whose latest one lies there
    # (few: the bureau reports often) have none.
    assert cold.exceptAll(expected).count() == cold.where("credit_score IS NULL").count() - started.where("credit_score IS NULL").count() > 0


def test_valid_events_parse_each_record_once_and_keep_exactly_the_valid_ones(spark, cfg):
    """The decision path's filter stays above the parse: pushed below it, Spark would inline the
    tokenizer and the JSON parse into the filter once per column it reads (thousands of times,
    70 rows/s). And it keeps exactly the rows with no reason."""
    import json

    from serving.decision import valid_events

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    good = {"event_id": "tx-1", "event_time": now.isoformat() + "Z", "card_pan": "4111111111111111", "customer_id": "c-1",
            "merchant_id": "m-1", "merchant_country": "FR", "mcc": "5411", "amount": "12.50", "currency": "EUR",
            "channel": "ecommerce", "lat": 48.8, "lon": 2.3}
    values = [json.dumps(good), json.dumps({**good, "event_id": "tx-2", "amount": "-3.00"}), "{not json",
              json.dumps({**good, "event_id": "tx-3"})]
    src = spark.createDataFrame([(b"k", v.encode(), "transactions", 0, i, now, 0) for i, v in enumerate(values)],
                                "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
                                "timestampType int")
    out = src.transform(valid_events("transactions", cfg, b"test-key"))
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert plan.count("finlake_tokenize_payload(") == 1
    assert sorted(r.event_id for r in out.select("event_id").collect()) == ["tx-1", "tx-3"]
    assert "4111111111111111" not in str(out.collect())
    # A producer's extras reach the declared features on this path (one copy of the record).
    import dataclasses

    from serving.decision import with_declared

    data = dict(cfg.data)
    data["features"] = {"transactions": {"numeric": ["IP_KM"], "distances": {}}}
    extra = {**good, "event_id": "tx-4", "extras": {"IP_KM": "12.5"}}
    src = spark.createDataFrame([(b"k", json.dumps(extra).encode(), "transactions", 0, 9, now, 0)], src.schema)
    declared = with_declared({"transactions": src.transform(valid_events("transactions", cfg, b"test-key"))},
                             dataclasses.replace(cfg, data=data), "fraud")["transactions"]
    assert [(r.event_id, r.x_ip_km) for r in declared.select("event_id", "x_ip_km").collect()] == [("tx-4", 12.5)]


@pytest.mark.kafka
def test_every_valid_transaction_is_decided_once_on_kafka_and_landed_once(kafka, spark, ml_cfg, fraud_result, tmp_path):
    """The fraud decision path on the real broker and registry: valid transactions (with
    duplicate copies and refused input mixed in) -> one decision each on fraud_decisions, alerts
    on fraud_alerts, one landed row per event in gold.fraud_scores with the champion's version.
    The queries stop and resume from their checkpoints halfway: copies of events decided before
    the restart are not landed again."""
    import dataclasses
    import json
    import time

    from lakehouse.runtime import StreamingRun
    from serving.start import start_decision_paths
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.kafka.produce import send_raw
    from ml import registry
    from tests.test_scoring import consume, moved, read

    folder = tmp_path / "dp"
    cfg = moved(ml_cfg, folder, ["gold.fraud_scores", "quarantine.scoring", "ops.stream_metrics"])
    data = dict(cfg.data)
    data["kafka"] = {**data["kafka"], "topic_prefix": "dp_"}
    data["paths"] = {**data["paths"], "checkpoints": str(folder / "checkpoints")}
    cfg = dataclasses.replace(cfg, data=data)
    ensure_topics(cfg)
    # A high fraud rate, so that the 90 transactions raise alerts whatever the champion's threshold.
    gen = GeneratorConfig(seed=77, start=time.time() - 60, rate=20.0, streams=("transactions", "user_events"), fraud_rate=0.3)
    msgs, valid, cut = [], [], None
    for e in generate(gen):
        if e.topic in ("transactions", "user_events"):
            msgs.append((e.topic, (e.key or "").encode(), json.dumps(e.event).encode()))
            if e.topic == "transactions":
                valid.append(e.event["event_id"])
                if len(valid) == 60:
                    cut = len(msgs)
        if len(valid) >= 90:
            break
    first, second = msgs[:cut], msgs[cut:]
    first += [m for m in first if m[0] == "transactions"][:3]                          # duplicate copies
    first += [("transactions", b"k", b"{not json"), ("transactions", b"k", b'{"event_id": 5}')]  # never decided
    second += [m for m in first if m[0] == "transactions"][3:5]   # copies of decided events, after the restart

    def run_until(n):
        """Start the queries (resuming their checkpoints) and stop once n rows have landed."""
        run = StreamingRun(spark, cfg, "test")
        runs = start_decision_paths(run, ["fraud"], starting_offsets="earliest")
        try:
            deadline = time.monotonic() + 300
            land = next(q for q in run.queries if q.name == "land_fraud")
            while time.monotonic() < deadline:
                assert all(q.exception() is None for q in run.queries), [q.exception() for q in run.queries]
                if land.lastProgress and any(p["numInputRows"] for p in land.recentProgress):
                    got = read(spark, cfg, "gold.fraud_scores").count() if (folder / "tables" / "gold.fraud_scores").exists() else 0
                    if got >= n:
                        break
                time.sleep(2)
            time.sleep(12)   # one more landing trigger: nothing further may arrive
        finally:
            run.stop()
        # One plan, Kafka source to Kafka sink (no foreachBatch), whose observed counts are
        # tallied per batch; the warm-up before the start (decisions.warm_up) left nothing
        # behind: the topics hold only the live decisions (checked below).
        decide = next(q for q in run.queries if q.name == "decide_fraud")
        assert "KafkaTable" in decide.lastProgress["sink"]["description"], decide.lastProgress["sink"]
        runs["fraud"].tally(decide)
        assert cfg["decisions.warm_up"] and runs["fraud"].errors == [] and runs["fraud"].decided > 0
        tallied.append(runs["fraud"].decided)

    tallied = []
    for batch, n in ((first, 60), (second, 90)):   # the second run resumes from the checkpoints
        report = send_raw(cfg, batch)    # logical topic names: the dp_ prefix comes from the config
        assert all(r["delivered"] == r["sent"] for r in report.values()), report
        run_until(n)
    landed = read(spark, cfg, "gold.fraud_scores")
    champion = registry.alias_version(registry.connect(cfg), registry.registered_name(cfg, "fraud"), registry.CHAMPION).version
    assert sorted(r.event_id for r in landed.select("event_id").collect()) == sorted(valid)
    assert {r.model_version for r in landed.select("model_version").distinct().collect()} == {str(champion)}
    assert landed.where("decision_latency_ms IS NULL OR decision_latency_ms < 0").count() == 0
    decisions = consume(cfg, "fraud_decisions")
    assert {d["event_id"] for d in decisions} == set(valid) and all(d["key"] == d["event_id"] for d in decisions)
    # Every transaction was decided once per run (the second run's plan decided only what
    # arrived after the restart, its duplicate copies not at all).
    assert sum(tallied) >= len(valid), tallied
    alert_records = consume(cfg, "fraud_alerts", idle_s=3)
    alerts = {d["event_id"] for d in alert_records}
    assert alerts and alerts == {r.event_id for r in landed.where("decision = 'alert'").collect()}
    assert alerts == {d["event_id"] for d in decisions if d["decision"] == "alert"}

    # An alert's explanation (computed off the decision plan) is xgboost's own: the top three
    # SHAP contributions of the row the plan decided, from the version that decided it.
    import numpy as np
    import xgboost as xgb

    from ml.scoring import load_version

    model = load_version(registry.connect(cfg), registry.registered_name(cfg, "fraud"), str(champion))
    booster = xgb.Booster()
    booster.load_model(bytearray(model.raw))
    decided = {d["event_id"]: d for d in decisions}
    for a in alert_records:
        x = np.array([[decided[a["event_id"]]["features"].get(f, np.nan) for f in model.features]], dtype="float32")
        contrib = booster.predict(xgb.DMatrix(x, feature_names=list(model.features)), pred_contribs=True)[0, :-1]
        want = [(model.features[j], round(float(contrib[j]), 4)) for j in np.argsort(-contrib)[:3]]
        assert [(t["feature"], t["contribution"]) for t in a["top_features"]] == want
        assert a["score"] == decided[a["event_id"]]["score"] and "features" not in a

    # The warm-up's events are valid (the parse, the state, the gate and the scorer all ran
    # over them), whatever the machine's local time zone.
    from serving.decision import scored_columns, warm_up
    from lakehouse.security import pan_hmac_key

    assert warm_up(spark, cfg, "fraud", pan_hmac_key(cfg), scored_columns(spark, "fraud")) == 20

    # A new landing checkpoint started at the topic's end (the demo on a reused broker) lands
    # only what arrives after it: five re-sent decisions, not the 90 already on the topic.
    from serving.decision import start_landing
    from lakehouse.kafka.clients import end_offsets

    again = moved(cfg, tmp_path / "again", ["gold.fraud_scores", "quarantine.scoring", "ops.stream_metrics"])
    data = dict(again.data)
    data["paths"] = {**data["paths"], "checkpoints": str(tmp_path / "again" / "checkpoints")}
    again = dataclasses.replace(again, data=data)
    resend = sorted(decisions, key=lambda d: d["event_id"])[:5]
    q, _ = start_landing(spark, again, "fraud", trigger="1 second", starting_offsets=end_offsets(again, ["fraud_decisions", "fraud_alerts"]))
    try:
        report = send_raw(again, [("fraud_decisions", d["key"].encode(), json.dumps({k: v for k, v in d.items() if k != "key"}).encode())
                                  for d in resend])
        assert all(r["delivered"] == r["sent"] for r in report.values()), report
        first_commit = tmp_path / "again" / "tables" / "gold.fraud_scores" / "_delta_log" / f"{0:020d}.json"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not first_commit.exists():
            assert q.exception() is None, q.exception()
            time.sleep(1)
        time.sleep(5)   # a few more triggers: nothing else may arrive
    finally:
        q.stop()
    assert sorted(r.event_id for r in read(spark, again, "gold.fraud_scores").select("event_id").collect()) == sorted(d["event_id"] for d in resend)


@pytest.mark.kafka
def test_a_moved_champion_serves_in_the_running_plan_and_no_decision_is_lost_or_doubled(kafka, spark, overrides, tmp_path):
    """The decision plan keeps running while the registry's champion alias moves: decisions made
    more than 10 s after the move carry the new version, those before it the old one, and every
    valid transaction is decided and landed exactly once across the swap (no restart)."""
    import json
    import threading
    import time

    from pathlib import Path

    from bench.decide import register_bench_champion
    from lakehouse.runtime import StreamingRun
    from serving.start import start_decision_paths
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.kafka.produce import send_raw
    from ml import registry
    from tests.test_scoring import consume

    cfg = load_config("local", [*overrides, "kafka.topic_prefix=swap_", "decisions.landing_trigger=2 seconds"], home=tmp_path / "swap")
    ensure_topics(cfg)
    second = register_bench_champion(cfg, seed=1)
    first = register_bench_champion(cfg, seed=0)   # the champion now; `second` was before it
    client, name = registry.connect(cfg), registry.registered_name(cfg, "fraud")
    msgs, valid = [], []
    for e in generate(GeneratorConfig(seed=31, start=time.time() - 30, rate=40.0, streams=("transactions", "user_events"))):
        if e.topic in ("transactions", "user_events"):
            msgs.append((e.topic, (e.key or "").encode(), json.dumps(e.event).encode()))
            valid += [e.event["event_id"]] if e.topic == "transactions" else []
        if len(valid) >= 600:
            break
    run = StreamingRun(spark, cfg, "test")
    runs = start_decision_paths(run, ["fraud"], starting_offsets="earliest")
    try:
        # About 37 s of sending, the alias moved after 10 s: decisions keep coming well past
        # the 10 s the swap may take.
        sender = threading.Thread(target=lambda: [send_raw(cfg, msgs[i:i + 12]) or time.sleep(0.5) for i in range(0, len(msgs), 12)])
        sender.start()
        time.sleep(10)
        client.set_registered_model_alias(name, registry.CHAMPION, second)
        moved_at = time.time()
        sender.join()
        land = next(q for q in run.queries if q.name == "land_fraud")
        deadline = time.monotonic() + 240
        location = Path(Catalog(cfg).spec("gold.fraud_scores").location)
        while time.monotonic() < deadline:
            assert all(q.exception() is None for q in run.queries), [q.exception() for q in run.queries]
            if (location / "_delta_log").exists() and spark.read.format("delta").load(str(location)).count() >= len(valid):
                break
            time.sleep(2)
        time.sleep(6)   # more landing triggers: nothing further may arrive
        assert land.isActive
    finally:
        run.stop()
    landed = spark.read.format("delta").load(str(location)).select("event_id", "model_version").toPandas()
    assert sorted(landed["event_id"]) == sorted(valid)   # each once: a doubled decision would land under both versions
    decisions = consume(cfg, "fraud_decisions")
    assert {d["event_id"] for d in decisions} == set(valid)
    at = lambda d: dt.datetime.fromisoformat(d["decided_at"]).timestamp()
    # decided_at is when the row was scored; a batch straddling the move may mix the two.
    seen = sorted({(round(at(d) - moved_at, 1), d["model_version"]) for d in decisions})
    assert {d["model_version"] for d in decisions if at(d) < moved_at - 5} == {first}, seen
    late = [d for d in decisions if at(d) >= moved_at + 10]
    assert late and {d["model_version"] for d in late} == {second}, seen
    assert [s["version"] for s in runs["fraud"].swaps] == [first, second]
    assert runs["fraud"].swaps[-1]["at"] - moved_at < 5 and runs["fraud"].errors == []


def test_declared_features_are_the_same_in_gold_and_on_the_decision_path(spark, cfg, tmp_path):
    """The user's own columns declared as features (``features.transactions``): a number kept in
    ``extras``, a text kept there as one indicator per declared value, and the distance between a
    billing address in ``extras`` and the terminal's place. The gold batch function and the
    decision path's state give every row the same values, equal to the ones computed here by
    hand; absent or unreadable values are null, never an error."""
    from lakehouse.catalog import Catalog
    from lakehouse.pipeline import GoldBatch
    from tests.test_scoring import moved

    tx, _ = _events()
    extras = []
    for i, r in enumerate(tx):
        e = {"RISK_SCORE": f"{i * 0.25:.2f}", "BLAT": "48.8566", "BLON": "2.3522", "OTHER": "kept",
             "TIER": ("gold", "Gold", "basic", "platinum plus")[i % 4]}   # "Gold" is not "gold": 0
        if i % 7 == 1:
            e["RISK_SCORE"] = "n/a"            # not a number: null
        if i % 11 == 2:
            del e["BLAT"]                      # half a point: no distance
        if i % 5 == 4:
            del e["TIER"]                      # no tier: null indicators
        extras.append(None if i % 13 == 3 else e)
    spec = {"numeric": ["RISK_SCORE"], "categorical": {"TIER": ["gold", "platinum plus"]},
            "distances": {"billing to terminal": [["BLAT", "BLON"], ["lat", "lon"]]}}
    dcfg = moved(cfg, tmp_path, ["silver.transactions", "silver.user_events", "silver.tx_labels", "gold.card_features"])
    dcfg.data["features"] = {"transactions": spec}

    def km(lat1, lon1, lat2, lon2):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
        return 2 * 6371.0 * math.asin(math.sqrt(a))

    def number(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    rows = []
    for r, e in zip(tx, extras):
        e = e or {}
        score = number(e.get("RISK_SCORE"))
        blat, blon = number(e.get("BLAT")), number(e.get("BLON"))
        dist = None if None in (blat, blon, r[10], r[11]) else km(blat, blon, r[10], r[11])
        tier = e.get("TIER")
        gold, platinum = (None, None) if tier is None else (float(tier == "gold"), float(tier == "platinum plus"))
        rows.append((r[0], score, gold, platinum, dist))
    expected = spark.createDataFrame(rows, "event_id string, x_risk_score double, x_tier_is_gold double, "
                                           "x_tier_is_platinum_plus double, km_billing_to_terminal double")
    assert {r[2] for r in rows} == {None, 0.0, 1.0} and {r[3] for r in rows} == {None, 0.0, 1.0}
    assert expected.where("x_risk_score IS NULL").count() > 5 and expected.where("km_billing_to_terminal IS NOT NULL").count() > 50
    assert expected.where("km_billing_to_terminal IS NULL").count() > 20   # ecommerce rows have no place

    stamped = [(*r, dt.datetime(2026, 3, 2), 0, i, e) for i, (r, e) in enumerate(zip(tx, extras))]
    schema = TX + ", extras map<string,string>"
    catalog = Catalog(dcfg)
    _silver(spark, stamped, schema).write.format("delta").save(catalog.spec("silver.transactions").location)
    spark.createDataFrame([], UE).withColumn("silver_time", F.col("kafka_timestamp")).write.format("delta").save(
        catalog.spec("silver.user_events").location)
    spark.createDataFrame([], "event_id string, is_fraud boolean, labelled_at timestamp").write.format("delta").save(
        catalog.spec("silver.tx_labels").location)
    fn = GoldBatch(dcfg, "gold.card_features", str(tmp_path / "gold_checkpoint"))
    fn(_silver(spark, stamped, schema), 0)
    gold = spark.read.format("delta").load(catalog.spec("gold.card_features").location)
    names = ["x_risk_score", "x_tier_is_gold", "x_tier_is_platinum_plus", "km_billing_to_terminal"]
    assertDataFrameEqual(gold.select("event_id", *names), expected, rtol=1e-9)

    half = len(stamped) // 2
    decided = _run(fraud_features(_stream(spark, tmp_path, "dtx", schema, [stamped[:half], stamped[half:]]),
                                  _stream(spark, tmp_path, "due", UE, [[], []]), 3600, cfg=dcfg), tmp_path, "declared")
    assertDataFrameEqual(decided.select("event_id", *names), expected, rtol=1e-9)
    # The decision plan hands them to the scorer, and fraud training takes them as a feature group.
    from ml.datasets import USE_CASES
    from serving.decision import scored_columns

    assert scored_columns(spark, "fraud", dcfg)[-len(names):] == tuple(names)
    assert USE_CASES["fraud"].configured(dcfg).groups["declared"] == tuple(names)


def test_a_decision_path_takes_its_own_trigger_or_the_default(tmp_path):
    from lakehouse.config import ConfigError, load_config
    from serving.decision import path_trigger

    cfg = load_config("local", ["decisions.trigger=2 seconds", "decisions.triggers={loan_pd: 7 seconds}"], home=tmp_path)
    assert (path_trigger(cfg, "loan_pd"), path_trigger(cfg, "fraud")) == ("7 seconds", "2 seconds")
    bad = load_config("local", ["decisions.triggers={loans: 7 seconds}"], home=tmp_path)
    with pytest.raises(ConfigError, match="^decisions.triggers: 'loans' has no decision path \\(known: fraud, trading, loan_pd\\)$"):
        path_trigger(bad, "fraud")


@pytest.mark.parametrize("use_case", ["fraud", "trading", "loan_pd"])
def test_landed_decisions_have_their_score_tables_declared_columns(spark, cfg, tmp_path, use_case):
    """A decision record from Kafka becomes a row of the use case's score table in exactly the
    columns declared in lakehouse/schemas/tables.py (the lakehouse scorer writes the same ones):
    the event's Kafka time, no silver time, the decision's time as scored_at."""
    import json

    from lakehouse.catalog import Catalog
    from lakehouse.topology import USE_CASES
    from ml.scoring import score_schema
    from serving.decision import LandBatch, decision_rows

    record = {"event_id": "e-1", "event_time": "2026-03-01T00:00:00Z", "decision": "refused" if use_case == "loan_pd" else "pass",
              "model_name": "m", "model_version": "3", "decided_at": "2026-03-01T00:00:02Z", "event_kafka_timestamp": "2026-03-01T00:00:01Z"}
    kafka = "value string, topic string, partition int, offset long, timestamp timestamp"
    src = _stream(spark, tmp_path, "records", kafka, [[(json.dumps(record), "some_topic", 0, 7, dt.datetime(2026, 3, 1, 0, 0, 3))]])
    got = LandBatch(cfg, use_case, str(tmp_path / "checkpoint")).as_score_rows(src.transform(decision_rows(use_case, "1 hour")))
    declared = Catalog(cfg).spec(USE_CASES[use_case].scores).schema
    assert [(f.name, f.dataType) for f in got.schema.fields] == [(f.name, f.dataType) for f in declared.fields]
    row = _run(got, tmp_path, f"landed_{use_case}").first()
    assert (row.event_id, row.silver_time, row.kafka_timestamp, row.scored_at, row.model_version, row.decision_latency_ms) == (
        "e-1", None, dt.datetime(2026, 3, 1, 0, 0, 1), dt.datetime(2026, 3, 1, 0, 0, 2), "3", 2000.0)
    # The lakehouse scorer's rows: the same columns but the two its batch adds after scoring.
    assert [f.name for f in score_schema(declared).fields] + ["scored_at", "decision_latency_ms"] == declared.fieldNames()
