"""The decision path: Kafka -> decisions on Kafka in about a second, one query per use case.

Each query reads its raw topics, runs the *same* bronze tokenizer and silver parse and row
rules as the lakehouse (``lakehouse.bronze``, ``lakehouse.silver``: one definition), keeps
per-key features in Spark's state store (a JVM ``flatMapGroupsWithState`` function from
``lakehouse/jvm``: ``finlake.FraudState`` per customer, ``finlake.MarketState`` per symbol),
then in ``foreachBatch`` gates each feature row with the use case's expectation suite, scores
the rest with the registry's champion and writes every decision to Kafka in one write:

- ``fraud_decisions``: every valid transaction (decision ``pass``, ``alert`` or ``refused`` with
  the gate's reasons); ``fraud_alerts``: the alerts, with their top feature contributions;
- ``trading_signals``: every valid tick (a signal, or ``refused``).

Kafka output is at least once, keyed by event id: a batch replayed after a crash sends its
decisions again, with the same content. ``land_decisions`` lands the decision topics in
``gold.fraud_scores`` / ``gold.trading_signals`` (refused rows in ``quarantine.scoring``)
exactly once per (event id, model version).

Rows the silver parse or rules refuse are not decided: the lakehouse path quarantines the
same Kafka records with every reason.
"""
from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse import observe
from lakehouse.config import Config
from lakehouse.risk import RiskSnapshots  # noqa: F401  (the decision path's risk features)
from lakehouse.quality import min_amount
from lakehouse.silver import add_rule_failures, parse_bronze
from lakehouse.topology import DECISION_PATHS, USE_CASES as TOPOLOGY


def _ms(col: str) -> Column:
    return F.unix_millis(F.col(col))


def valid_events(stream: str, cfg: Config, pan_key: bytes | None = None):
    """Kafka source rows -> the stream's valid typed rows, exactly as silver admits them
    (bronze tokenizing, silver parse, every row rule); rows with any reason are dropped here."""

    def transform(df: DataFrame) -> DataFrame:
        bronze = df.transform(kafka_to_bronze)
        if pan_key is not None:
            bronze = bronze.transform(tokenize_pan(pan_key))
        parsed = (bronze.transform(parse_bronze(stream, float(cfg["pipeline.allowed_lateness_s"]), float(cfg["pipeline.max_clock_skew_s"]),
                                                int(cfg["pipeline.max_payload_bytes"]), int(cfg["pipeline.max_field_chars"]),
                                                str(cfg["pipeline.parser"])))
                  .transform(add_rule_failures(stream, min_amount(cfg))))
        # The filter must not be pushed below the parse: Spark would substitute every column it
        # reads by its expression, inlining the tokenizer and the JSON parse thousands of times
        # (1,897 tokenizer calls per row were measured; 70 rows/s). A non-deterministic
        # column in the projection, read by the filter so that it is not pruned, keeps the
        # filter above it.
        fenced = parsed.withColumn("_fence", F.spark_partition_id())
        return (fenced.where((F.size("reasons") == 0) & (F.col("_fence") >= 0))
                .drop("_fence", "reasons", "unknown_fields", "payload", "topic"))

    return transform


# ---------------------------------------------------------------------------------------------
# Per-key state (the JVM functions)

_TX_PASS = ["event_time", "terminal_id", "mcc", "amount", "kafka_timestamp"]


def fraud_state_input(transactions: DataFrame, user_events: DataFrame) -> DataFrame:
    """Valid transactions and user events as one frame in finlake.FraudState's input columns."""
    common = lambda: [_ms("event_time").alias("_ts"), _ms("kafka_timestamp").alias("_kts"), "kafka_partition", "kafka_offset",
                      "event_id", "customer_id"]
    tx = transactions.select(F.lit("tx").alias("_kind"), *common(), "card_token", "merchant_id", "merchant_country",
                             F.col("amount").cast("double").alias("_amt"), "channel", "lat", "lon",
                             F.lit(None).cast("string").alias("event_type"), F.lit(None).cast("string").alias("ip_country"),
                             *_TX_PASS)
    ue = user_events.select(F.lit("ue").alias("_kind"), *common(), *[F.lit(None).cast(tx.schema[c].dataType).alias(c) for c in
                            ("card_token", "merchant_id", "merchant_country", "_amt", "channel", "lat", "lon")],
                            "event_type", "ip_country", *[F.lit(None).cast(tx.schema[c].dataType).alias(c) for c in _TX_PASS])
    return tx.unionByName(ue)


