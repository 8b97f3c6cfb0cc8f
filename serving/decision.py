"""The decision path: Kafka -> decisions on Kafka in about a second, one streaming plan per use case.

Each query reads its raw topics, runs the *same* bronze tokenizer and silver parse and row
rules as the lakehouse (``lakehouse.bronze``, ``lakehouse.silver``: one definition), keeps
per-key features in Spark's state store (a JVM ``transformWithState`` processor from
``lakehouse/jvm``: ``finlake.FraudState`` per customer, ``finlake.MarketState`` per symbol; a new
checkpoint starts from silver's history), then gates each feature row with the use case's
expectation suite, scores the rest with the served champion (``finlake.Scorer``) and writes
every decision to Kafka with Spark's Kafka sink, all in the one plan (no ``foreachBatch``):

- ``fraud_decisions``: every valid transaction (decision ``pass``, ``alert`` or ``refused`` with
  the gate's reasons); ``explain_fraud`` adds each alert's top feature contributions off the
  plan and writes it to ``fraud_alerts``;
- ``trading_signals``: every valid tick (a signal, or ``refused``);
- ``loan_decisions``: every valid loan application (its probability of default ``pd``, decision
  ``scored``, or ``refused``), from ``finlake.BorrowerState`` per customer (the latest bureau
  snapshot).

Kafka output is at least once, keyed by event id: a batch replayed after a crash sends its
decisions again, with the same content. ``start_landing`` lands the decision topics in
``gold.fraud_scores`` / ``gold.trading_signals`` / ``gold.loan_pd_scores`` (refused rows in ``quarantine.scoring``)
exactly once per (event id, model version).

Rows the silver parse or rules refuse are not decided: the lakehouse path quarantines the
same Kafka records with every reason.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse import observe
from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.catalog import Catalog, read_delta_if_exists
from lakehouse.config import Config, ConfigError
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.gold import BORROWER_FEATURE_GROUPS, RISK_FEATURE_GROUPS, declared_features
from lakehouse.jvm import register_functions
from lakehouse.kafka.clients import spark_kafka_options, topic_name
from lakehouse.commits import app_id, idempotent_append
from lakehouse.quality import min_amount, rule_failures
from lakehouse.risk import ServedRisk
from lakehouse.schemas.events import SILVER_FIELDS
from lakehouse.schemas.tables import QUARANTINE, STREAM_METRICS
from lakehouse.security import pan_hmac_key
from lakehouse.session import scheduler_pool
from lakehouse.silver import add_rule_failures, parse_bronze
from lakehouse.streaming import KAFKA_SOURCE_DDL, read_kafka
from lakehouse.topology import DECISION_PATHS, GOLD_VIEWS, USE_CASES as TOPOLOGY, stream_table
from ml import registry
from ml.datasets import USE_CASES
from ml.scoring import ServedChampion, jvm_score, load_version, register_jvm_scorer, top_contributions


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


def fraud_state_input(transactions: DataFrame, user_events: DataFrame, extra: tuple[str, ...] = ()) -> DataFrame:
    """Valid transactions and user events as one frame in finlake.FraudState's input columns;
    the transactions' ``extra`` columns (the declared features) pass through the state."""
    common = lambda: [_ms("event_time").alias("_ts"), _ms("kafka_timestamp").alias("_kts"), "kafka_partition", "kafka_offset",
                      "event_id", "customer_id"]
    device = F.col("device_id") if "device_id" in transactions.columns else F.lit(None).cast("string").alias("device_id")
    tx = transactions.select(F.lit("tx").alias("_kind"), *common(), "card_token", "merchant_id", "merchant_country",
                             F.col("amount").cast("double").alias("_amt"), "channel", "lat", "lon",
                             F.lit(None).cast("string").alias("event_type"), F.lit(None).cast("string").alias("ip_country"),
                             device, *_TX_PASS, *extra)
    ue = user_events.select(F.lit("ue").alias("_kind"), *common(), *[F.lit(None).cast(tx.schema[c].dataType).alias(c) for c in
                            ("card_token", "merchant_id", "merchant_country", "_amt", "channel", "lat", "lon")],
                            "event_type", "ip_country", F.lit(None).cast("string").alias("device_id"),
                            *[F.lit(None).cast(tx.schema[c].dataType).alias(c) for c in (*_TX_PASS, *extra)])
    return tx.unionByName(ue)


def _ticks_input(ticks: DataFrame) -> DataFrame:
    return ticks.select(_ms("event_time").alias("_ts"), _ms("kafka_timestamp").alias("_kts"), "kafka_partition", "kafka_offset",
                        "event_id", "symbol", "bid", "ask", "bid_size", "ask_size", "event_time", "kafka_timestamp")


_BUREAU = BORROWER_FEATURE_GROUPS["bureau"]   # the snapshot's attributes, as gold reads them
_APP_PASS = ["event_time", "purpose", "kafka_timestamp"]


