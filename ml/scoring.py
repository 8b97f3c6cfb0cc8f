"""Streaming scoring: gold feature rows -> the champion's scores, in ``foreachBatch``.

Per micro-batch: look up the registry's ``champion`` (a changed alias is picked up here,
with no restart), gate the rows with the use case's Great Expectations suite (failures go to
``quarantine.scoring`` with every reason), score the rest with ``mapInPandas`` (Arrow
batches, the booster shipped once per version as a broadcast and deserialised once per
Python worker, ``inplace_predict``), send fraud alerts to Kafka, then commit the scores to
the gold table idempotently (``lakehouse.commits``: the writer id from the checkpoint, the batch id) and
the batch's Kafka-to-commit latency to ``ops.stream_metrics``.

Alerts are at least once: a batch replayed after a crash sends its alerts again (keyed and
identified by ``event_id``); scores are exactly once.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakehouse import observe, topology
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.jvm import java_strings
from lakehouse.kafka.clients import spark_kafka_options, topic_name
from lakehouse.commits import app_id, idempotent_append
from lakehouse.pipeline import _dq_rows
from lakehouse.quality import min_amount, rule_failures, validate
from lakehouse.schemas.expectations import suite_name
from lakehouse.schemas.tables import QUARANTINE, STREAM_METRICS
from lakehouse.streaming import _start
from ml import registry
from ml.calibration import NONE, Calibration
from ml.datasets import USE_CASES, UseCase

# xgboost is imported in the functions that use it: +2 s at import, and serving start-up (finlake
# decide / score, --help included) loads this module.

TOP_FEATURES = 3


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    features: tuple[str, ...]
    threshold: float | None
    classes: tuple[str, ...]
    raw: bytes
    calibration: Calibration = NONE
    # What the threshold is compared with: the score, or the expected loss (score x amount).
    threshold_on: str = "score"

    def shipped(self) -> "LoadedModel":
        """This model without its booster bytes, for a function Spark pickles into every task:
        the booster travels once per version as a broadcast (``_booster``)."""
        return dataclasses.replace(self, raw=b"")


class Champion:
    """The current champion of a registered model, reloaded only when the alias moves."""

    def __init__(self, cfg: Config, use_case: UseCase):
        self.client = registry.connect(cfg)
        self.name = registry.registered_name(cfg, use_case.registered_name)
        self.loaded: LoadedModel | None = None

    def current(self) -> LoadedModel:
        version = registry.alias_version(self.client, self.name, registry.CHAMPION)
        if version is None:
            raise RuntimeError(f"{self.name} has no champion; train one first (jobs/train.py)")
        v = str(version.version)
        if self.loaded is None or self.loaded.version != v:
            self.loaded = load_version(self.client, self.name, v)
        return self.loaded


def load_version(client, name: str, version: str) -> LoadedModel:
    """One registered version: its booster, features, threshold, classes and calibration."""
    tags = client.get_model_version(name, version).tags
    booster = registry.load_booster(name, version)
    return LoadedModel(name, version, tuple(json.loads(tags["features"])),
                       float(tags["threshold"]) if "threshold" in tags else None,
                       tuple(json.loads(tags.get("classes", "[]"))), bytes(booster.save_raw("ubj")),
                       registry.load_calibration(client, name, version), tags.get("threshold_on", "score"))


# ---------------------------------------------------------------------------------------------
# Vectorised scoring inside Python workers

_BOOSTERS: dict[tuple[str, str], object] = {}


def _booster(name: str, version: str, raw):
    """Deserialise a booster once per Python worker and version."""
    import xgboost as xgb

    key = (name, version)
    booster = _BOOSTERS.get(key)
    if booster is None:
        booster = xgb.Booster()
        booster.load_model(bytearray(raw.value if hasattr(raw, "value") else raw))
        if len(_BOOSTERS) > 8:
            _BOOSTERS.clear()
        _BOOSTERS[key] = booster
    return booster


def score_schema(table: StructType) -> StructType:
    """What the scorer's ``mapInPandas`` returns: the score table's declared columns
    (``lakehouse.schemas.tables``) but the two the batch adds after it (``scored_at``,
    ``decision_latency_ms``)."""
    return StructType([f for f in table.fields if f.name not in ("scored_at", "decision_latency_ms")])


def predict(booster, x, use_case: UseCase, model: LoadedModel) -> dict[str, np.ndarray]:
    """The champion's output columns for feature rows ``x`` (pandas, the model's features in
    order): class probabilities and signal, score/decision/threshold/top features, or pd, through
    the version's calibration map. The one scoring definition of the lakehouse scorer and the
    decision path."""
    features = list(model.features)
    amount = None
    if model.threshold_on == "expected_loss":
        if "amount" not in x.columns:
            raise ValueError(f"{model.name} v{model.version} alerts on the expected loss and needs each row's amount")
        amount = x["amount"].to_numpy(dtype=float)
    x = x[features].astype("float64")
    out: dict[str, np.ndarray] = {}
    if len(x) == 0:
        pred = np.zeros((0, len(model.classes))) if use_case.kind == "multiclass" else np.zeros(0)
    else:
        pred = model.calibration.apply(booster.inplace_predict(x))
    if use_case.kind == "multiclass":
        for i, c in enumerate(model.classes):
            out[f"p_{c}"] = pred[:, i]
        out["signal"] = np.asarray(model.classes, dtype=object)[pred.argmax(axis=1)] if len(x) else np.zeros(0, dtype=object)
    elif use_case.kind == "binary":
        out["score"] = pred
        # ml.evaluate (sklearn): +2 s at import of this module, which serving start-up loads
        from ml.evaluate import alerts

        hit = alerts(pred, model.threshold, model.threshold_on, amount)
        out["decision"] = np.where(hit, "alert", "pass").astype(object)
        # The score this row had to reach: the threshold, or expected-loss threshold / amount.
        out["threshold"] = (np.full(len(x), model.threshold) if amount is None
                            else model.threshold / np.maximum(amount, 1e-9))
        tops = np.full(len(x), None, dtype=object)
        if hit.any():
            tops[np.flatnonzero(hit)] = top_contributions(booster, x[hit], features)
        out["top_features"] = tops
    else:
        out["pd"] = pred
    return out


def top_contributions(booster, x, features: list[str]) -> list[str]:
    """Per row of ``x`` (the model's features in order): its ``TOP_FEATURES`` largest SHAP
    contributions (xgboost's own ``pred_contribs``), as the JSON an alert carries."""
    import xgboost as xgb

    if len(x) == 0:
        return []
    contrib = booster.predict(xgb.DMatrix(x[features].astype("float64"), feature_names=features), pred_contribs=True)[:, :-1]
    out = []
    for row in contrib:   # the last column (dropped) is the bias
        order = np.argsort(-row)[:TOP_FEATURES]
        out.append(json.dumps([{"feature": features[j], "contribution": round(float(row[j]), 4)} for j in order]))
    return out


# ---------------------------------------------------------------------------------------------
# Scoring in the JVM (finlake.Scorer): the same outputs as ``predict``, inside the Spark plan


def served_spec(model: LoadedModel) -> str:
    """The JSON spec ``finlake.Scorer`` serves a version from: its booster (JSON model), its
    calibration knots, threshold (and what it is compared with) and class names."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(model.raw))
    return json.dumps({"name": model.name, "version": model.version, "booster": booster.save_raw("json").decode(),
                       "calibration": model.calibration.to_dict(), "threshold": model.threshold,
                       "threshold_on": model.threshold_on, "classes": list(model.classes), "features": list(model.features)})


def write_served(path: str, model: LoadedModel) -> None:
    """Write ``model``'s spec to ``path`` for a ``served`` JVM scorer, atomically (a scorer
    re-reading the file sees the old version or the new one, never a part)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".served-")
    with os.fdopen(fd, "w") as f:
        f.write(served_spec(model))
    os.replace(tmp, path)