def _jvm_state(spark: SparkSession, cls: str, df: DataFrame, arg: int) -> DataFrame:
    jvm = spark.sparkContext._jvm
    return DataFrame(getattr(jvm.finlake, cls).apply(df._jdf, arg), spark)


def fraud_features(transactions: DataFrame, user_events: DataFrame, allowed_lateness_s: float) -> DataFrame:
    """Per new transaction: its columns and gold.card_features' per-card and per-customer features
    (``CARD_STATE_FEATURES``) from per-customer state (streaming: across batches through the
    checkpoint; batch: over the given events). The label-derived risk features come from
    ``RiskSnapshots`` in the batch function."""
    spark = transactions.sparkSession
    return _jvm_state(spark, "FraudState", fraud_state_input(transactions, user_events), int(allowed_lateness_s * 1000))


def market_features_state(ticks: DataFrame, ttl_s: float) -> DataFrame:
    """Per new tick: its columns and gold.market_features' features from per-symbol state."""
    df = ticks.select(_ms("event_time").alias("_ts"), _ms("kafka_timestamp").alias("_kts"), "kafka_partition", "kafka_offset",
                      "event_id", "symbol", "bid", "ask", "bid_size", "ask_size", "event_time", "kafka_timestamp")
    return _jvm_state(ticks.sparkSession, "MarketState", df, int(ttl_s * 1000))


def jvm_features(spark: SparkSession, cls: str) -> list[str]:
    """The feature names a JVM state class emits, in order."""
    return list(getattr(spark.sparkContext._jvm.finlake, cls).FEATURES)


# ---------------------------------------------------------------------------------------------
# Gate, score, write


def decision_schema(use_case: str) -> str:
    """The JSON value of a decision record (DDL), as written to and read from Kafka."""
    if use_case == "fraud":
        return ("event_id string, event_time timestamp, card_token string, customer_id string, amount decimal(18,2), "
                "score double, decision string, threshold double, "
                "top_features array<struct<feature:string,contribution:double>>, reasons array<string>, "
                "model_name string, model_version string, decided_at timestamp, event_kafka_timestamp timestamp")
    from ml.datasets import USE_CASES

    probs = ", ".join(f"p_{c} double" for c in USE_CASES[use_case].classes)
    return (f"event_id string, event_time timestamp, symbol string, {probs}, signal string, decision string, "
            "reasons array<string>, model_name string, model_version string, decided_at timestamp, event_kafka_timestamp timestamp")


def make_decider(use_case, model, raw_broadcast, keep: tuple[str, ...], out_schema: StructType, decided_at=None):
    """``mapInPandas``: gated feature rows in; rows with no reasons scored by the champion (the
    same ``ml.scoring.predict`` the lakehouse scorer uses), the others refused."""
    from ml.scoring import _booster, predict

    model = model.shipped()   # the booster comes from the broadcast

    def decide(batches):
        booster = _booster(model.name, model.version, raw_broadcast)
        names = [f.name for f in out_schema.fields]
        for pdf in batches:
            ok = pdf["reasons"].map(len).to_numpy() == 0
            out = pdf[["event_id", "event_time", *keep, "kafka_timestamp", "reasons"]].copy()
            scored = predict(booster, pdf.loc[ok], use_case, model)
            for col, values in scored.items():
                full = np.full(len(pdf), None, dtype=object)
                full[ok] = values
                out[col] = full
            out["decision"] = np.where(ok, out["decision"] if "decision" in out else "signal", "refused")
            out["model_name"] = model.name
            out["model_version"] = model.version
            if "decided_at" in names:
                out["decided_at"] = decided_at
            yield out[names]

    return decide