def borrower_state_input(applications: DataFrame, bureau: DataFrame, extra: tuple[str, ...] = ()) -> DataFrame:
    """Valid loan applications and bureau updates as one frame in finlake.BorrowerState's input
    columns; the applications' ``_APP_PASS`` and ``extra`` columns pass through the state."""
    common = lambda: [_ms("event_time").alias("_ts"), _ms("kafka_timestamp").alias("_kts"), "kafka_partition", "kafka_offset",
                      "event_id", "customer_id"]
    apps = applications.select(F.lit("app").alias("_kind"), *common(), *[F.lit(None).cast("double").alias(f"_b{i}") for i in range(len(_BUREAU))],
                               F.col("loan_amount").cast("double").alias("_loan"), F.col("term_months").cast("double").alias("_term"),
                               *_APP_PASS, *extra)
    snaps = bureau.select(F.lit("bureau").alias("_kind"), *common(), *[F.col(a).cast("double").alias(f"_b{i}") for i, a in enumerate(_BUREAU)],
                          F.lit(None).cast("double").alias("_loan"), F.lit(None).cast("double").alias("_term"),
                          *[F.lit(None).cast(apps.schema[c].dataType).alias(c) for c in (*_APP_PASS, *extra)])
    return apps.unionByName(snaps)


def _bureau_lookback_ms(cfg: Config) -> int:
    """How far back a bureau snapshot still counts: gold's ``pipeline.bureau_history_days``."""
    return int(float(cfg["pipeline.bureau_history_days"]) * 86_400_000)


def _within_bureau_lookback(table: DataFrame, newest: dt.datetime, cfg: Config, jvm) -> DataFrame:
    return table.where(F.col("event_time") >= F.lit(newest - dt.timedelta(milliseconds=_bureau_lookback_ms(cfg))))


def _within_lookback(table: DataFrame, newest: dt.datetime, cfg: Config, jvm) -> DataFrame:
    keep = dt.timedelta(milliseconds=int(jvm.FraudState.HOME_LOOKBACK)) + dt.timedelta(seconds=float(cfg["pipeline.allowed_lateness_s"]))
    return table.where(F.col("event_time") >= F.lit(newest - keep))


def _newest_per_key(table: DataFrame, newest: dt.datetime, cfg: Config, jvm) -> DataFrame:
    order = Window.partitionBy(str(jvm.MarketState.KEY)).orderBy(F.col("event_time").desc(), F.col("event_id").desc())
    return table.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= int(jvm.MarketState.KEEP)).drop("_n")


@dataclass(frozen=True)
class StateWiring:
    """How a decision path feeds its JVM per-key state (``DecisionPath.state``): ``input``, the
    path's valid frames (stream -> frame) and the driving stream's columns to pass through (the
    declared features) -> the state's input columns; ``arg``, the JVM
    ``apply``'s setting from the config (ms); ``history``, one silver table -> the events the
    state keeps (given the table's newest event time), for a new checkpoint's initial state."""
    input: Callable[[dict[str, DataFrame], tuple[str, ...]], DataFrame]
    arg: Callable[[Config], int]
    history: Callable[[DataFrame, dt.datetime, Config, Any], DataFrame]


STATES: dict[str, StateWiring] = {
    # The longest lookback plus the allowed lateness: also the state's TTL (finlake.FraudState).
    "FraudState": StateWiring(lambda f, extra: fraud_state_input(f["transactions"], f["user_events"], extra),
                              lambda cfg: int(float(cfg["pipeline.allowed_lateness_s"]) * 1000), _within_lookback),
    "MarketState": StateWiring(lambda f, extra: _ticks_input(f["market_ticks"]),
                               lambda cfg: int(float(cfg["decisions.market_state_ttl_s"]) * 1000), _newest_per_key),
    "BorrowerState": StateWiring(lambda f, extra: borrower_state_input(f["loan_applications"], f["bureau_updates"], extra),
                                 _bureau_lookback_ms, _within_bureau_lookback),
}


def keyed_state(state: str, frames: dict[str, DataFrame], arg: int, history: dict[str, DataFrame] | None = None,
                extra: tuple[str, ...] = ()) -> DataFrame:
    """The JVM per-key state ``finlake.<state>`` over a path's valid frames (stream -> frame):
    one output row per new event, its columns (``extra`` ones too) and the state's features;
    ``history`` (batch frames of past events, as silver holds them): the state a new checkpoint
    starts from."""
    wiring = STATES[state]
    spark = next(iter(frames.values())).sparkSession
    # A batch transformWithState finds its state stores through the session's coordinator,
    # which Spark registers only when the session's streaming query manager is first made: in a
    # session that never touched a stream, the batch fails with CANNOT_LOAD_STATE_STORE.
    spark.streams  # noqa: B018
    initial = None if history is None else wiring.input(history, extra)._jdf
    return DataFrame(getattr(spark.sparkContext._jvm.finlake, state).apply(wiring.input(frames, extra)._jdf, arg, initial), spark)


def declared(cfg: Config | None, use_case: str) -> dict[str, Column]:
    """The user's own features of a use case's gold view (``GoldView.declared``), by name: the
    decision path computes them from the driving stream's rows with gold's own expressions."""
    setting = GOLD_VIEWS[TOPOLOGY[use_case].features].declared
    if cfg is None or not setting:
        return {}
    return declared_features(cfg.get(setting))   # ConfigError if malformed


