"""Silver's batch taken apart, on bronze rows that need no broker.

    python -m bench.silver --rows 200000 --runs 4            # record: bench/results/silver_batch.json

Lands ``--rows`` generated events straight in bronze (``jobs.produce --mode bronze``, seed 7) in a
new home, reads every stream's bronze rows as one persisted batch (what the ingest query's
``foreachBatch`` gets) and then:
- steps: on the largest stream's rows, each of ``SilverBatch``'s own transforms timed alone
  (the bronze scan, + the JVM parse, + the rules, + the persist; then the counts' aggregation
  over the persisted rows), each a full pass to Spark's ``noop`` sink or one ``first()``;
- batch: the whole silver batch of every stream (``IngestBatch`` with ``layers=("silver",)``),
  silver, quarantine and ``ops.dq_results`` emptied before each run, once with
  ``pipeline.ingest_threads`` threads and once with one; per stream its rows, stage and phases.
Every figure is kept per run; the first run of each is a cold JVM's. The limit in the same run:
the bronze scan (the rows already in memory, counted).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

from bench.pipeline import RESULTS
from lakehouse.metrics import machine


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 3)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Silver's batch taken apart, on bronze rows.")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--env", default=None)
    p.add_argument("--out", default="silver_batch.json")
    args = p.parse_args(argv)

    import os

    from pyspark.sql import functions as F

    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.pipeline import IngestBatch, SilverBatch
    from lakehouse.session import build_session
    from lakehouse.topology import STREAMS

    home = Path(tempfile.mkdtemp(prefix="finlake-bench-silver-"))
    env = {**os.environ, "FINLAKE_HOME": str(home)}
    produce = [sys.executable, "-m", "jobs.produce", "--mode", "bronze", "--count", str(args.rows), "--rate", "max", "--seed", "7",
               *(["--env", args.env] if args.env else [])]
    subprocess.run(produce, env=env, check=True, stdout=subprocess.DEVNULL)
    cfg = load_config(args.env, [], home=home)
    spark = build_session(cfg, app_name="finlake-bench-silver")
    catalog = Catalog(cfg)
    streams = [s for s in STREAMS if Path(catalog.spec(f"bronze.{s}").location).exists()]
    bronze = {s: spark.read.format("delta").load(catalog.spec(f"bronze.{s}").location).drop("ingest_time", "ingest_date")
              for s in streams}
    batch = reduce(lambda a, b: a.unionByName(b), bronze.values()).persist()
    per_stream = {r["topic"]: r["n"] for r in batch.groupBy("topic").agg(F.count("*").alias("n")).collect()}
    largest = max(per_stream, key=per_stream.get)
    result = {"command": "python -m bench.silver " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "rows": sum(per_stream.values()), "rows_per_stream": per_stream,
              "limit_bronze_scan_s": [], "steps": {"stream": largest, "rows": per_stream[largest]}, "batch": {}}

    noop = lambda df: df.write.format("noop").mode("overwrite").save()   # noqa: E731
    rows = batch.where(F.col("topic") == largest)
    fn = SilverBatch(cfg, largest, str(home / "steps"))
    steps = {"bronze scan": lambda: noop(rows),
             "+ JVM parse": lambda: noop(rows.transform(fn._parse)),
             "+ rules": lambda: noop(rows.transform(fn._parse).transform(fn._rules))}
    for name, step in steps.items():
        result["steps"][name] = [_seconds(step) for _ in range(args.runs)]
    result["steps"]["+ persist"], result["steps"]["counts on the persisted rows"] = [], []
    for _ in range(args.runs):
        parsed = rows.transform(fn._parse).transform(fn._rules).persist()
        result["steps"]["+ persist"].append(_seconds(parsed.count))
        result["steps"]["counts on the persisted rows"].append(_seconds(lambda: parsed.agg(*fn._counts).first()))
        parsed.unpersist()

    topics = dict(zip(per_stream, per_stream))   # bronze rows carry the stream's name as their topic
    for threads in sorted({int(cfg["pipeline.ingest_threads"]), 1}, reverse=True):
        runs = []
        tcfg = load_config(args.env, [f"pipeline.ingest_threads={threads}"], home=home)
        for i in range(args.runs):
            for layer in ("silver", "quarantine"):
                for s in streams:
                    shutil.rmtree(catalog.spec(f"{layer}.{s}").location, ignore_errors=True)
            shutil.rmtree(catalog.spec("ops.dq_results").location, ignore_errors=True)
            catalog.register(spark, [f"{layer}.{s}" for layer in ("silver", "quarantine") for s in streams] + ["ops.dq_results"])
            ingest = IngestBatch(tcfg, topics, str(home / f"ckpt_{threads}_{i}"), layers=("silver",))
            seconds = _seconds(lambda: ingest(batch, 1))
            record = ingest.history[-1]
            runs.append({"seconds": seconds, "read_ms": record["read_ms"], "dq_ms": record["dq_ms"],
                         "streams": {s: {"rows": r["rows"], "stage_ms": r["silver_stage_ms"], "phases_ms": r.get("silver_phases_ms")}
                                     for s, r in record["streams"].items()}})
            result["limit_bronze_scan_s"].append(_seconds(lambda: noop(batch)))
        result["batch"][f"threads_{threads}"] = runs
    out = RESULTS / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "batch"}, indent=2))
    for key, runs in result["batch"].items():
        print(key, "seconds per run:", [r["seconds"] for r in runs])
    print(f"bench.silver: record in {out}")
    spark.stop()
    shutil.rmtree(home, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