class DecideBatch:
    """The ``foreachBatch`` function of a decision query: gate, score, one Kafka write."""

    def __init__(self, cfg: Config, use_case: str):
        from ml.datasets import USE_CASES
        from ml.scoring import Champion

        self.cfg = cfg
        self.path = DECISION_PATHS[use_case]
        self.use_case = USE_CASES[use_case]
        self.suite, self.keep = TOPOLOGY[use_case].gate, TOPOLOGY[use_case].keep
        self.champion = Champion(cfg, self.use_case)
        self.risk = RiskSnapshots(cfg) if use_case == "fraud" else None
        self._broadcast = None
        self._records = None
        self._gate = None
        self.history: list[dict] = []

    def _raw(self, spark, model):
        if self._broadcast is None or self._broadcast[0] != (model.name, model.version):
            if self._broadcast is not None:
                self._broadcast[1].unpersist()
            self._broadcast = ((model.name, model.version), spark.sparkContext.broadcast(model.raw))
        return self._broadcast[1]

    def out_schema(self, batch: DataFrame) -> StructType:
        from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, TimestampNTZType

        s = batch.schema
        fields = [s["event_id"], s["event_time"], *[s[c] for c in self.keep], s["kafka_timestamp"],
                  StructField("reasons", ArrayType(StringType()))]
        if self.use_case.kind == "binary":
            fields += [StructField("score", DoubleType()), StructField("decision", StringType()),
                       StructField("threshold", DoubleType()), StructField("top_features", StringType())]
        else:
            fields += [StructField(f"p_{c}", DoubleType()) for c in self.use_case.classes]
            fields += [StructField("signal", StringType()), StructField("decision", StringType())]
        fields += [StructField("model_name", StringType()), StructField("model_version", StringType()),
                   StructField("decided_at", TimestampNTZType())]
        return StructType([StructField(f.name, f.dataType, True) for f in fields])

    def records(self, scored: DataFrame) -> DataFrame:
        """Decision rows -> Kafka records (topic, key, value): every row to the decisions topic,
        alerts also to the alerts topic. (The columns are built once: each pyspark function
        call is several round trips to the JVM.)"""
        if self._records is None:
            from lakehouse.kafka.clients import topic_name

            cols = []
            for name in decision_schema(self.path.use_case).split(", "):
                col = name.split(" ")[0]
                if col == "top_features":
                    cols.append(F.from_json("top_features", "array<struct<feature:string,contribution:double>>").alias(col))
                elif col == "decided_at":
                    cols.append(F.col("decided_at").cast("timestamp").alias(col))
                elif col == "event_kafka_timestamp":
                    cols.append(F.col("kafka_timestamp").alias(col))
                else:
                    cols.append(F.col(col))
            value = F.to_json(F.struct(*cols))
            key = F.col("event_id").cast("binary")
            out = [F.struct(F.lit(topic_name(self.cfg, self.path.decisions_topic)).alias("topic"), key.alias("key"), value.alias("value"))]
            if self.path.alerts_topic:
                out.append(F.when(F.col("decision") == "alert",
                                  F.struct(F.lit(topic_name(self.cfg, self.path.alerts_topic)).alias("topic"), key.alias("key"),
                                           value.alias("value"))))
            self._records = (F.explode(F.array(*out)).alias("r"), F.col("r").isNotNull(), F.col("r.*"))
        explode, present, fields = self._records
        return scored.select(explode).where(present).select(fields)

    def gate(self) -> Column:
        """The expectation suite's failed rules per row (built once)."""
        if self._gate is None:
            from lakehouse.quality import rule_failures

            self._gate = rule_failures(self.suite, min_amount(self.cfg))
        return self._gate

    def __call__(self, batch: DataFrame, batch_id: int, sink: str = "kafka") -> int | None:
        """Gate, score and write one batch. ``sink`` "noop": write nothing, keep no history and
        return the number of rows decided (the warm-up's run, ``warm_up``)."""
        from lakehouse.kafka.clients import spark_kafka_options
        from lakehouse.streaming import release_checkpoint

        started = time.time()
        spark = batch.sparkSession
        model = self.champion.current()   # a moved alias takes over from this batch on
        observe.serving(self.path.use_case, model.name, model.version)
        t_model = time.time()
        # The batch's rows come from the parse and the state update: run them once. Every later
        # step (the risk snapshot hours, the gate, the score, the write) reads the checkpointed
        # rows. Without this each action re-ran the Kafka read, the parse and the state update.
        held = batch = batch.localCheckpoint(eager=True)
        try:
            # The row count and the hours whose risk snapshots the batch joins, in one small job.
            from lakehouse.gold import risk_asof

            first = batch.agg(F.count(F.lit(1)).alias("n"), F.collect_set(risk_asof()).alias("hours")).first()
            rows, hours = int(first["n"]), [int(h) for h in first["hours"]]
            t_state = time.time()
            if rows == 0:
                if sink == "kafka":
                    self.history.append({"batch_id": batch_id, "version": model.version, "seconds": time.time() - started, "rows": 0})
                return 0
            if self.risk is not None:
                batch = self.risk.attach(batch, hours)
            missing = [f for f in model.features if f not in batch.columns]
            if missing:
                raise RuntimeError(f"{model.name} v{model.version} needs features {missing} the decision path lacks")
            t_risk = time.time()
            schema = self.out_schema(batch)
            gated = batch.withColumn("reasons", self.gate())
            decided_at = dt.datetime.fromtimestamp(started, dt.timezone.utc).replace(tzinfo=None)
            scored = gated.mapInPandas(make_decider(self.use_case, model, self._raw(spark, model), self.keep, schema, decided_at), schema)
            records = self.records(scored)
            if sink == "noop":
                records.write.format("noop").mode("overwrite").save()
                return rows
            records.write.format("kafka").options(**spark_kafka_options(self.cfg)).save()
            done = time.time()
            self.history.append({"batch_id": batch_id, "version": model.version, "seconds": done - started, "rows": rows,
                                 "pool": spark.sparkContext.getLocalProperty("spark.scheduler.pool"),
                                 "phases_ms": {"champion": round(1000 * (t_model - started)), "parse_state": round(1000 * (t_state - t_model)),
                                               "risk": round(1000 * (t_risk - t_state)), "gate_score_write": round(1000 * (done - t_risk))}})
        finally:
            release_checkpoint(held)