def with_declared(frames: dict[str, DataFrame] | None, cfg: Config | None, use_case: str) -> dict[str, DataFrame] | None:
    """A path's frames with the declared features added to its driving stream's rows."""
    cols = declared(cfg, use_case)
    if frames is None or not cols:
        return frames
    driver = DECISION_PATHS[use_case].streams[0]
    return {**frames, driver: frames[driver].withColumns(cols)}


def fraud_features(transactions: DataFrame, user_events: DataFrame, allowed_lateness_s: float,
                   history: dict[str, DataFrame] | None = None, cfg: Config | None = None) -> DataFrame:
    """Per new transaction: its columns and gold.card_features' per-card and per-customer features
    (``CARD_STATE_FEATURES``) from per-customer state (streaming: across batches through the
    checkpoint; batch: over the given events). ``history`` (batch frames of past valid
    ``transactions`` and ``user_events``, as silver holds them): the state a new checkpoint
    starts from. The label-derived risk features come from the risk lookup in ``decide``; with
    ``cfg``, the features it declares (``declared``) pass through beside them."""
    frames = with_declared({"transactions": transactions, "user_events": user_events}, cfg, "fraud")
    return keyed_state("FraudState", frames, int(allowed_lateness_s * 1000), with_declared(history, cfg, "fraud"),
                       tuple(declared(cfg, "fraud")))


def market_features_state(ticks: DataFrame, ttl_s: float, history: DataFrame | None = None) -> DataFrame:
    """Per new tick: its columns and gold.market_features' features from per-symbol state;
    ``history`` (a batch frame of past valid ticks): the state a new checkpoint starts from."""
    return keyed_state("MarketState", {"market_ticks": ticks}, int(ttl_s * 1000), None if history is None else {"market_ticks": history})


def borrower_features_state(applications: DataFrame, bureau: DataFrame, lookback_ms: int,
                            history: dict[str, DataFrame] | None = None) -> DataFrame:
    """Per new loan application: its columns and gold.borrower_features' features from
    per-customer state (``finlake.BorrowerState``); ``history`` (batch frames of past valid
    ``loan_applications`` and ``bureau_updates``): the state a new checkpoint starts from."""
    return keyed_state("BorrowerState", {"loan_applications": applications, "bureau_updates": bureau}, lookback_ms, history)


def state_history(spark: SparkSession, cfg: Config, use_case: str, live: dict[str, DataFrame]) -> dict[str, DataFrame] | None:
    """The initial state of a new decision checkpoint: silver's valid events of the path's
    streams over what the state keeps (``StateWiring.history``; fraud: the events within the
    longest lookback plus the allowed lateness of each stream's newest; trading: each symbol's
    newest ``MarketState.KEEP`` ticks), so the first decision of a known key counts its past. A
    stream without a silver table or rows yet contributes nothing (an empty frame in ``live``'s
    columns); None when no stream has any.
    Events in Kafka that silver has not landed yet when the query starts are not counted."""
    catalog = Catalog(cfg)
    jvm = spark.sparkContext._jvm.finlake
    wiring = STATES[DECISION_PATHS[use_case].state]
    frames: dict[str, DataFrame] = {}
    found = False
    for stream, frame in live.items():
        table = read_delta_if_exists(spark, catalog.spec(stream_table("silver", stream)).location)
        newest = None if table is None else table.agg(F.max("event_time")).first()[0]   # None: no rows
        if newest is None:
            frames[stream] = spark.createDataFrame([], frame.schema)
            continue
        found = True
        frames[stream] = wiring.history(table.select(*frame.columns), newest, cfg, jvm)
    return frames if found else None


def jvm_features(spark: SparkSession, cls: str) -> list[str]:
    """The feature names a JVM state class emits, in order."""
    return list(getattr(spark.sparkContext._jvm.finlake, cls).FEATURES)


# ---------------------------------------------------------------------------------------------
# Gate, score, write


def decision_schema(use_case: str) -> str:
    """The JSON value of a decision record (DDL), as written to and read from Kafka: the event's
    id, time and the use case's kept columns (typed as silver holds them), the model's outputs
    by its kind, the gate's reasons, the version and times; a path with an alerts topic also
    carries each decision's Kafka time (explained alerts are landed from there)."""
    uc, path = USE_CASES[use_case], DECISION_PATHS[use_case]
    # A kept column that is also a feature (loan PD's loan_amount) is typed as gold's feature.
    silver = {f.name: f.dataType.simpleString() for f in SILVER_FIELDS[path.streams[0]].fields} | {f: "double" for f in uc.features}
    if uc.kind == "binary":
        outputs = ["score double", "decision string", "threshold double",
                   "top_features array<struct<feature:string,contribution:double>>"]
    elif uc.kind == "multiclass":
        outputs = [*(f"p_{c} double" for c in uc.classes), "signal string", "decision string"]
    else:
        outputs = ["pd double", "decision string"]
    return ", ".join(["event_id string", "event_time timestamp", *(f"{c} {silver[c]}" for c in TOPOLOGY[use_case].keep), *outputs,
                      "reasons array<string>", "model_name string", "model_version string", "decided_at timestamp",
                      "event_kafka_timestamp timestamp", *(["decision_kafka_timestamp timestamp"] if path.alerts_topic else [])])


