"""finlake.Trees: an xgboost booster's JSON model evaluated in the JVM as a Spark SQL function
gives the booster's own scores, missing values included (bench/jvm_scoring.py measures it)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _booster(objective: str, seed: int = 0, **params):
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.15] = np.nan
    signal = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 3]) + rng.normal(size=len(x)) * 0.5
    y = (signal > 0.3).astype(int) if objective != "reg:squarederror" else signal
    names = [f"f{i}" for i in range(6)]
    booster = xgb.train({"objective": objective, "max_depth": 4, "eta": 0.3, **params}, xgb.DMatrix(x, y, feature_names=names), 40)
    return booster, names


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:logistic", "reg:squarederror"])
def test_jvm_trees_score_as_the_booster_does(spark, objective):
    from pyspark.sql import functions as F

    booster, names = _booster(objective)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 6))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:5] = [[np.nan] * 6, [0.0] * 6, [1e9] * 6, [-1e9] * 6, [np.nan, 0.0, np.nan, 0.0, np.nan, 0.0]]
    frame = pd.DataFrame(x, columns=names)
    frame.insert(0, "id", np.arange(len(frame)))
    spark.sparkContext._jvm.finlake.Trees.register(spark._jsparkSession, "finlake_test_trees", booster.save_raw("json").decode())
    # NaN from pandas arrives in Spark as NaN; make half of the missing values SQL nulls too.
    df = spark.createDataFrame(frame).select("id", *[F.when(F.col("id") % 2 == 0, F.col(n)).otherwise(
        F.when(~F.isnan(n), F.col(n))).alias(n) for n in names])
    got = df.select("id", F.expr(f"finlake_test_trees(array({', '.join(names)}))").alias("score")).toPandas().sort_values("id")
    np.testing.assert_allclose(got["score"].to_numpy(), booster.inplace_predict(frame[names]), rtol=0, atol=1e-6)


def test_jvm_trees_send_a_multiclass_model_to_the_scorer_in_one_line(spark):
    from pyspark.errors import IllegalArgumentException   # pyspark's own, for the JVM's

    booster, _ = _booster("multi:softprob", num_class=3)
    with pytest.raises(IllegalArgumentException, match="finlake.Trees: objective multi:softprob gives one probability per class: serve it with finlake.Scorer"):
        spark.sparkContext._jvm.finlake.Trees.register(spark._jsparkSession, "finlake_test_multi", booster.save_raw("json").decode())