def register_jvm_scorer(spark: SparkSession, name: str, model: LoadedModel | None = None, served: str | None = None,
                        refresh_s: float = 2.0, columns: tuple[str, ...] | None = None) -> None:
    """Register the Spark SQL function ``name(features array<double>, amount)`` returning
    ``struct<score, probabilities, decision, threshold, model_name, model_version>``: ``model``
    inline, or the version whose spec is at ``served`` (``write_served``), re-read when the file
    changes (checked at most every ``refresh_s``). With ``columns`` (served only), the array
    holds those columns in that order and each version picks its features by name
    (``jvm_score(name, columns)``)."""
    scorer = spark.sparkContext._jvm.finlake.Scorer
    if served is not None and columns is not None:
        scorer.registerServed(spark._jsparkSession, name, served, int(refresh_s * 1000), java_strings(spark, columns))
    elif served is not None:
        scorer.registerServed(spark._jsparkSession, name, served, int(refresh_s * 1000))
    else:
        scorer.register(spark._jsparkSession, name, served_spec(model))


class ServedChampion:
    """Keeps a use case's served spec file on its registry champion: ``refresh`` writes the
    champion's spec (``write_served``) when the alias has moved, so a JVM scorer registered on
    the file (``register_jvm_scorer(served=...)``) serves the new version from its next check
    on, in the same plan: no restart, no new query."""

    def __init__(self, cfg: Config, use_case: UseCase, path: str, columns: tuple[str, ...] | None = None):
        self.champion = Champion(cfg, use_case)
        self.path = path
        self.columns = columns
        self.served: str | None = None

    def refresh(self) -> LoadedModel:
        """The champion, written to the served file when the alias has moved. RuntimeError when
        it needs a feature the scored rows (``columns``) lack: the served file keeps the version
        it has."""
        model = self.champion.current()
        if model.version != self.served:
            missing = [f for f in model.features if self.columns is not None and f not in self.columns]
            if missing:
                raise RuntimeError(f"{model.name} v{model.version} needs features {missing} the decision path lacks")
            write_served(self.path, model)
            self.served = model.version
        return model