def scorer_function(use_case: str) -> str:
    """The Spark SQL function a decision plan scores with (``finlake.Scorer`` on its served file)."""
    return f"finlake_score_{use_case}"


RISK_FUNCTION = "finlake_risk"
NOW_FUNCTION = "finlake_now"   # decided_at (finlake.Now: not current_timestamp, which recompiles every batch)


def served_files(cfg: Config, use_case: str) -> tuple[str, str]:
    """Where a decision path's served champion spec and risk snapshot are written (local disk:
    the driver writes them, the tasks of its plan read them)."""
    base = f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/serving"
    return f"{base}/{use_case}.champion.json", f"{base}/{use_case}.risk.json"


def state_features(frames: dict[str, DataFrame], cfg: Config, use_case: str, history: dict[str, DataFrame] | None = None) -> DataFrame:
    """The valid rows of a path's streams -> one feature row per event to decide (its per-key
    state, ``DecisionPath.state``, starting from ``history`` when the checkpoint is new:
    ``state_history``)."""
    state = DECISION_PATHS[use_case].state
    return keyed_state(state, with_declared(frames, cfg, use_case), STATES[state].arg(cfg), with_declared(history, cfg, use_case),
                       tuple(declared(cfg, use_case)))


def scored_columns(spark: SparkSession, use_case: str, cfg: Config | None = None) -> tuple[str, ...]:
    """The feature columns a decision plan hands its scorer (each served version picks its own
    by name): the state's features, then merchant and terminal risk where the path has them,
    then the features ``cfg`` declares."""
    path = DECISION_PATHS[use_case]
    risk = [f for g in RISK_FEATURE_GROUPS.values() for f in g] if path.risk else []
    return (*jvm_features(spark, path.state), *risk, *declared(cfg, use_case))


def decide(features: DataFrame, cfg: Config, use_case: str, columns: tuple[str, ...]) -> DataFrame:
    """Feature rows -> decision rows in ``decision_schema``'s columns, in Spark SQL and the JVM
    functions only (no Python per event): the risk lookup (``DecisionPath.risk``), the gate (the use case's
    expectation suite: a row with reasons is ``refused``), the served champion's score, threshold
    and decision (``finlake.Scorer``). A fraud alert also carries its feature values
    (``features``: what ``explain`` needs)."""

    uc, path = USE_CASES[use_case], DECISION_PATHS[use_case]
    if path.risk:
        features = features.withColumns(ServedRisk.columns(RISK_FUNCTION))
    reasons = rule_failures(TOPOLOGY[use_case].gate, min_amount(cfg))
    ok = F.size("reasons") == 0
    rows = features.withColumn("reasons", reasons).withColumn("_s", jvm_score(scorer_function(use_case), columns, path.amount))
    common = {"model_name": F.col("_s.model_name"), "model_version": F.col("_s.model_version"), "decided_at": F.call_function(NOW_FUNCTION),
              "event_kafka_timestamp": F.col("kafka_timestamp")}
    if uc.kind == "binary":
        out = {"score": F.when(ok, F.col("_s.score")), "decision": F.when(ok, F.col("_s.decision")).otherwise(F.lit("refused")),
               "threshold": F.when(ok, F.col("_s.threshold")),
               "top_features": F.lit(None).cast("array<struct<feature:string,contribution:double>>"),
               "decision_kafka_timestamp": F.lit(None).cast("timestamp"), **common}
    elif uc.kind == "multiclass":
        out = {**{f"p_{c}": F.when(ok, F.col("_s.probabilities")[i]) for i, c in enumerate(uc.classes)},
               "signal": F.when(ok, F.col("_s.decision")), "decision": F.when(ok, F.lit("signal")).otherwise(F.lit("refused")), **common}
    else:   # a probability of default: scored, or refused by the gate
        out = {"pd": F.when(ok, F.col("_s.score")), "decision": F.when(ok, F.lit("scored")).otherwise(F.lit("refused")), **common}
    names = [c.split(" ")[0] for c in decision_schema(use_case).split(", ")]
    decided = rows.withColumns(out)
    if path.alerts_topic:
        decided = decided.withColumn("features", F.when(F.col("decision") == "alert",
                                                        F.map_from_arrays(F.array(*[F.lit(c) for c in columns]),
                                                                          F.array(*[F.col(c).cast("double") for c in columns]))))
        names.append("features")
    return decided.select(*names)


def decision_records(decided: DataFrame) -> DataFrame:
    """Decision rows -> Kafka records: key = event id, value = the row as JSON (null fields left out)."""
    return decided.select(F.col("event_id").cast("binary").alias("key"), F.to_json(F.struct(*decided.columns)).alias("value"))


