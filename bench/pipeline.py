"""Benchmark the medallion pipeline on this machine (a benchmark, not a test).

    python -m bench.pipeline --backlog 200000               # capacity: bronze and silver rows/s from a backlog
    python -m bench.pipeline --rate 2000 --duration 60      # latency Kafka -> readable in silver at an offered rate
    python -m bench.pipeline --streams all --rate 5000 --gold   # ... and in the gold feature views

Capacity: a backlog is produced first, then bronze and silver each catch up (availableNow)
and rows per second are timed. Latency: a paced producer runs beside the continuous pipeline;
each silver (and with ``--gold`` each gold) row's delay is the commit time of the Delta version
that added it minus its Kafka timestamp. Beside each figure: the average CPU (% of the machine) and peak resident memory
of this job's process tree (Python driver, Spark's JVM, Python workers) and of the broker, and
the per-batch time breakdown of every query. Every run uses its own topic prefix and state.

Each run's record goes to ``bench/results/<--out>`` (default ``pipeline_capacity.json`` or
``pipeline_latency.json``) with the figures #32 asks for at the top: ``rate`` (offered msgs/s;
null for a backlog), ``silver_capacity_share_of_raw`` (a capacity run: bronze+silver rows/s over
the raw Spark limit taken in the same run) and ``gold_latency_p50_ms`` / ``gold_latency_p99_ms``
(a latency run with ``--gold``: Kafka -> committed gold row, over every gold view's rows).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from jobs import common
from lakehouse.metrics import latency_seconds, latency_stats, latency_summary, machine, process_sampler, sampled
from lakehouse.runtime import StreamingRun

RESULTS = Path(__file__).resolve().parent / "results"


def _produce(cfg, streams, count, rate, duration, seed):
    from jobs import produce

    args = ["--streams", streams, "--rate", str(rate), "--seed", str(seed), "--quiet", "--no-truth", "--label-delay", "1",
            "--conf", f"kafka.topic_prefix={cfg['kafka.topic_prefix']}"]
    args += ["--count", str(count)] if count else ["--duration", str(duration)]
    return produce.run(None, cfg, produce_args(args))


def _produce_into(queue, *args):
    queue.put(_produce(*args)["per_topic"])


def produce_args(args):
    from jobs import produce

    return produce.build_parser().parse_args(args)


def run(spark, cfg, args) -> dict:
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.streaming import ingest_mode, start_bronze, start_ingest, start_silver
    from lakehouse.topology import GOLD_VIEWS, STREAMS, gold_views_for, stream_table

    tag = f"bench{int(time.time())}_"
    home = cfg.home / "bench" / tag.rstrip("_")
    bcfg = load_config(cfg.env, list(args.conf) + [f"kafka.topic_prefix={tag}"], home=home)
    ensure_broker(bcfg)
    catalog = Catalog(bcfg)
    streams = common.pick("stream", args.streams, STREAMS)
    catalog.register(spark, [stream_table(l, s) for l in ("bronze", "silver", "quarantine") for s in streams] + ["ops.dq_results"])
    result = {"machine": machine(), "streams": streams, "conf": list(args.conf), "rate": None if args.backlog else args.rate,
              "silver_capacity_share_of_raw": None, "gold_latency_p50_ms": None, "gold_latency_p99_ms": None}
    if args.backlog:
        result["ingest"] = ingest_mode(bcfg)
        batches = []
        if result["ingest"] == "one_query":
            def ingest():
                query, fn = start_ingest(spark, bcfg, streams, True)
                batches.append(fn)
                return [query]
            layers = (("bronze+silver", ingest),)
        elif result["ingest"] == "bronze_apart":
            def part(layer):
                query, fn = start_ingest(spark, bcfg, streams, True, layers=(layer,))
                batches.append(fn)
                return [query]
            layers = (("bronze", lambda: part("bronze")), ("silver", lambda: part("silver")))
        else:
            layers = (("bronze", lambda: [start_bronze(spark, bcfg, f"bronze.{s}", True) for s in streams]),
                      ("silver", lambda: [start_silver(spark, bcfg, s, True) for s in streams]))

        def bronze_rows():
            return sum(spark.read.format("delta").load(catalog.spec(f"bronze.{s}").location).count() for s in streams)

        before = 0
        if args.warmup:
            # A first, untimed batch: the JVM compiles the parse and the writers, Great
            # Expectations loads. The timed backlog then measures the steady cost of a batch.
            _produce(bcfg, ",".join(streams), args.warmup, "max", None, 5)
            for _, starter in layers:
                for q in starter():
                    q.awaitTermination()
            before = bronze_rows()
            batches.clear()
            result["warmup_rows"] = before
        sent = _produce(bcfg, ",".join(streams), args.backlog, "max", None, 7)
        result["backlog_sent"] = sent["sent"]
        t_all = time.perf_counter()
        for layer, starter in layers:
            t0 = time.perf_counter()
            with sampled(bcfg) as usage:
                for q in starter():
                    q.awaitTermination()
            seconds = time.perf_counter() - t0
            rows = bronze_rows() - before
            result[f"{layer}_seconds"] = round(seconds, 2)
            result[f"{layer}_rows_per_s"] = round(rows / seconds, 1)
            result[f"{layer}_resources"] = usage
        result["kafka_to_silver_rows_per_s"] = round(rows / (time.perf_counter() - t_all), 1)
        if batches:
            # Each layer's batches, per stream the phases (bronze's append; silver's parse and
            # counts, id lookup, quarantine and silver writes), so a slower run says where.
            result["ingest_batch_ms"] = {layer: fn.history for (layer, _), fn in zip(layers, batches)}
        # The limit, in the same run on the same topics: Spark reads them and writes Parquet, no checks.
        with sampled(bcfg) as usage:
            result["raw_spark_limit"] = raw_spark_rate(spark, bcfg, streams, home)
        result["raw_spark_limit"]["resources"] = usage
        share = result["kafka_to_silver_rows_per_s"] / result["raw_spark_limit"]["rows_per_s"]
        result["kafka_to_silver_vs_raw_spark_pct"] = round(100 * share, 1)
        result["silver_capacity_share_of_raw"] = round(share, 3)
    else:
        run = StreamingRun(spark, bcfg, "bench", catalog)
        ctx = mp.get_context("fork")
        sampler = process_sampler(bcfg["kafka.bootstrap_servers"])
        gold = gold_views_for(streams) if args.gold else []
        run.start_lakehouse(streams, gold, args.trigger)
        time.sleep(15)  # let every query start before load arrives
        sent = ctx.Queue()
        producer = ctx.Process(target=_produce_into, args=(sent, bcfg, ",".join(streams), None, args.rate, args.duration, 11))
        producer.start()
        sampler.add("producer", producer.pid)
        per_topic = sent.get()
        producer.join()
        # Every row counts: the run waits until each query has caught up (at most --drain s), so
        # the slowest rows are in the figures, not left out of them.
        t_drain = time.monotonic()
        run.wait_until_idle(args.drain)
        result["drain_s"] = round(time.monotonic() - t_drain, 1)
        result["resources"] = sampler.stop()
        run.raise_if_failed()
        run.stop()
        per_query, phases = {}, {}
        for row in run.progress():
            if row.num_input_rows > 0:
                per_query.setdefault(row.query_name, []).append(row.batch_duration_ms)
                for phase, ms in row.metrics.items():
                    phases.setdefault(row.query_name, {}).setdefault(phase, []).append(ms)
        # Per query: batches with rows, mean and max batch time, and the mean of each of Spark's
        # phases (addBatch is the foreachBatch function; latestOffset, walCommit ... the rest).
        result["batch_ms"] = {q: {"batches": len(v), "mean": round(sum(v) / len(v)), "max": max(v),
                                  "phases_mean": {k: round(sum(x) / len(x)) for k, x in sorted(phases[q].items())}}
                              for q, v in per_query.items()}
        result["offered_rate"] = args.rate
        result["duration_s"] = args.duration
        for s in streams:
            stats = latency_stats(spark, catalog.spec(f"silver.{s}").location)
            # Completeness: the share of what the producer sent that is readable in silver.
            stats["sent"] = per_topic.get(s, 0)
            stats["completeness_pct"] = round(100.0 * stats["rows"] / stats["sent"], 2) if stats["sent"] else None
            result[f"latency_{s}"] = stats
        pooled = []
        for table in gold:
            delays = latency_seconds(spark, catalog.spec(table).location) if catalog.register(spark, [table]) else np.zeros(0)
            result[f"latency_{table}"] = latency_summary(delays)
            # Completeness: the share of its driving stream's silver rows that reached the view.
            driver = result[f"latency_{GOLD_VIEWS[table].driver}"]["rows"]
            result[f"latency_{table}"]["completeness_pct"] = round(100.0 * len(delays) / driver, 2) if driver else None
            pooled.append(delays)
        if gold:
            every = latency_summary(np.concatenate(pooled))
            result["gold_latency_p50_ms"], result["gold_latency_p99_ms"] = every.get("median_ms"), every.get("p99_ms")
    out = RESULTS / (args.out or f"pipeline_{'capacity' if args.backlog else 'latency'}.json")
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    print(f"bench.pipeline: record in {out}")
    return result


def raw_spark_rate(spark, cfg, streams, home) -> dict:
    """Spark's own limit on this machine: the same topics read with the Kafka source (availableNow)
    and written as Parquet, no tokenizing, parsing, rules or Delta."""
    from lakehouse.catalog import Catalog
    from lakehouse.kafka.clients import topic_name
    from lakehouse.streaming import read_kafka

    catalog = Catalog(cfg)
    topics = ",".join(topic_name(cfg, catalog.source_topic(f"bronze.{s}")) for s in streams)
    out = Path(home) / "raw_limit"
    t0 = time.perf_counter()
    (read_kafka(spark, cfg, topics).selectExpr("key", "value", "topic", "partition", "offset", "timestamp")
     .writeStream.format("parquet").option("checkpointLocation", str(out / "_checkpoint"))
     .trigger(availableNow=True).start(str(out / "data")).awaitTermination())
    seconds = time.perf_counter() - t0
    rows = spark.read.parquet(str(out / "data")).count()
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--streams", default="transactions")
    p.add_argument("--backlog", type=int, default=None, help="capacity run: messages to preload")
    p.add_argument("--warmup", type=int, default=5000, help="capacity run: messages of an untimed first batch (0: none)")
    p.add_argument("--rate", type=float, default=1000.0, help="latency run: offered messages per second")
    p.add_argument("--duration", type=float, default=60.0, help="latency run: seconds of load")
    p.add_argument("--drain", type=float, default=600.0,
                   help="latency run: at most this many seconds for every query to catch up after the load")
    p.add_argument("--trigger", default="1 second", help="latency run: processing-time trigger of every query")
    p.add_argument("--gold", action="store_true", help="latency run: also run the gold feature views of the streams and time them")
    p.add_argument("--out", default=None, help="the record's file name under bench/results")
    result = common.execute(p, argv, run, app_name="finlake-bench")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
