"""Benchmark streaming scoring on this machine (a benchmark, not a test).

    python jobs/bench_scoring.py --rows 100000                  # foreachBatch rate against raw inplace_predict
    python jobs/bench_scoring.py --rate 500 --duration 60       # Kafka -> committed score latency at an offered rate

Throughput: the fraud champion scores the same gold feature rows twice in one run: raw
``inplace_predict`` on a pandas frame in this process (the limit), and the scoring
``foreachBatch`` function (gate, Arrow batches through ``mapInPandas``, Delta commit) on a
Spark DataFrame of those rows. Latency: a paced producer feeds transactions and user events
while bronze, silver, gold and scoring queries run continuously; each score's delay is the
commit time of the Delta version that added it minus its Kafka timestamp. Needs a fraud
champion (jobs/train.py). Every run uses its own topic prefix and state.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time

from jobs import common
from jobs.bench_pipeline import _produce_into, latency_stats, machine


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


def latency(spark, cfg, bcfg, rate: float, duration: float, drain: float, trigger: str) -> dict:
    from lakehouse.catalog import Catalog
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.streaming import start_bronze, start_gold, start_silver
    from ml.scoring import start_scoring

    ensure_broker(bcfg)
    ensure_topics(bcfg)
    catalog = Catalog(bcfg)
    streams = ["transactions", "user_events"]
    catalog.register(spark, [f"{l}.{s}" for l in ("bronze", "silver", "quarantine") for s in streams] + ["ops.dq_results"])
    queries = [start_bronze(spark, bcfg, f"bronze.{s}", processing_time=trigger) for s in streams]
    queries += [start_silver(spark, bcfg, s, processing_time=trigger) for s in streams]
    queries.append(start_gold(spark, bcfg, "gold.card_features", processing_time=trigger))
    # gold.card_features must exist before the scoring query can read it.
    deadline = time.monotonic() + 120
    ctx = mp.get_context("fork")
    sent = ctx.Queue()
    producer = ctx.Process(target=_produce_into, args=(sent, bcfg, ",".join(streams), None, rate, duration, 13))
    producer.start()
    from delta.tables import DeltaTable

    while not DeltaTable.isDeltaTable(spark, catalog.spec("gold.card_features").location) and time.monotonic() < deadline:
        time.sleep(1)
    score_q, fn = start_scoring(spark, bcfg, "fraud", processing_time=trigger, alerts=True)
    per_topic = sent.get()
    producer.join()
    time.sleep(drain)
    for q in [*queries, score_q]:
        q.stop()
    stats = latency_stats(spark, catalog.spec("gold.fraud_scores").location)
    stats["sent"] = per_topic.get("transactions", 0)
    stats["completeness_pct"] = round(100.0 * stats["rows"] / stats["sent"], 2) if stats["sent"] else None
    stats["offered_rate"] = rate
    stats["transactions_per_s"] = round(stats["sent"] / duration, 1)
    stats["batches"] = len(fn.history)
    return stats


def run(spark, cfg, args) -> dict:
    from lakehouse.config import load_config

    tag = f"benchscore{int(time.time())}_"
    home = cfg.home / "bench" / tag.rstrip("_")
    # The bench state is separate; the registry (and its champion) is the user's.
    bcfg = load_config(cfg.env, list(args.conf) + [f"kafka.topic_prefix={tag}", f"ml.mlflow.tracking_uri={cfg['ml.mlflow.tracking_uri']}"],
                       home=home)
    result = {"machine": machine()}
    if args.rate:
        result["latency"] = latency(spark, cfg, bcfg, args.rate, args.duration, args.drain, args.trigger)
    else:
        result["throughput"] = throughput(spark, cfg, bcfg, args.rows, args.repeats)
    print(json.dumps(result, indent=2))
    return result


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--rows", type=int, default=100000, help="throughput run: feature rows to score")
    p.add_argument("--repeats", type=int, default=3, help="throughput run: timed repetitions (best is reported)")
    p.add_argument("--rate", type=float, default=None, help="latency run: offered messages per second (transactions and user events)")
    p.add_argument("--duration", type=float, default=60.0, help="latency run: seconds of load")
    p.add_argument("--drain", type=float, default=45.0, help="latency run: seconds to let the queries finish after the load")
    p.add_argument("--trigger", default="1 second", help="latency run: processing-time trigger of every query")
    result = common.execute(p, argv, run, app_name="finlake-bench-scoring")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