def decision_metrics(decided: DataFrame, use_case: str) -> DataFrame:
    """The plan with its per-batch counts as observed metrics (``decided_<use case>`` in each
    progress record: rows, alerts, refused), read by ``DecisionRun.tally``."""
    return decided.observe(f"decided_{use_case}", F.count(F.lit(1)).alias("rows"),
                           F.count_if(F.col("decision") == "alert").alias("alerts"),
                           F.count_if(F.col("decision") == "refused").alias("refused"))


class DecisionRun:
    """What a decision plan reads beside its streams, kept current while it runs: the served
    champion spec (``ml.scoring.ServedChampion``: a moved ``champion`` alias is written there
    and served by the running plan within ``decisions.champion_poll_s`` plus the scorer's
    refresh) and, for fraud, the served risk snapshot (``lakehouse.risk.ServedRisk``, retaken
    every ``decisions.risk_refresh_s``). ``watch(query)`` keeps both current in daemon threads of
    their own and tallies the plan's observed counts per batch into ``history``."""

    def __init__(self, spark: SparkSession, cfg: Config, use_case: str):
        self.spark, self.cfg, self.use_case = spark, cfg, use_case
        self.columns = scored_columns(spark, use_case, cfg)
        champion_file, risk_file = served_files(cfg, use_case)
        self.champion = ServedChampion(cfg, USE_CASES[use_case], champion_file, self.columns)
        self.swaps: list[dict] = []
        self._serve()   # no champion, or one needing features the path lacks: fail now, in one line
        refresh_s = float(cfg["decisions.served_refresh_s"])
        register_jvm_scorer(spark, scorer_function(use_case), served=champion_file, refresh_s=refresh_s, columns=self.columns)
        spark.sparkContext._jvm.finlake.Now.register(spark._jsparkSession, NOW_FUNCTION)
        self.risk = None
        if DECISION_PATHS[use_case].risk:
            self.risk = ServedRisk(cfg, risk_file)
            self.risk.write(spark)
            self.risk.register(spark, RISK_FUNCTION, refresh_s)
        self.history: list[dict] = []
        self.errors: list[str] = []
        self._seen = -1

    def _serve(self):
        before = self.champion.served
        model = self.champion.refresh()
        if model.version != before:
            self.swaps.append({"at": time.time(), "version": model.version})
            observe.serving(self.use_case, model.name, model.version)
        return model

    def tally(self, query) -> None:
        """Add the batches the query finished since the last call to ``history``."""
        for p in query.recentProgress:
            if p["batchId"] <= self._seen:
                continue
            self._seen = p["batchId"]
            m = (p.get("observedMetrics") or {}).get(f"decided_{self.use_case}")
            if m is None:
                continue
            self.history.append({"batch_id": p["batchId"], "rows": int(m["rows"]), "alerts": int(m["alerts"]),
                                 "refused": int(m["refused"]), "version": self.champion.served,
                                 "seconds": p["durationMs"].get("triggerExecution", 0) / 1000.0,
                                 "phases_ms": p["durationMs"]})

    @property
    def decided(self) -> int:
        return sum(h["rows"] for h in self.history)

    def _guarded(self, step) -> None:
        """Run ``step``; an error is kept (and shown once) and the plan keeps serving what it has."""
        try:
            step()
        except Exception as e:  # noqa: BLE001 - the plan keeps serving what it has; the error is kept and shown
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not self.errors or self.errors[-1] != msg:
                self.errors.append(msg)
                print(f"decide {self.use_case}: {msg}", flush=True)

    def watch(self, query, every_s: float | None = None) -> threading.Thread:
        """Keep the plan's served files current while ``query`` runs, in daemon threads: one polls
        the champion alias every ``every_s`` (default ``decisions.champion_poll_s``) and tallies
        the plan's counts; one retakes the risk snapshot when it is due. A snapshot takes a few
        Spark jobs; in a thread of its own a champion swap never waits for it. Returns the
        champion thread."""
        every_s = float(self.cfg["decisions.champion_poll_s"]) if every_s is None else every_s

        def champion():
            while query.isActive:
                self._guarded(lambda: (self.tally(query), self._serve()))
                time.sleep(every_s)
            self.tally(query)

        def risk():
            while query.isActive:
                if self.risk.due():
                    self._guarded(lambda: self.risk.write(self.spark))
                time.sleep(every_s)

        if self.risk is not None:
            threading.Thread(target=risk, name=f"decision-risk-{self.use_case}", daemon=True).start()
        t = threading.Thread(target=champion, name=f"decision-run-{self.use_case}", daemon=True)
        t.start()
        return t


