"""finlake.Scorer: a served version scored in the JVM equals ``ml.scoring.predict`` (the Python
scorer: ``inplace_predict``, the calibration map, the threshold on the score or the expected
loss) on the three objectives finlake trains, and a served spec replaced on disk serves the new
version in the same plan."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from ml import calibration
from ml.datasets import USE_CASES
from ml.scoring import LoadedModel, jvm_score, predict, register_jvm_scorer, write_served

FEATURES = tuple(f"f{i}" for i in range(6))
CLASSES = ("down", "flat", "up")


def _train(objective: str, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, len(FEATURES)))
    x[rng.random(x.shape) < 0.15] = np.nan
    signal = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 3]) + rng.normal(size=len(x)) * 0.7
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "seed": seed}
    if objective == "multi:softprob":
        y, params["num_class"] = np.digitize(signal, [-0.5, 0.5]), 3
    elif objective == "binary:logistic":
        y = (signal > 1.2).astype(int)
    else:   # reg:logistic: a probability of default
        y = 1 / (1 + np.exp(-signal))
    booster = xgb.train(params, xgb.DMatrix(x, y, feature_names=list(FEATURES)), 30)
    return booster, x, y


def _clear_threshold(values: np.ndarray) -> float:
    """A threshold that decides about a tenth of the rows and sits mid-way in the widest gap
    between two of their values (isotonic calibration makes steps: a threshold on one would
    leave the decision to the last bit of a float)."""
    v = np.unique(values[~np.isnan(values)])
    lo, hi = np.searchsorted(v, np.quantile(values[~np.isnan(values)], [0.8, 0.95]))
    gaps = np.diff(v[lo:hi + 1])
    i = lo + int(np.argmax(gaps))
    return float((v[i] + v[i + 1]) / 2)


def _model(objective: str, seed: int, version: str, threshold_on: str = "score", rows: pd.DataFrame | None = None) -> LoadedModel:
    booster, x, y = _train(objective, seed)
    cal, threshold, classes = calibration.NONE, None, ()
    if objective == "binary:logistic":
        cal = calibration.fit("isotonic", y, booster.inplace_predict(x))
        rows = _rows() if rows is None else rows
        p = cal.apply(booster.inplace_predict(rows[list(FEATURES)]))
        threshold = _clear_threshold(p if threshold_on == "score" else p * rows["amount"].to_numpy())
    elif objective == "multi:softprob":
        classes = CLASSES
    return LoadedModel("finlake-test", version, FEATURES, threshold, classes, bytes(booster.save_raw("ubj")), cal, threshold_on)


def _rows(n: int = 1500, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))) * 1.3
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:4] = [[np.nan] * 6, [0.0] * 6, [1e9] * 6, [-1e9] * 6]
    frame = pd.DataFrame(x, columns=list(FEATURES))
    frame.insert(0, "id", np.arange(n, dtype="int64"))
    amount = np.round(rng.lognormal(4, 1.2, n), 2)
    frame["amount"] = np.where(rng.random(n) < 0.05, np.nan, amount)
    return frame


def _frame(spark, rows: pd.DataFrame, stored=None):
    """The rows as a DataFrame; with ``stored`` (a folder), read from Parquet files there: a plan
    that reads its source again at each run, as a streaming plan does each batch (over local
    rows Spark's optimizer evaluates the whole projection once while it plans, and the plan
    keeps those answers)."""
    df = spark.createDataFrame(rows)
    if stored is not None:
        df.write.parquet(str(stored))
        df = spark.read.parquet(str(stored))
    # Half of the missing values as SQL nulls, half as NaN: both are missing to the booster.
    return df.select(
        "id", *[F.when(F.col("id") % 2 == 0, F.col(n)).otherwise(F.when(~F.isnan(n), F.col(n))).alias(n) for n in FEATURES],
        F.when(~F.isnan("amount"), F.col("amount")).cast("decimal(18,2)").alias("amount"))


SCHEMA = StructType([StructField("id", LongType()), StructField("score", DoubleType()),
                     StructField("probabilities", ArrayType(DoubleType(), False)), StructField("decision", StringType()),
                     StructField("threshold", DoubleType()), StructField("model_name", StringType()),
                     StructField("model_version", StringType())])


def _expected(spark, model: LoadedModel, kind: str, rows: pd.DataFrame):
    """The Python scorer's outputs for ``rows``, in the JVM scorer's columns."""
    use_case = next(u for u in USE_CASES.values() if u.kind == kind)
    booster = xgb.Booster()
    booster.load_model(bytearray(model.raw))
    out = predict(booster, rows, use_case, model)
    n = len(rows)
    none = [None] * n
    if kind == "multiclass":
        probs = np.column_stack([out[f"p_{c}"] for c in model.classes]).tolist()
        cols = (none, probs, list(out["signal"]), none)
    elif kind == "binary":
        cols = (out["score"].tolist(), none, list(out["decision"]), [None if np.isnan(t) else float(t) for t in out["threshold"]])
    else:
        cols = (out["pd"].tolist(), none, none, none)
    data = [(int(i), *(c[k] for c in cols), model.name, model.version) for k, i in enumerate(rows["id"])]
    return spark.createDataFrame(data, SCHEMA)


def _scored(df, name: str):
    return df.select("id", jvm_score(name, FEATURES, "amount").alias("s")).select("id", "s.*")


@pytest.mark.parametrize("objective, kind, threshold_on", [
    ("binary:logistic", "binary", "score"),
    ("binary:logistic", "binary", "expected_loss"),
    ("multi:softprob", "multiclass", "score"),
    ("reg:logistic", "pd", "score"),
])
def test_the_jvm_scorer_equals_the_python_scorer(spark, objective, kind, threshold_on):
    rows = _rows()
    model = _model(objective, 3, "4", threshold_on, rows)
    name = f"finlake_test_scorer_{kind}_{threshold_on}"
    register_jvm_scorer(spark, name, model)
    got = _scored(_frame(spark, rows), name)
    expected = _expected(spark, model, kind, rows)
    if kind == "binary":
        assert expected.where(F.col("decision") == "alert").count() > 50   # the threshold decides something
    assertDataFrameEqual(got, expected, checkRowOrder=False, rtol=0, atol=1e-6)


def test_a_served_spec_replaced_on_disk_serves_the_new_version_in_the_same_plan(spark, tmp_path):
    rows = _rows(300)
    v1, v2 = _model("binary:logistic", 3, "1", rows=rows), _model("binary:logistic", 11, "2", rows=rows)
    served = str(tmp_path / "serving" / "fraud.json")
    write_served(served, v1)
    register_jvm_scorer(spark, "finlake_test_served", served=served, refresh_s=0.2)
    plan = _scored(_frame(spark, rows, stored=tmp_path / "rows"), "finlake_test_served")
    assertDataFrameEqual(plan, _expected(spark, v1, "binary", rows), checkRowOrder=False, rtol=0, atol=1e-6)
    write_served(served, v2)
    time.sleep(0.5)
    assertDataFrameEqual(plan, _expected(spark, v2, "binary", rows), checkRowOrder=False, rtol=0, atol=1e-6)


def test_a_spec_that_does_not_match_its_model_fails_on_the_driver_in_one_line(spark):
    from pyspark.errors import IllegalArgumentException   # pyspark's own, for the JVM's

    bad = _model("multi:softprob", 3, "9")
    bad = LoadedModel(bad.name, bad.version, bad.features, None, ("down", "up"), bad.raw)
    with pytest.raises(IllegalArgumentException, match="has 3 class outputs but 2 class names"):
        register_jvm_scorer(spark, "finlake_test_bad", bad)


def test_a_moved_champion_alias_is_served_by_the_same_plan(spark, overrides, tmp_path):
    """The registry's champion, written to the served spec by ``ServedChampion``, scores rows in
    a plan built before the alias moved; after the move, the same plan scores with the new one."""
    import mlflow

    from lakehouse.config import load_config
    from ml import registry
    from ml.scoring import ServedChampion

    cfg = load_config("local", overrides, home=tmp_path / "home")
    client = registry.connect(cfg)
    name = registry.registered_name(cfg, USE_CASES["fraud"].registered_name)
    rows = _rows(300)
    versions = {}
    for seed in (3, 11):
        model = _model("binary:logistic", seed, "0", rows=rows)
        booster = xgb.Booster()
        booster.load_model(bytearray(model.raw))
        x = rows[list(FEATURES)].head(3)
        with mlflow.start_run(experiment_id=registry.experiment(cfg, client, "fraud")):
            v = registry.log_booster(client, booster, name, x, booster.inplace_predict(x),
                                     {"features": json.dumps(list(FEATURES)), "threshold": str(model.threshold),
                                      "classes": "[]"})
        versions[v] = model
    first, second = sorted(versions, key=int)
    client.set_registered_model_alias(name, registry.CHAMPION, first)
    served = ServedChampion(cfg, USE_CASES["fraud"], str(tmp_path / "serving" / "fraud.json"))
    served.refresh()
    register_jvm_scorer(spark, "finlake_test_champion", served=served.path, refresh_s=0.2)
    plan = _scored(_frame(spark, rows, stored=tmp_path / "rows"), "finlake_test_champion")

    def expected(version):
        m = versions[version]
        return _expected(spark, LoadedModel(name, version, FEATURES, m.threshold, (), m.raw), "binary", rows)

    assertDataFrameEqual(plan, expected(first), checkRowOrder=False, rtol=0, atol=1e-6)
    assert served.refresh().version == first   # the alias has not moved: nothing is rewritten
    client.set_registered_model_alias(name, registry.CHAMPION, second)
    assert served.refresh().version == second
    time.sleep(0.5)
    assertDataFrameEqual(plan, expected(second), checkRowOrder=False, rtol=0, atol=1e-6)


def test_a_served_version_picks_its_features_by_name_from_the_plans_columns(spark, tmp_path):
    """A decision plan hands the scorer every feature column it computes, in its own order
    (``register_jvm_scorer(columns=...)``): each served version takes its features by name, and
    a version needing a column the plan lacks does not replace the one served."""
    import dataclasses

    rows = _rows(400)
    model = _model("binary:logistic", 5, "1", rows=rows)
    served = str(tmp_path / "serving" / "by_name.json")
    write_served(served, model)
    columns = ("extra", *reversed(FEATURES))   # another order, and a column the model does not use
    register_jvm_scorer(spark, "finlake_test_by_name", served=served, refresh_s=0.2, columns=columns)
    frame = _frame(spark, rows).withColumn("extra", F.lit(123.0))
    plan = frame.select("id", jvm_score("finlake_test_by_name", columns, "amount").alias("s")).select("id", "s.*")
    assertDataFrameEqual(plan, _expected(spark, model, "binary", rows), checkRowOrder=False, rtol=0, atol=1e-6)

    lacking = dataclasses.replace(model, version="2", features=(*FEATURES[:-1], "not_there"))
    write_served(served, lacking)
    time.sleep(0.5)
    assert {r.model_version for r in plan.select("model_version").distinct().collect()} == {"1"}
