"""Scoring in the JVM against scoring in Python, on the same rows and the same booster, beside
raw ``inplace_predict`` taken in the same run.

    python -m bench.jvm_scoring                  # 100,000 rows, 35 features, 150 trees of depth 6

- raw: ``booster.inplace_predict`` on a float64 pandas frame in the driver (both cores);
- Python in Spark: ``mapInPandas`` with the same booster (Arrow to Python and back), the way
  the decision path's scoring step runs, without its calibration, threshold and alerts;
- JVM in Spark: ``finlake.Trees``, the booster's JSON model evaluated by a Java SQL function
  on an ``array<double>`` of the features;
- JVM scorer in Spark: ``finlake.Scorer``, the served version as the decision path needs it
  (the trees, an isotonic calibration map, the threshold on the expected loss: score,
  decision, threshold, model name and version per row).
Each Spark variant writes to the ``noop`` sink; best of 3 after a warm-up. The Spark floor reads
the same rows and every feature column (their ``greatest``) into the same sink. The JVM scores must
equal the booster's (largest absolute difference printed; 10% of the values are missing).
Results: bench/results/jvm_scoring.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def booster_and_rows(rows: int, n_features: int, rounds: int, depth: int, seed: int = 0):
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(n_features)]
    x = rng.normal(size=(20000, n_features))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * 0.5 + rng.normal(size=len(x)) > 1.5).astype(int)
    booster = xgb.train({"max_depth": depth, "objective": "binary:logistic", "eta": 0.1},
                        xgb.DMatrix(x, y, feature_names=names), rounds)
    xs = rng.normal(size=(rows, n_features))
    xs[rng.random(xs.shape) < 0.1] = np.nan
    frame = pd.DataFrame(xs, columns=names)
    frame.insert(0, "id", np.arange(rows, dtype="int64"))
    return booster, frame, names


def best_rate(fn, rows: int, tries: int = 3) -> float:
    fn()   # warm-up
    best = 0.0
    for _ in range(tries):
        t = time.perf_counter()
        fn()
        best = max(best, rows / (time.perf_counter() - t))
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100000)
    p.add_argument("--features", type=int, default=35)
    p.add_argument("--rounds", type=int, default=150)
    p.add_argument("--depth", type=int, default=6)
    a = p.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse.config import load_config
    from lakehouse.session import build_session

    cfg = load_config(None, [])
    spark = build_session(cfg, app_name="finlake-bench-jvm-scoring")
    booster, frame, names = booster_and_rows(a.rows, a.features, a.rounds, a.depth)
    model_json = booster.save_raw("json").decode()
    spark.sparkContext._jvm.finlake.Trees.register(spark._jsparkSession, "finlake_trees", model_json)
    df = spark.createDataFrame(frame).localCheckpoint(eager=True)

    raw = booster.save_raw("ubj")

    def score_partitions(batches):
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(bytearray(raw))
        for pdf in batches:
            yield pd.DataFrame({"id": pdf["id"], "score": b.inplace_predict(pdf[names].astype("float64"))})

    python_df = df.mapInPandas(score_partitions, "id long, score double")
    jvm_df = df.select("id", F.expr(f"finlake_trees(array({', '.join(names)}))").alias("score"))
    from ml import calibration
    from ml.scoring import LoadedModel, jvm_score, register_jvm_scorer

    fit_rows = frame[names].iloc[:5000]
    cal = calibration.fit("isotonic", (np.nan_to_num(fit_rows[names[0]].to_numpy()) > 1.0).astype(int), booster.inplace_predict(fit_rows))
    served = LoadedModel("bench", "1", tuple(names), 25.0, (), bytes(raw), cal, "expected_loss")
    register_jvm_scorer(spark, "finlake_bench_scorer", served)
    scorer_df = df.withColumn("amount", F.abs(F.col(names[1])) * 100).select(
        "id", jvm_score("finlake_bench_scorer", tuple(names), "amount").alias("s")).select("id", "s.*")
    x = frame[names].astype("float64")
    results = {
        "rows": a.rows, "features": a.features, "trees": a.rounds, "depth": a.depth, "cpus": os.cpu_count(),
        "raw_inplace_predict_rows_per_s": round(best_rate(lambda: booster.inplace_predict(x), a.rows)),
        "python_mapinpandas_rows_per_s": round(best_rate(lambda: python_df.write.format("noop").mode("overwrite").save(), a.rows)),
        "jvm_trees_rows_per_s": round(best_rate(lambda: jvm_df.write.format("noop").mode("overwrite").save(), a.rows)),
        "jvm_scorer_rows_per_s": round(best_rate(lambda: scorer_df.write.format("noop").mode("overwrite").save(), a.rows)),
        # The Spark floor: the same rows read and written to noop, every feature column read.
        "spark_scan_floor_rows_per_s": round(best_rate(
            lambda: df.select("id", F.greatest(*names).alias("any")).write.format("noop").mode("overwrite").save(), a.rows)),
    }
    expected = booster.inplace_predict(x)
    got = jvm_df.toPandas().sort_values("id")["score"].to_numpy()
    results["jvm_max_abs_diff"] = float(np.max(np.abs(got - expected)))
    for k in ("python_mapinpandas", "jvm_trees", "jvm_scorer"):
        results[f"{k}_share_of_raw"] = round(results[f"{k}_rows_per_s"] / results["raw_inplace_predict_rows_per_s"], 4)
    out = ROOT / "bench" / "results" / "jvm_scoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results), flush=True)
    if results["jvm_max_abs_diff"] > 1e-6:
        print(f"bench.jvm_scoring: error: the JVM's scores differ from the booster's by {results['jvm_max_abs_diff']:.3g}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