def start_decisions(spark: SparkSession, cfg: Config, use_case: str, starting_offsets: str | dict[str, str] = "latest",
                    trigger: str | None = None, checkpoint: str | None = None):
    """Start the decision query of ``use_case``; returns (query, batch function).
    ``starting_offsets`` (for a new checkpoint): Spark's option for every stream, or a dict
    stream -> option (per-partition JSON of that stream's topic)."""
    from lakehouse.jvm import register_functions
    from lakehouse.kafka.clients import topic_name
    from lakehouse.security import pan_hmac_key
    from lakehouse.streaming import read_kafka

    path = DECISION_PATHS[use_case]
    register_functions(spark)
    key = pan_hmac_key(cfg)
    lateness = float(cfg["pipeline.allowed_lateness_s"])
    limit = int(cfg["decisions.max_offsets_per_trigger"]) or None
    start = starting_offsets if isinstance(starting_offsets, dict) else {s: starting_offsets for s in path.streams}
    frames = {s: read_kafka(spark, cfg, topic_name(cfg, s), start[s], limit).transform(valid_events(s, cfg, key))
              for s in path.streams}
    if use_case == "fraud":
        features = fraud_features(frames["transactions"], frames["user_events"], lateness)
    else:
        features = market_features_state(frames["market_ticks"], float(cfg["decisions.market_state_ttl_s"]))
    fn = DecideBatch(cfg, use_case)
    fn.champion.current()   # no champion: fail now, in one line
    if fn.risk is not None:
        fn.risk.warm(spark)   # the current hour's risk snapshot, before the first live batch needs it
    if cfg["decisions.warm_up"]:
        warm_up(spark, cfg, use_case, fn, key)
    checkpoint = checkpoint or f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/{use_case}"
    writer = (features.writeStream.queryName(f"decide_{use_case}").option("checkpointLocation", checkpoint)
              .outputMode("append").foreachBatch(fn).trigger(processingTime=trigger or str(cfg["decisions.trigger"])))
    with decision_conf(spark, int(cfg["decisions.state_partitions"]), bool(cfg["decisions.whole_stage_codegen"]),
                       str(cfg["decisions.scheduler_pool"] or "")):
        return writer.start(), fn


