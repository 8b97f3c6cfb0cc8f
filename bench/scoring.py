"""Benchmark streaming scoring on this machine (a benchmark, not a test).

    python -m bench.scoring --rows 100000                  # foreachBatch rate against raw inplace_predict

Throughput: the fraud champion scores the same gold feature rows twice in one run: raw
``inplace_predict`` on a pandas frame in this process (the limit), and the scoring
``foreachBatch`` function (gate, Arrow batches through ``mapInPandas``, Delta commit) on a
Spark DataFrame of those rows. Needs a fraud champion (jobs/train.py); the scores go to a
state of their own. Kafka -> committed score latency under load is measured by the benchmark
harness (``python -m bench.run``), which runs the whole stack.
"""
from __future__ import annotations

import json
import sys
import time

from jobs import common
from lakehouse.metrics import machine


def throughput(spark, cfg, bcfg, rows: int, repeats: int) -> dict:
    from lakehouse.catalog import Catalog
    from ml import registry
    from ml.datasets import USE_CASES
    from ml.scoring import Champion, ScoreBatch

    model = Champion(cfg, USE_CASES["fraud"]).current()
    gold = spark.read.format("delta").load(Catalog(cfg).spec("gold.card_features").location).limit(rows).cache()
    n = gold.count()
    pdf = gold.toPandas()
    x = pdf[list(model.features)].astype("float64")
    booster = registry.load_booster(model.name, model.version)
    booster.inplace_predict(x.head(100))
    raw = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        booster.inplace_predict(x)
        raw.append(n / (time.perf_counter() - t0))
    fn = ScoreBatch(bcfg, "fraud", str(bcfg.home / "checkpoints" / "bench_scoring"), alerts=False)
    fn(gold.limit(100), 0)  # warm the Python workers and the gate
    piped = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(gold, i + 1)
        piped.append(n / (time.perf_counter() - t0))
    best_raw, best_piped = max(raw), max(piped)
    return {"rows": n, "model": f"{model.name} v{model.version}", "raw_inplace_predict_rows_per_s": round(best_raw),
            "foreach_batch_rows_per_s": round(best_piped), "share_of_raw_pct": round(100 * best_piped / best_raw, 2),
            "runs": repeats}


def run(spark, cfg, args) -> dict:
    from lakehouse.config import load_config

    tag = f"benchscore{int(time.time())}_"
    home = cfg.home / "bench" / tag.rstrip("_")
    # The bench state is separate; the registry (and its champion) is the user's.
    bcfg = load_config(cfg.env, list(args.conf) + [f"kafka.topic_prefix={tag}", f"ml.mlflow.tracking_uri={cfg['ml.mlflow.tracking_uri']}"],
                       home=home)
    result = {"machine": machine(), "throughput": throughput(spark, cfg, bcfg, args.rows, args.repeats)}
    print(json.dumps(result, indent=2))
    return result


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--rows", type=int, default=100000, help="throughput run: feature rows to score")
    p.add_argument("--repeats", type=int, default=3, help="throughput run: timed repetitions (best is reported)")
    result = common.execute(p, argv, run, app_name="finlake-bench-scoring")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
