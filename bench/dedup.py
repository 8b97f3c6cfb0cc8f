"""Deduplication by event id: Spark's state store (``dropDuplicatesWithinWatermark`` on RocksDB)
against what silver does today (a lookup of silver's ``event_id`` column for the batch's ids,
plus a distinct count of the batch's ids), per micro-batch, as silver grows.

    python -m bench.dedup --silver-rows 1000000 --batches 10 --batch-rows 20000

A folder of Parquet files (one per micro-batch) is streamed three ways, one file a batch:
- pass-through: the batch is counted (the floor);
- state: ``withWatermark(event_time, 1 hour).dropDuplicatesWithinWatermark([event_id])``, counted;
- lookup: in ``foreachBatch``, the batch's ids semi-joined with a Delta table of ``--silver-rows``
  rows, and the batch's distinct ids counted (silver's ``_existing`` and ``valid_ids``).
Each figure is the median batch time after the first. Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--silver-rows", type=int, default=1_000_000)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch-rows", type=int, default=20_000)
    p.add_argument("--env", default=None)
    args = p.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse.config import load_config
    from lakehouse.session import build_session

    cfg = load_config(args.env, [])
    spark = build_session(cfg, app_name="finlake-bench-dedup")
    root = Path(tempfile.mkdtemp(prefix="dedup-", dir=cfg.path("paths.cache")))

    def events(start, n):
        ids = spark.range(start, start + n)
        return ids.select(F.sha2(F.col("id").cast("string"), 256).substr(1, 32).alias("event_id"),
                          (F.lit(1_780_000_000) + F.col("id") / 1000).cast("timestamp").alias("event_time"),
                          (F.col("id") % 1000).cast("double").alias("amount"))

    silver = str(root / "silver")
    events(10**9, args.silver_rows).write.format("delta").save(silver)
    for b in range(args.batches):
        # Each batch repeats 1% of the previous batch's ids (replays), the rest is new.
        start = b * args.batch_rows
        events(start - args.batch_rows // 100 if b else start, args.batch_rows).repartition(2) \
            .write.mode("overwrite").parquet(str(root / "in" / f"b={b:04d}"))
    schema = "event_id string, event_time timestamp, amount double"

    def source():
        return (spark.readStream.schema(schema).option("maxFilesPerTrigger", 2).option("recursiveFileLookup", "true")
                .parquet(str(root / "in")))

    def timed(name, df=None, fn=None):
        writer = (df if df is not None else source()).writeStream.option("checkpointLocation", str(root / "ck" / name))
        writer = writer.foreachBatch(fn) if fn else writer.format("noop")
        q = writer.trigger(availableNow=True).start()
        q.awaitTermination()
        ms = [p["durationMs"]["triggerExecution"] for p in q.recentProgress if p["numInputRows"] > 0]
        return {"batches": len(ms), "median_ms": round(statistics.median(ms[1:] or ms)), "first_ms": ms[0] if ms else None}

    out = {"silver_rows": args.silver_rows, "batch_rows": args.batch_rows, "batches": args.batches}
    out["pass_through"] = timed("pass")
    out["state"] = timed("state", source().withWatermark("event_time", "1 hour").dropDuplicatesWithinWatermark(["event_id"]))
    lookups = []

    def lookup(batch, batch_id):
        t = time.perf_counter()
        table = spark.read.format("delta").load(silver)
        table.select("event_id").join(batch.select("event_id"), "event_id", "left_semi").distinct().collect()
        batch.agg(F.count_distinct("event_id")).first()
        lookups.append(round((time.perf_counter() - t) * 1000))

    out["lookup"] = timed("lookup", fn=lookup)
    out["lookup"]["lookup_ms_median"] = round(statistics.median(lookups[1:] or lookups))
    print(json.dumps(out, indent=2))
    print("FINLAKE_RESULT " + json.dumps(out))
    spark.stop()
    return out


if __name__ == "__main__":
    main()