def warm_up(spark: SparkSession, cfg: Config, use_case: str, fn: "DecideBatch", pan_key: bytes | None) -> int:
    """Run the path's code once, in batch mode, over a few generated events of its streams, and
    write nothing: the parse, the state function, the gate, the Python workers with the
    champion's booster and the Kafka record building are loaded and compiled before the first
    live batch, which otherwise takes several seconds more than the next ones (and so after a
    restart too). The events go nowhere: no state store, no topic, no table. Returns how many
    rows went through the gate and the scorer."""
    import json

    from lakehouse.generators.streams import GeneratorConfig, generate
    from lakehouse.streaming import KAFKA_SOURCE_DDL

    path = DECISION_PATHS[use_case]
    now = time.time()
    rows: dict[str, list] = {s: [] for s in path.streams}
    stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc)   # aware: the same instant whatever the local zone
    for i, e in enumerate(generate(GeneratorConfig(seed=7, start=now - 30, rate=50.0, streams=path.streams))):
        if i >= 5000:   # enough of every stream long before this
            break
        if e.is_truth or e.topic not in rows or len(rows[e.topic]) >= 20:
            continue
        rows[e.topic].append(((e.key or "").encode(), json.dumps(e.event).encode(), e.topic, 0, len(rows[e.topic]), stamp, 0))
        if all(len(r) >= 20 for r in rows.values()):
            break
    frames = {s: spark.createDataFrame(rows[s], KAFKA_SOURCE_DDL).transform(valid_events(s, cfg, pan_key)) for s in path.streams}
    if use_case == "fraud":
        features = fraud_features(frames["transactions"], frames["user_events"], float(cfg["pipeline.allowed_lateness_s"]))
    else:
        features = market_features_state(frames["market_ticks"], float(cfg["decisions.market_state_ttl_s"]))
    return int(fn(features, -1, sink="noop") or 0)


@contextmanager
def decision_conf(spark: SparkSession, state_partitions: int, whole_stage_codegen: bool = True, pool: str = ""):
    """Session settings a decision query captures when it starts: its state partitions (fixed in
    the checkpoint at the first start) and no empty batches. A processing-time timeout (the
    state's TTL) would otherwise make Spark run a batch without data back to back forever; the
    TTL is then applied in the batches that carry data. ``whole_stage_codegen`` false: Spark
    does not generate and look up the Java code of the whole parse plan in every batch.
    ``pool``: the fair-scheduler pool its jobs run in (the query's thread inherits this thread's
    local property when it starts)."""
    keys = {"spark.sql.shuffle.partitions": str(state_partitions), "spark.sql.streaming.noDataMicroBatches.enabled": "false",
            "spark.sql.codegen.wholeStage": "true" if whole_stage_codegen else "false"}
    before = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    sc = spark.sparkContext
    pool_before = sc.getLocalProperty("spark.scheduler.pool")
    if pool:
        sc.setLocalProperty("spark.scheduler.pool", pool)
    try:
        yield
    finally:
        for k, v in before.items():
            spark.conf.unset(k) if v is None else spark.conf.set(k, v)
        sc.setLocalProperty("spark.scheduler.pool", pool_before)


# ---------------------------------------------------------------------------------------------
# Landing: decision topics -> Delta, exactly once per (event id, model version)