def start_decisions(spark: SparkSession, cfg: Config, use_case: str, starting_offsets: str | dict[str, str] = "latest",
                    trigger: str | None = None, checkpoint: str | None = None):
    """Start the decision query of ``use_case``: one streaming plan, Kafka source to Kafka sink
    (parse, rules, per-key state, risk, gate, JVM scoring); returns (query, ``DecisionRun``).
    ``starting_offsets`` (for a new checkpoint): Spark's option for every stream, or a dict
    stream -> option (per-partition JSON of that stream's topic)."""

    path = DECISION_PATHS[use_case]
    checkpoint = checkpoint or f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/{use_case}"
    _check_state_format(spark, checkpoint)
    register_functions(spark)
    key = pan_hmac_key(cfg)
    limit = int(cfg["decisions.max_offsets_per_trigger"]) or None
    start = starting_offsets if isinstance(starting_offsets, dict) else {s: starting_offsets for s in path.streams}
    run = DecisionRun(spark, cfg, use_case)
    if cfg["decisions.warm_up"]:
        warm_up(spark, cfg, use_case, key, run.columns)
    frames = {s: read_kafka(spark, cfg, topic_name(cfg, s), start[s], limit).transform(valid_events(s, cfg, key))
              for s in path.streams}

    def start_query(history, **trigger_kw):
        decided = decision_metrics(decide(state_features(frames, cfg, use_case, history), cfg, use_case, run.columns), use_case)
        writer = (decision_records(decided).writeStream.queryName(f"decide_{use_case}").option("checkpointLocation", checkpoint)
                  .outputMode("append").format("kafka").options(**spark_kafka_options(cfg))
                  .option("topic", topic_name(cfg, path.decisions_topic)).trigger(**trigger_kw))
        with decision_conf(spark, int(cfg["decisions.state_partitions"]), bool(cfg["decisions.whole_stage_codegen"]),
                           str(cfg["decisions.scheduler_pool"] or "")):
            return writer.start()

    # A new checkpoint's state starts from silver; a running one's lives in its state store.
    if cfg["decisions.initial_state"] and not _has_committed(spark, checkpoint):
        history = state_history(spark, cfg, use_case, frames)
        if history is not None:
            # Spark applies an initial state in the first batch only but plans its branch (the
            # silver scan) in every batch: +150 ms of planning and about 2x the batch time were
            # measured. So the first batch (what Kafka holds from the starting offsets) runs
            # alone with it; the query then goes on from its checkpoint without it.
            first = start_query(history, availableNow=True)
            first.awaitTermination()
            if first.exception() is not None:
                raise first.exception()
            run.tally(first)
    query = start_query(None, processingTime=trigger or path_trigger(cfg, use_case))
    run.watch(query)
    return query, run


def path_trigger(cfg: Config, use_case: str) -> str:
    """A decision query's processing-time trigger: ``decisions.triggers`` for its use case, or
    ``decisions.trigger``; ConfigError (one line) for a use case without a decision path."""
    triggers = dict(cfg["decisions.triggers"] or {})
    unknown = [u for u in triggers if u not in DECISION_PATHS]
    if unknown:
        raise ConfigError(f"decisions.triggers: '{unknown[0]}' has no decision path (known: {', '.join(DECISION_PATHS)})")
    return str(triggers.get(use_case) or cfg["decisions.trigger"])


# The per-key state a decision checkpoint holds: Spark's operator and how finlake writes a key's
# state object. A checkpoint records it in STATE_FORMAT_FILE when it is new; one written in
# another format (or before the file existed) cannot be read and is refused in one line.
STATE_FORMAT = "transformWithState, field-by-field state objects with each transaction's device (2026-12-07)"
STATE_FORMAT_FILE = "finlake_state_format"


