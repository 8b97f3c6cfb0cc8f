"""Training sets: gold features joined to labels point in time, split by time, checked for leakage.

A row is one prediction: the features gold computed at the event's own time (gold windows
end at the row), the label that became known later, and, apart from the features, the
generator's true probabilities (``truth_*`` columns) used only to compute the ceiling.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.gold import (BORROWER_FEATURE_GROUPS, CARD_FEATURE_GROUPS, DECLARED_GROUP, DECLARED_SETTING, MARKET_FEATURE_GROUPS,
                            declared_spec)
from lakehouse.schemas.events import TRADING_CLASSES
from lakehouse.topology import USE_CASES as FLOWS   # each use case's tables, declared once


@dataclass(frozen=True)
class UseCase:
    """What one model predicts, from which gold table, and how it is judged."""

    name: str
    kind: str                      # binary | multiclass | pd
    features_table: str
    groups: dict[str, tuple[str, ...]]
    registered_name: str
    # The metric the search, the folds and the statistical tests compare (higher is better).
    fold_metric: str
    # The metric the promotion rule compares on the test period, and its direction.
    promotion_metric: str
    promotion_higher_is_better: bool
    classes: tuple[str, ...] = field(default=())
    # The config setting declaring the user's own features of the gold view (group ``declared``).
    declared: str | None = None

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature of every group, in gold's order."""
        return tuple(f for g in self.groups.values() for f in g)

    def configured(self, cfg) -> "UseCase":
        """This use case with the features the config declares (``declared``: the group
        ``declared``) and without the groups of ``ml.features.<use case>.drop_groups``."""
        groups = dict(self.groups)
        if self.declared and cfg is not None:
            names = tuple(declared_spec(cfg.get(self.declared)))
            if names:
                groups[DECLARED_GROUP] = names
        drop = list((cfg.get(f"ml.features.{self.name}.drop_groups") if cfg is not None else None) or [])
        unknown = [g for g in drop if g not in groups]
        if unknown:
            raise ValueError(f"ml.features.{self.name}.drop_groups: unknown group '{unknown[0]}' "
                             f"(known: {', '.join(groups)})")
        if len(drop) >= len(groups):
            raise ValueError(f"ml.features.{self.name}.drop_groups leaves no features")
        return replace(self, groups={g: fs for g, fs in groups.items() if g not in drop})

    def without(self, features) -> "UseCase":
        """This use case without the named features (a group left empty goes)."""
        gone = set(features)
        groups = {g: tuple(f for f in fs if f not in gone) for g, fs in self.groups.items()}
        return replace(self, groups={g: fs for g, fs in groups.items() if fs})


