"""The inputs of the statistical report, gathered from the lakehouse and the registry: bounded
feature samples (Spark -> pandas through Arrow), the champion's per-fold and test-period
scores, and market bars per symbol. ``stats`` computes on them; this module only fetches."""
from __future__ import annotations

import io
from dataclasses import dataclass

import mlflow.artifacts
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.config import Config
from ml import registry
from ml.datasets import UseCase, read_table


def feature_sample(spark: SparkSession, cfg: Config, use_case: UseCase, rows: int) -> tuple[pd.DataFrame, int]:
    """Up to ``rows`` rows of the use case's features, drawn uniformly; and the table's row count."""
    df, _ = read_table(spark, Catalog(cfg), use_case.features_table)
    total = df.count()
    if total > rows:
        df = df.sample(fraction=min(1.0, rows / total * 1.05), seed=11).limit(rows)
    return df.select(*use_case.features).toPandas(), total


@dataclass(frozen=True)
class ChampionEvidence:
    name: str
    version: str
    run_id: str
    folds: pd.DataFrame         # the search: fold, max_depth, learning_rate, n_estimators, metric
    baseline: pd.DataFrame      # fold, metric
    best: dict
    test_scores: pd.DataFrame   # event_id, label, <scorer> columns
    fold_metric: str


def champion_evidence(cfg: Config, use_case: UseCase) -> ChampionEvidence | None:
    """What the champion's training run logged for the tests; None when there is no champion."""
    client = registry.connect(cfg)
    name = registry.registered_name(cfg, use_case.registered_name)
    try:
        version = registry.alias_version(client, name, registry.CHAMPION)
    except Exception:  # no such registered model yet
        version = None
    if version is None:
        return None
    run = client.get_run(version.run_id)

    def csv(path: str) -> pd.DataFrame:
        return pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{path}")))

    params = run.data.params
    best = {"max_depth": int(params["best_max_depth"]), "learning_rate": float(params["best_learning_rate"]),
            "n_estimators": int(params["best_n_estimators"]),
            **({"class_weight": params["best_class_weight"]} if "best_class_weight" in params else {})}
    return ChampionEvidence(name, str(version.version), run.info.run_id, csv("search/folds.csv"), csv("search/baseline_folds.csv"),
                            best, csv("test_scores.csv"), params.get("fold_metric", use_case.fold_metric))


def best_folds(evidence: ChampionEvidence) -> pd.DataFrame:
    """Per-fold metric of the champion's setting beside the baseline's, matched by fold."""
    f = evidence.folds
    m = np.ones(len(f), dtype=bool)
    for k, v in evidence.best.items():
        m &= f[k].to_numpy() == v
    mine = f[m][["fold", "metric"]]
    return mine.merge(evidence.baseline, on="fold", suffixes=("_model", "_baseline")).sort_values("fold")


def market_bars(spark: SparkSession, cfg: Config, bar_seconds: int, max_symbols: int) -> dict[str, pd.DataFrame]:
    """Per symbol, the last mid price of each bar and the bar's log return, oldest first."""
    df, _ = read_table(spark, Catalog(cfg), "gold.market_features")
    bar = (F.floor(F.col("event_time").cast("double") / bar_seconds) * bar_seconds).alias("bar")
    bars = (df.select("symbol", bar, F.struct(F.col("event_time"), F.col("mid")).alias("tm"))
            .groupBy("symbol", "bar").agg(F.max("tm").getField("mid").alias("mid")).toPandas())
    out = {}
    for symbol in sorted(bars["symbol"].unique())[:max_symbols]:
        s = bars[bars["symbol"] == symbol].sort_values("bar").set_index("bar")["mid"]
        frame = pd.DataFrame({"mid": s})
        frame["log_return"] = np.log(frame["mid"].astype(float)).diff()
        out[symbol] = frame.dropna()
    return out