class LandBatch:
    """``foreachBatch`` of a landing query: decisions to the score table, refused rows to
    ``quarantine.scoring``, the batch's decision latency to ``ops.stream_metrics``; every write
    idempotent (``txnAppId`` from the checkpoint, ``txnVersion`` = batch id)."""

    def __init__(self, cfg: Config, use_case: str, checkpoint: str):
        from lakehouse.catalog import Catalog
        from lakehouse.pipeline import app_id

        catalog = Catalog(cfg)
        self.path = DECISION_PATHS[use_case]
        self.target = catalog.spec(self.path.table)
        self.quarantine = catalog.spec("quarantine.scoring")
        self.metrics = catalog.spec("ops.stream_metrics")
        self.app = app_id(checkpoint, f"land_{use_case}")
        self.landed = 0

    def as_score_rows(self, rows: DataFrame) -> DataFrame:
        """Decision rows in the score table's columns (those ml.scoring's batch scorer writes,
        silver_time null: the decision path does not pass through silver)."""
        from ml.datasets import USE_CASES

        use_case = USE_CASES[self.path.use_case]
        keep = TOPOLOGY[self.path.use_case].keep
        if use_case.kind == "binary":
            outputs = ["score", "decision", "threshold", "top_features"]
        else:
            outputs = [f"p_{c}" for c in use_case.classes] + ["signal"]
        return rows.select("event_id", "event_time", *keep, F.col("event_kafka_timestamp").alias("kafka_timestamp"),
                           F.lit(None).cast("timestamp").alias("silver_time"), *outputs, "model_name", "model_version",
                           F.col("decided_at").alias("scored_at"), "decision_latency_ms")

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from lakehouse.pipeline import idempotent_append
        from lakehouse.schemas.tables import QUARANTINE, STREAM_METRICS

        spark = batch.sparkSession
        rows = batch.persist()
        try:
            n = rows.count()
            if n == 0:
                return
            refused = rows.where(F.col("decision") == "refused")
            quarantined = refused.select(
                F.lit(self.path.table).alias("source_table"), F.lit(batch_id).cast("long").alias("batch_id"), "reasons",
                F.col("value").alias("payload"), F.col("topic"), F.col("partition"), F.col("offset"),
                F.current_timestamp().alias("quarantined_at")).select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE.fields])
            decided = self.as_score_rows(rows.where(F.col("decision") != "refused"))
            lat = rows.agg(F.percentile_approx("decision_latency_ms", [0.5, 0.99], 1000).alias("q"),
                           F.max("decision_latency_ms").alias("mx"), F.count_if(F.col("decision") == "alert").alias("alerts"),
                           F.count_if(F.col("decision") == "refused").alias("refused"),
                           F.collect_list("decision").alias("decisions"), F.collect_list("decision_latency_ms").alias("ms")).first()
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            metrics = {"latency_median_ms": float(lat["q"][0]), "latency_p99_ms": float(lat["q"][1]), "latency_max_ms": float(lat["mx"]),
                       "decisions": float(n), "alerts": float(lat["alerts"]), "refused": float(lat["refused"])}
            m = spark.createDataFrame([(f"land_{self.path.use_case}", self.app, int(batch_id), now, int(n), None, None, 0, 0, metrics)],
                                      STREAM_METRICS)
            idempotent_append(quarantined, self.quarantine, self.app, batch_id)
            idempotent_append(m, self.metrics, self.app + "-latency", batch_id)
            idempotent_append(decided, self.target, self.app, batch_id)
            self.landed += n
            observe.decisions(self.path.use_case, lat["decisions"], lat["ms"])
        finally:
            rows.unpersist()


def decision_rows(use_case: str, dedup_window: str):
    """Kafka records of a decision topic -> typed decision rows, one per (event id, model
    version) within ``dedup_window`` of event time (a replayed copy is dropped), with the
    decision latency: the decision record's Kafka timestamp minus its event's."""

    def transform(df: DataFrame) -> DataFrame:
        d = F.from_json(F.col("value").cast("string"), decision_schema(use_case)).alias("d")
        parsed = df.select(d, F.col("timestamp").alias("decision_kafka_timestamp"), F.col("value").cast("string").alias("value"),
                           "topic", "partition", "offset")
        rows = parsed.select("d.*", "decision_kafka_timestamp", "value", "topic", "partition", "offset")
        rows = rows.withColumn("decision_latency_ms", (F.unix_micros("decision_kafka_timestamp") - F.unix_micros("event_kafka_timestamp")) / 1000.0)
        if use_case == "fraud":
            rows = rows.withColumn("top_features", F.to_json("top_features"))
        return rows.withWatermark("event_time", dedup_window).dropDuplicatesWithinWatermark(["event_id", "model_version"])

    return transform


def start_landing(spark: SparkSession, cfg: Config, use_case: str, trigger: str | None = None,
                  starting_offsets: str = "earliest"):
    """Start the Kafka -> Delta landing query of a decision path; returns (query, batch function).
    ``starting_offsets`` applies to a new checkpoint only: by default it lands every decision
    the topic holds; the demo on a reused broker starts at the topic's end (this run's only)."""
    from lakehouse.kafka.clients import topic_name
    from lakehouse.streaming import read_kafka

    path = DECISION_PATHS[use_case]
    checkpoint = f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/land_{use_case}"
    fn = LandBatch(cfg, use_case, checkpoint)
    df = (read_kafka(spark, cfg, topic_name(cfg, path.decisions_topic), starting_offsets)
          .transform(decision_rows(use_case, str(cfg["decisions.dedup_window"]))))
    writer = (df.writeStream.queryName(f"land_{use_case}").option("checkpointLocation", checkpoint).foreachBatch(fn)
              .trigger(processingTime=trigger or str(cfg["decisions.landing_trigger"])))
    return writer.start(), fn