def _groups(groups: dict[str, list[str]], leave_out: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    return {g: tuple(fs) for g, fs in groups.items() if g not in leave_out}


USE_CASES = {
    # Fraud settings are chosen by PR-AUC (what an alert budget feels), promoted by ROC-AUC (DeLong's test).
    "fraud": UseCase("fraud", "binary", FLOWS["fraud"].features, _groups(CARD_FEATURE_GROUPS), "fraud",
                     fold_metric="pr_auc", promotion_metric="roc_auc", promotion_higher_is_better=True,
                     declared=DECLARED_SETTING),
    # The price level (mid) is left out: it identifies the symbol and drifts, it forecasts nothing.
    "trading": UseCase("trading", "multiclass", FLOWS["trading"].features, _groups(MARKET_FEATURE_GROUPS, ("price",)),
                       "trading", fold_metric="auc_macro", promotion_metric="auc_macro", promotion_higher_is_better=True,
                       classes=TRADING_CLASSES),
    # PD is judged on what a lender observes: realised defaults (Brier score, lower is better).
    "loan_pd": UseCase("loan_pd", "pd", FLOWS["loan_pd"].features, _groups(BORROWER_FEATURE_GROUPS), "loan-pd",
                       fold_metric="roc_auc", promotion_metric="brier", promotion_higher_is_better=False),
}


class LeakageError(ValueError):
    """A feature carries the label (or the truth) into the training set."""


class TrainingDataError(ValueError):
    """The tables hold too little labelled data to train and judge a model."""


# ---------------------------------------------------------------------------------------------
# Reading tables with lineage


def read_table(spark: SparkSession, catalog: Catalog, name: str) -> tuple[DataFrame, dict]:
    """A table pinned to its current version, and its lineage (Delta version or Parquet files)."""
    spec = catalog.spec(name)
    if spec.format == "parquet":
        files = sorted(Path(spec.location).glob("*.parquet")) if "://" not in spec.location else []
        try:
            df = spark.read.schema(spec.schema).parquet(spec.location)
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" not in str(exc):
                raise
            raise TrainingDataError(f"table {name} does not exist at {spec.location}") from None
        return df, {"table": name, "format": "parquet", "location": spec.location, "files": len(files)}
    if not DeltaTable.isDeltaTable(spark, spec.location):
        raise TrainingDataError(f"table {name} does not exist yet at {spec.location}; run the pipeline first (jobs/stream.py)")
    version = DeltaTable.forPath(spark, spec.location).history(1).select("version").first()[0]
    df = spark.read.format("delta").option("versionAsOf", version).load(spec.location)
    return df, {"table": name, "format": "delta", "location": spec.location, "version": int(version)}


# ---------------------------------------------------------------------------------------------
# Point-in-time label joins (pure transforms)


def latest_labels_as_of(labels: DataFrame, as_of: float | None) -> DataFrame:
    """One label per event: the latest one known at ``as_of`` (epoch seconds; all when None)."""
    known = labels if as_of is None else labels.where(F.col("labelled_at").cast("double") <= as_of)
    w = Window.partitionBy("event_id").orderBy(F.col("labelled_at").desc())
    return (known.select("event_id", "is_fraud", "labelled_at").withColumn("_n", F.row_number().over(w))
            .where("_n = 1").drop("_n"))


def fraud_rows(features: DataFrame, labels: DataFrame, truth: DataFrame | None, as_of: float | None,
               feature_names=None) -> DataFrame:
    """Transactions whose label was known at ``as_of``, with label 0/1, the true probability
    (null without a generator truth table: a user's own data has none) and ``feature_names``
    (default: the fraud use case's own).

    A transaction without a known label is left out, never counted as legitimate."""
    lab = latest_labels_as_of(labels, as_of)
    base = features if as_of is None else features.where(F.col("event_time").cast("double") <= as_of)
    labelled = base.join(lab, "event_id", "inner")
    with_truth = (labelled.withColumn("truth_p", F.lit(None).cast("double")) if truth is None else
                  labelled.join(truth.select("event_id", F.col("fraud_probability").alias("truth_p")), "event_id", "left"))
    return (with_truth
            .select("event_id", "event_time", *[F.col("amount").cast("double").alias("amount")] * ("amount" in features.columns),
                    # A declared feature gold has no column for yet (declared after gold was built): null.
                    *[F.col(f) if f in features.columns else F.lit(None).cast("double").alias(f)
                      for f in (USE_CASES["fraud"].features if feature_names is None else feature_names)],
                    F.col("is_fraud").cast("int").alias("label"), "truth_p"))


def labels_from_ticks(flat_bps: float):
    """Each tick's label from the ticks themselves (a user's own market data has no truth
    table): the class of the log return of the mid to the symbol's next tick, 0 down below
    ``-flat_bps``, 2 up above ``flat_bps``, else 1 flat. The last tick of a symbol has no next
    tick yet, so no label. The label looks one tick ahead; the split's embargo keeps it from
    reaching across a cut."""
    threshold = flat_bps / 1e4

    def transform(features: DataFrame) -> DataFrame:
        w = Window.partitionBy("symbol").orderBy("event_time", "event_id")
        ret = F.log(F.lead("mid").over(w) / F.col("mid"))
        label = F.when(ret < -threshold, 0).when(ret > threshold, 2).when(ret.isNotNull(), 1)
        return features.withColumn("label", label).where(F.col("label").isNotNull())

    return transform


def trading_rows(features: DataFrame, truth: DataFrame | None, flat_bps: float = 2.0) -> DataFrame:
    """Ticks with the class of the next return (0 down, 1 flat, 2 up) and its true probabilities:
    from the generator's truth table when there is one, else from the ticks (``labels_from_ticks``)
    with null true probabilities."""
    if truth is None:
        labelled = features.transform(labels_from_ticks(flat_bps)).select(
            "*", *[F.lit(None).cast("double").alias(f"truth_p_{c}") for c in TRADING_CLASSES])
    else:
        idx = F.when(F.col("label") == "down", 0).when(F.col("label") == "flat", 1).when(F.col("label") == "up", 2)
        labelled = features.join(truth.select("event_id", idx.alias("label"), F.col("p_down").alias("truth_p_down"),
                                              F.col("p_flat").alias("truth_p_flat"), F.col("p_up").alias("truth_p_up")),
                                 "event_id", "inner")
    return labelled.select("event_id", "event_time", "symbol", *USE_CASES["trading"].features, "label",
                           "truth_p_down", "truth_p_flat", "truth_p_up")


def loan_rows(features: DataFrame, outcomes: DataFrame) -> DataFrame:
    """Loan applications with the realised default (0/1) and the true PD."""
    return (features.join(outcomes.select("event_id", F.col("defaulted").cast("int").alias("label"),
                                          F.col("true_pd").alias("truth_p")), "event_id", "inner")
            .select("event_id", "event_time", *USE_CASES["loan_pd"].features, "label", "truth_p"))


def one_per_event(truth: DataFrame) -> DataFrame:
    """A generator truth table with one row per event id. Two generator runs with the same seed
    (a paced run to Kafka and a bronze backfill, say) write the same events' truth twice; silver
    keeps one copy of each, and so must the join, or a test row counts twice."""
    return truth.dropDuplicates(["event_id"])


def build_rows(spark: SparkSession, catalog: Catalog, use_case: UseCase,
               as_of: float | None = None, flat_bps: float = 2.0) -> tuple[DataFrame, list[dict]]:
    """The labelled rows of a use case and the lineage of every table they came from. Fraud
    and trading need no generator truth (trading then labels ticks by ``flat_bps``)."""
    feats, l1 = read_table(spark, catalog, use_case.features_table)
    if use_case.name == "fraud":
        labels, l2 = read_table(spark, catalog, "silver.tx_labels")
        try:
            truth, l3 = read_table(spark, catalog, "truth.fraud")
        except TrainingDataError:   # optional: only the ceiling reads it
            return fraud_rows(feats, labels, None, as_of, use_case.features), [l1, l2]
        return fraud_rows(feats, labels, one_per_event(truth), as_of, use_case.features), [l1, l2, l3]
    if use_case.name == "trading":
        try:
            truth, l2 = read_table(spark, catalog, "truth.trading")
        except TrainingDataError:   # a user's own ticks: labels from the next tick
            return trading_rows(feats, None, flat_bps), [l1]
        return trading_rows(feats, one_per_event(truth)), [l1, l2]
    outcomes, l2 = read_table(spark, catalog, "truth.loan_pd")
    return loan_rows(feats, one_per_event(outcomes)), [l1, l2]


# ---------------------------------------------------------------------------------------------
# Time split


@dataclass(frozen=True)
class TimeSplit:
    """Cut times of the train / validation / test periods, in epoch seconds (so no time zone
    is involved); ``embargo_s`` before each cut belongs to no period."""

    start: float
    train_end: float
    validation_end: float
    end: float
    embargo_s: float

    def period(self):
        """Column expression naming each row's period: train, validation, test or embargo."""
        t = F.col("event_time").cast("double")
        return (F.when(t >= self.validation_end, "test")
                .when((t >= self.train_end) & (t < self.validation_end - self.embargo_s), "validation")
                .when(t < self.train_end - self.embargo_s, "train")
                .otherwise("embargo"))

    def to_dict(self) -> dict:
        iso = {k: dt.datetime.fromtimestamp(getattr(self, k), dt.timezone.utc).isoformat()
               for k in ("start", "train_end", "validation_end", "end")}
        return {**iso, "embargo_s": self.embargo_s}


def time_split(rows: DataFrame, train: float, validation: float, embargo_s: float) -> TimeSplit:
    """Cut the rows' event-time range at the ``train`` and ``train + validation`` quantiles."""
    if not (0 < train < 1 and 0 < validation < 1 and train + validation < 1):
        raise ValueError(f"split shares must be positive and leave room for a test period, got train={train} validation={validation}")
    secs = F.col("event_time").cast("double")
    bounds = rows.select(F.min(secs), F.max(secs)).first()
    if bounds[0] is None:
        raise TrainingDataError("no labelled rows to split")
    q = rows.select(secs.alias("s")).approxQuantile("s", [train, train + validation], 0.0005)
    return TimeSplit(float(bounds[0]), float(q[0]), float(q[1]), float(bounds[1]), float(embargo_s))


def expanding_folds(times: pd.Series, k: int, embargo_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` time-ordered folds over rows with event times ``times`` (epoch seconds): fold i trains on the first i+1 of k+1 equal-count
    chunks and is evaluated on chunk i+2, leaving out the embargo before it."""
    if k < 1:
        raise ValueError(f"need at least one fold, got {k}")
    order = np.argsort(times.to_numpy(), kind="stable")
    chunks = np.array_split(order, k + 1)
    t = times.to_numpy(dtype=float)
    folds = []
    for i in range(k):
        train_idx = np.concatenate(chunks[: i + 1])
        eval_idx = chunks[i + 1]
        cut = t[eval_idx].min() - embargo_s
        folds.append((train_idx[t[train_idx] < cut], eval_idx))
    return folds


# ---------------------------------------------------------------------------------------------
# Leakage


def single_feature_auc(x: np.ndarray, y: np.ndarray) -> float:
    """How well one feature alone orders a binary label, folded so 0.5 is none and 1 is perfect."""
    # sklearn: +2 s at import, and serving start-up (finlake decide / score) loads this module
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(x)
    if ok.sum() < 2 or len(np.unique(y[ok])) < 2 or np.nanstd(x) == 0:
        return 0.5
    auc = roc_auc_score(y[ok], x[ok])
    return max(auc, 1 - auc)


def check_leakage(train: pd.DataFrame, features: list[str], label: str = "label", max_auc: float = 0.98) -> dict[str, float]:
    """Raise LeakageError naming every feature that is a label or truth column, or that alone
    separates the label with AUC >= ``max_auc`` (each class against the rest when multi-class).
    Returns each feature's single-feature AUC."""
    named = [f for f in features if f == label or f.startswith("truth_")]
    if named:
        raise LeakageError(f"label or truth columns used as features: {', '.join(named)}")
    y = train[label].to_numpy()
    classes = np.unique(y)
    targets = [y] if len(classes) <= 2 else [(y == c).astype(int) for c in classes]
    scores = {}
    for f in features:
        x = train[f].to_numpy(dtype=float)
        scores[f] = round(max(single_feature_auc(x, t) for t in targets), 4)
    leaks = {f: s for f, s in scores.items() if s >= max_auc}
    if leaks:
        listed = ", ".join(f"{f} (AUC {s:.3f})" for f, s in sorted(leaks.items(), key=lambda kv: -kv[1]))
        raise LeakageError(f"features that alone predict the label, most likely leaked from after the prediction time: {listed}")
    return scores
