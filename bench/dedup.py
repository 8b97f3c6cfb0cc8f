"""Deduplication by event id: Spark's state store (``dropDuplicatesWithinWatermark`` on RocksDB)
against what silver does today (a lookup of silver's ``event_id`` column for the batch's ids,
plus a distinct count of the batch's ids), per micro-batch, as silver grows; and that lookup
within silver's ``pipeline.dedup_horizon_s`` of the batch's event times.

    python -m bench.dedup --silver-rows 1000000 --batches 10 --batch-rows 20000

A folder of Parquet files (one per micro-batch) is streamed three ways, one file a batch:
- pass-through: the batch is counted (the floor);
- state: ``withWatermark(event_time, 1 hour).dropDuplicatesWithinWatermark([event_id])``, counted;
- lookup: in ``foreachBatch``, the batch's ids semi-joined with a Delta table of ``--silver-rows``
  rows, and the batch's distinct ids counted (silver's ``_existing`` and ``valid_ids``);
- lookup_horizon: the same, over silver's rows within ``--horizon-hours`` of the batch's event
  times only (silver's rows span ``--silver-days`` before the batches', a file a day).
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
    p.add_argument("--silver-days", type=float, default=30.0, help="the event-time span of silver's rows")
    p.add_argument("--horizon-hours", type=float, default=24.0, help="pipeline.dedup_horizon_s, in hours")
    p.add_argument("--env", default=None)
    args = p.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse.config import load_config
    from lakehouse.session import build_session
    from lakehouse.silver import near_in_time

    cfg = load_config(args.env, [])
    spark = build_session(cfg, app_name="finlake-bench-dedup")
    root = Path(tempfile.mkdtemp(prefix="dedup-", dir=cfg.path("paths.cache")))

    base = 1_780_000_000   # the batches' first event time (epoch seconds); one event a millisecond

    def events(start, n, first_time=base, step=0.001):
        ids = spark.range(start, start + n)
        return ids.select(F.sha2(F.col("id").cast("string"), 256).substr(1, 32).alias("event_id"),
                          (F.lit(first_time) + (F.col("id") - start) * step + start * 0.001).cast("timestamp").alias("event_time"),
                          (F.col("id") % 1000).cast("double").alias("amount"))

    silver = str(root / "silver")
    span = args.silver_days * 86400
    # Silver's history ends where the batches begin, in time order (as a stream appends it).
    # One file a day (a stream's appends are many more, each a few minutes of events).
    events(10**9, args.silver_rows, base - span - 10**6, span / args.silver_rows) \
        .repartitionByRange(max(1, round(args.silver_days)), "event_time").write.format("delta").save(silver)
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
    near, within = args.horizon_hours * 3600, []

    def lookup_horizon(batch, batch_id):   # as lakehouse.pipeline.SilverBatch._existing does
        t = time.perf_counter()
        bounds = batch.agg(F.count_distinct("event_id"), F.min("event_time").alias("lo"), F.max("event_time").alias("hi")).first()
        table = spark.read.format("delta").load(silver).where(near_in_time("event_time", bounds["lo"], bounds["hi"], near))
        table.select("event_id").join(batch.select("event_id"), "event_id", "left_semi").distinct().collect()
        within.append(round((time.perf_counter() - t) * 1000))

    out["lookup_horizon"] = timed("lookup_horizon", fn=lookup_horizon)
    out["lookup_horizon"].update(lookup_ms_median=round(statistics.median(within[1:] or within)), horizon_hours=args.horizon_hours,
                                 silver_days=args.silver_days)
    print(json.dumps(out, indent=2))
    print("FINLAKE_RESULT " + json.dumps(out))
    spark.stop()
    return out


if __name__ == "__main__":
    main()
