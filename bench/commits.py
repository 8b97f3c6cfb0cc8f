"""The cost of an idempotent Delta append: a plain append (the floor), Delta's own
``txnAppId``/``txnVersion`` (what finlake used before) and finlake's ``lakehouse.commits``
(writer and batch id in the commit's ``userMetadata``), alternating, on one table.

    python -m bench.commits [--rows 300] [--appends 10]

Each append writes ``--rows`` bronze-shaped rows to a local Delta table; the three ways take
turns so the table's growth weighs on each alike. Reports each way's median and the Spark jobs
one append runs; results: bench/results/commits.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--appends", type=int, default=10, help="appends per way (after two untimed ones each)")
    p.add_argument("--out", default="commits.json")
    a = p.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse import commits
    from lakehouse.catalog import TableSpec
    from lakehouse.config import load_config
    from lakehouse.metrics import machine
    from lakehouse.session import build_session

    cfg = load_config(None, [])
    spark = build_session(cfg, app_name="finlake-bench-commits")
    sc, tracker = spark.sparkContext, spark.sparkContext.statusTracker()
    root = Path(tempfile.mkdtemp(prefix="commits-", dir=cfg.path("paths.cache")))
    spec = TableSpec("bench.commits", "bench", "commits", str(root / "t"), str(root / "ckpt"), None, (), None, "")
    rows = spark.range(a.rows).select(F.col("id"), F.sha2(F.col("id").cast("string"), 256).alias("payload"),
                                      F.current_timestamp().alias("ingest_time")).localCheckpoint()
    app = commits.app_id(spec.checkpoint, "bench")

    def plain(i):
        rows.write.format("delta").mode("append").save(spec.location)

    def delta_txn(i):
        rows.write.format("delta").mode("append").option("txnAppId", "bench-txn").option("txnVersion", i).save(spec.location)

    def finlake(i):
        commits.idempotent_append(rows, spec, app, i)

    ways = {"plain_append": plain, "delta_txnAppId": delta_txn, "finlake_commits": finlake}
    times = {w: [] for w in ways}
    jobs = {}
    for i in range(a.appends + 2):
        for name, fn in ways.items():
            group = f"{name}-{i}"
            sc.setJobGroup(group, group)
            t = time.perf_counter()
            fn(i)
            if i >= 2:
                times[name].append(time.perf_counter() - t)
                jobs[name] = len(tracker.getJobIdsForGroup(group))
    out = {"machine": machine(), "rows": a.rows, "appends": a.appends,
           "median_s": {w: round(statistics.median(v), 3) for w, v in times.items()},
           "runs_s": {w: [round(x, 3) for x in v] for w, v in times.items()}, "spark_jobs_per_append": jobs}
    out["finlake_over_plain"] = round(out["median_s"]["finlake_commits"] / out["median_s"]["plain_append"], 2)
    out["delta_txn_over_plain"] = round(out["median_s"]["delta_txnAppId"] / out["median_s"]["plain_append"], 2)
    path = ROOT / "bench" / "results" / a.out
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("median_s", "spark_jobs_per_append", "finlake_over_plain", "delta_txn_over_plain")}))
    print(f"bench.commits: results in {path}")
    spark.stop()
    return out


if __name__ == "__main__":
    main()