def _fs(spark: SparkSession, path: str):
    jpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def _exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` exists, on any Hadoop file system."""
    fs, jpath = _fs(spark, path)
    return bool(fs.exists(jpath))


def _check_state_format(spark: SparkSession, checkpoint: str) -> None:
    """Refuse a decision checkpoint whose state another finlake wrote (ConfigError, one line);
    record this finlake's format in a checkpoint without state yet."""
    fs, marker = _fs(spark, f"{checkpoint.rstrip('/')}/{STATE_FORMAT_FILE}")
    found = None
    if fs.exists(marker):
        stream = fs.open(marker)
        try:
            found = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8").strip()
        finally:
            stream.close()
    if found == STATE_FORMAT:
        return
    if _exists(spark, f"{checkpoint.rstrip('/')}/state"):
        raise ConfigError(f"the decision checkpoint {checkpoint} holds per-key state an earlier finlake wrote "
                          f"({found or 'before ' + STATE_FORMAT_FILE}); move it away (a new one starts from silver's history)")
    out = fs.create(marker, True)
    try:
        out.write(bytearray(STATE_FORMAT.encode()))
    finally:
        out.close()


def _has_committed(spark: SparkSession, checkpoint: str) -> bool:
    """Whether a query's checkpoint has committed its first batch: until then Spark runs the
    first batch again, with the initial state."""
    return _exists(spark, f"{checkpoint.rstrip('/')}/commits/0")


def warm_up(spark: SparkSession, cfg: Config, use_case: str, pan_key: bytes | None, columns: tuple[str, ...]) -> int:
    """Run the path's plan once, in batch mode, over a few generated events of its streams, and
    write nothing: the parse, the state function, the risk lookup, the gate and the JVM scorer
    with the served champion are loaded and compiled before the first live batch, which
    otherwise takes several seconds more than the next ones (and so after a restart too). The
    events go nowhere: no state store, no topic, no table. Returns how many rows were decided
    (served files and functions must be registered: ``DecisionRun``)."""
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
    # The state operator runs on a state store in batch mode too; its coordinator is made with
    # the session's streaming query manager, which exists only once something asked for it.
    spark._jsparkSession.streams()
    decided = decide(state_features(frames, cfg, use_case), cfg, use_case, columns)
    return len(decision_records(decided).collect())


@contextmanager
def decision_conf(spark: SparkSession, state_partitions: int, whole_stage_codegen: bool = True, pool: str = ""):
    """Session settings a decision query captures when it starts: its state partitions (fixed in
    the checkpoint at the first start) and no empty batches. The state's processing-time timers
    (its TTL) would otherwise make Spark run batches without data; the TTL is then applied in
    the batches that carry data. ``whole_stage_codegen`` false: Spark
    does not generate and look up the Java code of the whole parse plan in every batch.
    ``pool``: the fair-scheduler pool its jobs run in (the query's thread inherits this thread's
    local property when it starts)."""
    keys = {"spark.sql.shuffle.partitions": str(state_partitions), "spark.sql.streaming.noDataMicroBatches.enabled": "false",
            "spark.sql.codegen.wholeStage": "true" if whole_stage_codegen else "false"}
    before = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    try:
        with scheduler_pool(spark, pool):
            yield
    finally:
        for k, v in before.items():
            spark.conf.unset(k) if v is None else spark.conf.set(k, v)


# ---------------------------------------------------------------------------------------------
# Landing: decision topics -> Delta, exactly once per (event id, model version)


class LandBatch:
    """``foreachBatch`` of a landing query: decisions to the score table, refused rows to
    ``quarantine.scoring``, the batch's decision latency to ``ops.stream_metrics``; every write
    idempotent (``lakehouse.commits``: the writer id from the checkpoint, the batch id)."""

    def __init__(self, cfg: Config, use_case: str, checkpoint: str):
        catalog = Catalog(cfg)
        self.path = DECISION_PATHS[use_case]
        self.target = catalog.spec(self.path.table)
        self.quarantine = catalog.spec("quarantine.scoring")
        self.metrics = catalog.spec("ops.stream_metrics")
        self.app = app_id(checkpoint, f"land_{use_case}")
        self.landed = 0

    def as_score_rows(self, rows: DataFrame) -> DataFrame:
        """Decision rows in the score table's declared columns (``lakehouse.schemas.tables``, as
        ml.scoring's batch scorer writes them): ``silver_time`` null (the decision path does not
        pass through silver), the event's Kafka time, the decision's time as ``scored_at``."""
        source = {"kafka_timestamp": F.col("event_kafka_timestamp"), "silver_time": F.lit(None), "scored_at": F.col("decided_at")}
        return rows.select(*[source.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in self.target.schema.fields])

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
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


def decision_rows(use_case: str, dedup_window: str, topics: dict[str, str] | None = None):
    """Kafka records of a path's decision (and alert) topics -> typed decision rows, one per
    (event id, model version) within ``dedup_window`` of event time (a replayed copy is
    dropped), with the decision latency: the decision record's Kafka timestamp minus its
    event's. A path with an alerts topic takes its alerts from there (explained: ``explain``)
    and its other decisions from the decisions topic; ``topics``: logical -> physical name."""
    path = DECISION_PATHS[use_case]
    topics = topics or {}

    def transform(df: DataFrame) -> DataFrame:
        d = F.from_json(F.col("value").cast("string"), decision_schema(use_case)).alias("d")
        parsed = df.select(d, F.col("timestamp").alias("record_kafka_timestamp"), F.col("value").cast("string").alias("value"),
                           "topic", "partition", "offset")
        rows = parsed.select("d.*", "record_kafka_timestamp", "value", "topic", "partition", "offset")
        if path.alerts_topic:
            # Explained alerts carry their decision's Kafka timestamp; an alert another writer
            # put on the topic (the lakehouse scorer's) is not a decision of this path.
            alerts = topics.get(path.alerts_topic, path.alerts_topic)
            rows = rows.where(F.when(F.col("topic") == alerts, F.col("decision_kafka_timestamp").isNotNull())
                              .otherwise(F.col("decision") != "alert"))
            decided = F.coalesce(F.col("decision_kafka_timestamp"), F.col("record_kafka_timestamp"))
        else:
            decided = F.col("record_kafka_timestamp")
        rows = rows.withColumn("decision_kafka_timestamp", decided).drop("record_kafka_timestamp")
        rows = rows.withColumn("decision_latency_ms", (F.unix_micros("decision_kafka_timestamp") - F.unix_micros("event_kafka_timestamp")) / 1000.0)
        if USE_CASES[use_case].kind == "binary":   # the score table keeps the contributions as JSON text
            rows = rows.withColumn("top_features", F.to_json("top_features"))
        return rows.withWatermark("event_time", dedup_window).dropDuplicatesWithinWatermark(["event_id", "model_version"])

    return transform


def _offsets(starting_offsets, topics: list[str]) -> str:
    """Spark's ``startingOffsets`` for ``topics`` (physical names): "earliest"/"latest", or
    their part of a {topic: {partition: offset}} dict."""
    if isinstance(starting_offsets, str):
        return starting_offsets
    return json.dumps({t: starting_offsets[t] for t in topics})


def start_landing(spark: SparkSession, cfg: Config, use_case: str, trigger: str | None = None,
                  starting_offsets: str | dict = "earliest"):
    """Start the Kafka -> Delta landing query of a decision path; returns (query, batch function).
    ``starting_offsets`` applies to a new checkpoint only: by default it lands every decision
    the topics hold; the demo on a reused broker starts at their ends (``end_offsets``: this
    run's only)."""

    path = DECISION_PATHS[use_case]
    logical = [t for t in (path.decisions_topic, path.alerts_topic) if t]
    topics = {t: topic_name(cfg, t) for t in logical}
    checkpoint = f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/land_{use_case}"
    fn = LandBatch(cfg, use_case, checkpoint)
    df = (read_kafka(spark, cfg, ",".join(topics.values()), _offsets(starting_offsets, list(topics.values())))
          .transform(decision_rows(use_case, str(cfg["decisions.dedup_window"]), topics)))
    writer = (df.writeStream.queryName(f"land_{use_case}").option("checkpointLocation", checkpoint).foreachBatch(fn)
              .trigger(processingTime=trigger or str(cfg["decisions.landing_trigger"])))
    return writer.start(), fn


# ---------------------------------------------------------------------------------------------
# Alert explanations: off the decision plan


class ExplainBatch:
    """``foreachBatch`` of an explanation query: the batch's alerts (from the decisions topic,
    with their feature values) get their top feature contributions from the version that
    decided them (xgboost's own ``pred_contribs``, ``ml.scoring.top_contributions``) and go to
    the alerts topic, keyed by event id, at least once. Alerts are few: this runs on the driver,
    where the registry is."""

    def __init__(self, cfg: Config, use_case: str):
        self.cfg, self.use_case = cfg, use_case
        self.client = registry.connect(cfg)
        self.versions: dict[tuple[str, str], tuple] = {}
        self.explained = 0

    def _version(self, name: str, version: str):
        import xgboost as xgb   # 3.4 s to import, measured: only a process that explains alerts pays it

        if (name, version) not in self.versions:
            model = load_version(self.client, name, version)
            booster = xgb.Booster()
            booster.load_model(bytearray(model.raw))
            self.versions = {**dict(list(self.versions.items())[-3:]), (name, version): (model, booster)}
        return self.versions[(name, version)]

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        import pandas as pd   # 1.2 s to import, measured: only where alerts are explained

        pdf = batch.toPandas()
        if pdf.empty:
            return
        out = []
        for (name, version), rows in pdf.groupby(["model_name", "model_version"], sort=False):
            model, booster = self._version(name, version)
            x = pd.DataFrame([{f: (r or {}).get(f) for f in model.features} for r in rows["features"]], index=rows.index, dtype="float64")
            tops = top_contributions(booster, x, list(model.features))
            for (_, r), top in zip(rows.iterrows(), tops):
                record = json.loads(r["value"])
                record.pop("features", None)
                record["top_features"] = json.loads(top)
                record["decision_kafka_timestamp"] = r["kafka_ts"]
                out.append((r["event_id"].encode(), json.dumps(record)))
        spark = batch.sparkSession
        (spark.createDataFrame(out, "key binary, value string").write.format("kafka").options(**spark_kafka_options(self.cfg))
         .option("topic", topic_name(self.cfg, DECISION_PATHS[self.use_case].alerts_topic)).save())
        self.explained += len(out)


def start_explaining(spark: SparkSession, cfg: Config, use_case: str, trigger: str | None = None,
                     starting_offsets: str | dict = "earliest"):
    """Start the explanation query of a path with an alerts topic; returns (query, batch function).
    ``starting_offsets`` (a new checkpoint) as ``start_landing``'s, for the decisions topic."""

    path = DECISION_PATHS[use_case]
    topic = topic_name(cfg, path.decisions_topic)
    checkpoint = f"{str(cfg['paths.checkpoints']).rstrip('/')}/decisions/explain_{use_case}"
    fn = ExplainBatch(cfg, use_case)
    d = F.from_json(F.col("value").cast("string"), "event_id string, decision string, model_name string, model_version string, "
                    "features map<string,double>").alias("d")
    df = (read_kafka(spark, cfg, topic, _offsets(starting_offsets, [topic]))
          .select(d, F.col("value").cast("string").alias("value"), F.date_format(F.col("timestamp"), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias("kafka_ts"))
          .where(F.col("d.decision") == "alert").select("d.event_id", "d.model_name", "d.model_version", "d.features", "value", "kafka_ts"))
    writer = (df.writeStream.queryName(f"explain_{use_case}").option("checkpointLocation", checkpoint).foreachBatch(fn)
              .trigger(processingTime=trigger or str(cfg["decisions.explain_trigger"])))
    return writer.start(), fn