def jvm_score(name: str, features: tuple[str, ...], amount: str | None = None):
    """The column scoring each row with the JVM scorer ``name`` (``register_jvm_scorer``)."""
    args = ", ".join(f"CAST(`{f}` AS DOUBLE)" for f in features)
    return F.expr(f"{name}(array({args}), {f'CAST(`{amount}` AS DOUBLE)' if amount else 'CAST(NULL AS DOUBLE)'})")


def make_scorer(use_case: UseCase, model: LoadedModel, raw_broadcast, keep: tuple[str, ...]):
    """The ``mapInPandas`` function: Arrow batches of feature rows in, score rows out."""
    name, version = model.name, model.version
    model = model.shipped()

    def score(batches):
        booster = _booster(name, version, raw_broadcast)
        for pdf in batches:
            out = pdf[["event_id", "event_time", *keep, "kafka_timestamp", "silver_time"]].copy()
            for col, values in predict(booster, pdf, use_case, model).items():
                out[col] = values
            out["model_name"] = name
            out["model_version"] = version
            yield out

    return score


# ---------------------------------------------------------------------------------------------
# The foreachBatch function


class ScoreBatch:
    """The ``foreachBatch`` function of one use case's scoring query."""

    def __init__(self, cfg: Config, use_case: str, checkpoint: str, alerts: bool = True):
        self.cfg = cfg
        self.use_case = USE_CASES[use_case]
        flow = topology.USE_CASES[use_case]
        self.source_name, self.target_name, self.suite, self.keep = flow.features, flow.scores, flow.gate, flow.keep
        self.min_amount = min_amount(cfg)
        catalog = Catalog(cfg)
        self.target = catalog.spec(self.target_name)
        self.quarantine = catalog.spec("quarantine.scoring")
        self.dq = catalog.spec("ops.dq_results")
        self.metrics = catalog.spec("ops.stream_metrics")
        self.app = app_id(checkpoint, self.target_name)
        self.champion = Champion(cfg, self.use_case)
        self.alerts = alerts and self.use_case.kind == "binary"
        self._broadcast = None
        self.history: list[dict] = []   # per batch: rows, version, seconds (read by benchmarks)

    def _raw(self, spark: SparkSession, model: LoadedModel):
        if self._broadcast is None or self._broadcast[0] != (model.name, model.version):
            if self._broadcast is not None:
                self._broadcast[1].unpersist()
            self._broadcast = ((model.name, model.version), spark.sparkContext.broadcast(model.raw))
        return self._broadcast[1]

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        started = time.time()
        model = self.champion.current()  # a moved alias takes effect from this batch on
        observe.serving(self.use_case.name, model.name, model.version)
        rows = batch.withColumn("reasons", rule_failures(self.suite, self.min_amount)).persist()
        try:
            n = rows.count()
            if n == 0:
                return
            ge = validate(rows.drop("reasons"), self.suite, n, self.min_amount)
            bad = rows.where(F.size("reasons") > 0)
            quarantined = bad.select(
                F.lit(self.target_name).alias("source_table"), F.lit(batch_id).cast("long").alias("batch_id"), "reasons",
                F.to_json(F.struct(*[F.col(c) for c in batch.columns])).alias("payload"), F.lit(None).cast("string").alias("topic"),
                F.lit(None).cast("int").alias("partition"), F.lit(None).cast("long").alias("offset"),
                F.current_timestamp().alias("quarantined_at")).select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE.fields])
            good = rows.where(F.size("reasons") == 0).drop("reasons")
            missing = [f for f in model.features if f not in good.columns]
            if missing:
                raise RuntimeError(f"{model.name} v{model.version} needs features {missing} that {self.source_name} lacks")
            scorer = make_scorer(self.use_case, model, self._raw(spark, model), self.keep)
            scored = good.mapInPandas(scorer, score_schema(self.target.schema))
            scored = scored.withColumn("scored_at", F.lit(dt.datetime.fromtimestamp(started, dt.timezone.utc).replace(tzinfo=None)))
            # Filled by the decision path's landing (Kafka in -> decision on Kafka); null here.
            scored = scored.withColumn("decision_latency_ms", F.lit(None).cast("double"))
            scored = scored.persist()
            counts = scored.agg(F.count("*").alias("scored"),
                                F.count_if(F.col("decision") == "alert").alias("alerts") if self.use_case.kind == "binary"
                                else F.lit(0).alias("alerts")).first()
            if self.alerts and counts["alerts"]:
                self._send_alerts(scored.where(F.col("decision") == "alert"))
            dq = _dq_rows(spark, self.target_name, batch_id, suite_name(self.suite), ge)
            idempotent_append(quarantined, self.quarantine, self.app, batch_id)
            idempotent_append(dq, self.dq, self.app, batch_id)
            idempotent_append(scored, self.target, self.app, batch_id)   # last: its commit is the batch's
            committed = time.time()
            self._latency(spark, scored, batch_id, started, committed, n, counts, model)
            self.history.append({"batch_id": batch_id, "rows": n, "scored": counts["scored"], "alerts": counts["alerts"],
                                 "version": model.version, "seconds": committed - started})
            scored.unpersist()
        finally:
            rows.unpersist()

    def _send_alerts(self, alerts: DataFrame) -> None:
        value = F.to_json(F.struct("event_id", "event_time", "card_token", "customer_id", "amount", "score", "threshold",
                                   "model_name", "model_version", F.from_json("top_features", "array<struct<feature:string,contribution:double>>")
                                   .alias("top_features"), "scored_at"))
        (alerts.select(F.col("event_id").alias("key"), value.alias("value"))
         .write.format("kafka").options(**spark_kafka_options(self.cfg))
         .option("topic", topic_name(self.cfg, "fraud_alerts")).save())

    def _latency(self, spark: SparkSession, scored: DataFrame, batch_id: int, started: float, committed: float, rows: int,
                 counts, model) -> None:
        """Kafka timestamp -> committed score, per row, summarised into ops.stream_metrics."""
        ts = scored.select((F.col("kafka_timestamp").cast("double")).alias("t")).toPandas()["t"].to_numpy()
        if len(ts) == 0:
            return
        delay_ms = (committed - ts) * 1000.0
        metrics = {"latency_median_ms": float(np.median(delay_ms)), "latency_p99_ms": float(np.percentile(delay_ms, 99)),
                   "latency_max_ms": float(delay_ms.max()), "scored": float(counts["scored"]), "alerts": float(counts["alerts"]),
                   "quarantined": float(rows - counts["scored"]), "model_version": float(model.version)}
        row = (f"score_{self.use_case.name}", self.app, int(batch_id),
               dt.datetime.fromtimestamp(committed, dt.timezone.utc).replace(tzinfo=None), int(rows), None, None,
               int((committed - started) * 1000), 0, metrics)
        df = spark.createDataFrame([row], STREAM_METRICS)
        idempotent_append(df, self.metrics, self.app + "-latency", batch_id)


def start_scoring(spark: SparkSession, cfg: Config, use_case: str, available_now: bool = False,
                  processing_time: str | None = None, alerts: bool = True, only_new: bool = False):
    """Start the gold features -> scores query of a use case; returns (query, batch function).
    ``only_new`` (for a new checkpoint) skips the rows gold already holds."""
    catalog = Catalog(cfg)
    source, target = catalog.spec(topology.USE_CASES[use_case].features), catalog.spec(topology.USE_CASES[use_case].scores)
    fn = ScoreBatch(cfg, use_case, target.checkpoint, alerts)
    fn.champion.current()  # fail now, in one line, when there is no champion

    def make_writer():
        reader = spark.readStream.format("delta")
        if only_new:
            reader = reader.option("startingVersion", "latest")
        return (reader.load(source.location).writeStream.queryName(f"score_{use_case}")
                .option("checkpointLocation", target.checkpoint).foreachBatch(fn))

    return _start(make_writer, cfg, target.checkpoint, available_now, processing_time), fn
