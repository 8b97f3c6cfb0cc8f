"""The benchmark harness: the whole stack at several offered loads, on this machine.

    python -m bench.run                               # loads 1000,2000,5000 msgs/s, 60 s each
    python -m bench.run --loads 500,1000 --duration 30

Per load level, in a fresh state (own FINLAKE_HOME subfolder and topic prefix): every stream's
bronze and silver query, the three gold feature queries and the fraud scoring query run
continuously while a paced producer offers the load (all streams, default mix, 0.1% bad
input); then the queries drain. Measured: sustained throughput into bronze and into scores;
Kafka -> committed score latency (median, p99); average CPU and peak memory of every process
of the stack (Spark driver JVM and its Python workers, the job, the broker, the producer);
per-stream micro-batch processing time (mean, p99), window completeness and error rate; rows
committed to bronze per second over the run (Figure 1). Limits, in the same run: a plain
Kafka consumer's read rate of the same topics, and the fraud champion's raw
``inplace_predict`` rate on the same feature rows; pipeline figures are also given as a share
of them. Outputs JSON, Markdown tables in the layout of the reference study's Tables 1 and 3,
and Figure 1 as a PNG, under FINLAKE_HOME/reports/bench/.

A fraud champion must exist: when the registry has none, a small history is backfilled and a
model trained first (as the demo does).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jobs import common  # noqa: E402
from lakehouse.procs import ProcessSampler, bootstrap_pid  # noqa: E402

STUDY_TABLE1 = [(500, 37, 12, 12), (1000, 55, 18, 17), (2500, 68, 32, 25), (5000, 82, 61, 41)]
STUDY_TABLE3 = {"transactions": (18, 46, 99.2, 0.08), "market_ticks": (11, 31, 98.1, 0.12),
                "user_events": (9, 27, 97.6, 0.15), "bureau_updates": (22, 51, 99.5, 0.04)}


def _producer(queue, cfg, argv):
    from jobs import produce

    try:
        queue.put(produce.run(None, cfg, produce.build_parser().parse_args(argv)))
    except BaseException as exc:
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def bronze_rate_series(spark, cfg, streams) -> list[tuple[int, int]]:
    """Rows committed into bronze (all streams) per second of the run, from the Delta logs."""
    from pyspark.sql import functions as F

    from lakehouse.metrics import commit_times
    from lakehouse.catalog import Catalog

    per_second: dict[int, int] = {}
    for s in streams:
        loc = Catalog(cfg).spec(f"bronze.{s}").location
        commits = commit_times(loc)
        for r in spark.read.format("delta").load(loc).groupBy(F.col("_metadata.file_name").alias("f")).count().collect():
            if r.f in commits:
                sec = int(commits[r.f])
                per_second[sec] = per_second.get(sec, 0) + r["count"]
    if not per_second:
        return []
    t0, t1 = min(per_second), max(per_second)
    return [(t - t0, per_second.get(t, 0)) for t in range(t0, t1 + 1)]


def raw_consume_rate(cfg, streams, expected: int) -> dict:
    """A plain confluent-kafka consumer reading the run's topics from the start."""
    from confluent_kafka import Consumer

    from lakehouse.kafka.clients import client_config, topic_name

    c = Consumer(client_config(cfg, **{"group.id": f"bench-raw-{time.time_ns()}", "auto.offset.reset": "earliest",
                                       "fetch.max.bytes": 52428800, "enable.auto.commit": False}))
    c.subscribe([topic_name(cfg, s) for s in streams])
    n, t0, last = 0, None, time.monotonic()
    while n < expected and time.monotonic() - last < 10:
        batch = c.consume(10000, 1.0)
        if batch:
            if t0 is None:
                t0 = time.perf_counter()
            n += sum(1 for m in batch if not m.error())
            last = time.monotonic()
    seconds = time.perf_counter() - t0 if t0 else 0
    c.close()
    return {"messages": n, "seconds": round(seconds, 2), "msgs_per_s": round(n / seconds) if seconds else None}


def raw_predict_rate(spark, cfg, champion_cfg) -> dict:
    from lakehouse.catalog import Catalog
    from ml import registry
    from ml.datasets import USE_CASES
    from ml.scoring import Champion

    model = Champion(champion_cfg, USE_CASES["fraud"]).current()
    pdf = spark.read.format("delta").load(Catalog(cfg).spec("gold.card_features").location).toPandas()
    x = pdf[list(model.features)].astype("float64")
    booster = registry.load_booster(model.name, model.version)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        booster.inplace_predict(x)
        best = max(best, len(x) / (time.perf_counter() - t0))
    return {"rows": len(x), "rows_per_s": round(best)}


def one_level(spark, base_cfg, load: int, args, sampler_roots: dict) -> dict:
    import numpy as np
    from pyspark.sql import functions as F

    from lakehouse.metrics import latency_stats
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.runtime import StreamingRun
    from lakehouse.streaming import silver_query
    from lakehouse.topology import GOLD_VIEWS, STREAMS
    from serving.start import start_scorers

    tag = f"bench{load}_{int(time.time())}"
    cfg = load_config(base_cfg.env, [*args.conf, f"kafka.topic_prefix={tag}_",
                                     f"ml.mlflow.tracking_uri={base_cfg['ml.mlflow.tracking_uri']}"], home=base_cfg.home / "bench" / tag)
    info = ensure_broker(cfg)
    ensure_topics(cfg)
    catalog = Catalog(cfg)
    catalog.register(spark, [f"{l}.{s}" for l in ("bronze", "silver", "quarantine") for s in STREAMS] + ["ops.dq_results"])
    run = StreamingRun(spark, cfg, "bench", catalog)
    trig = args.trigger
    run.start_lakehouse(STREAMS, GOLD_VIEWS, trig)
    time.sleep(10)
    sampler = ProcessSampler(dict(sampler_roots))
    broker_pid = info.get("pid") or bootstrap_pid(cfg["kafka.bootstrap_servers"])
    if broker_pid:
        sampler.add("kafka broker", int(broker_pid))
    sampler.start()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    producer = ctx.Process(target=_producer, args=(out, cfg, ["--rate", str(load), "--duration", str(args.duration), "--seed", "5",
                                                                "--quiet", "--no-truth", "--noise", args.noise, "--label-delay", "5"]))
    producer.start()
    sampler.add("producer", producer.pid)
    # The scorer reads gold.card_features: wait for its first commit (a log folder alone, while
    # the first gold batch is still being written, has no schema yet).
    first_commit = Path(catalog.spec("gold.card_features").location) / "_delta_log" / f"{0:020d}.json"
    deadline = time.monotonic() + 180
    while not first_commit.exists() and time.monotonic() < deadline:
        time.sleep(1)
    scorer = start_scorers(run, ["fraud"], processing_time=trig, alerts=True)["fraud"]
    sent = out.get(timeout=args.duration + 300)
    producer.join(10)
    if "error" in sent:
        raise RuntimeError(f"producer failed: {sent['error']}")
    try:
        run.wait_until_idle(args.drain)
    finally:
        resources = sampler.stop()
    failed = [q.name for q in run.queries if q.exception() is not None]
    run.stop()
    progress = run.progress()
    # Per stream: micro-batch processing time, completeness, error rate.
    dq = spark.read.format("delta").load(catalog.spec("ops.dq_results").location)
    dups = {r["table"]: int(r["n"] or 0) for r in dq.where("expectation = 'duplicates_dropped'").groupBy("table")
            .agg(F.sum("unexpected_count").alias("n")).collect()}
    streams = {}
    for s in STREAMS:
        batches = [r.batch_duration_ms for r in progress if r.query_name == silver_query(cfg, s) and r.num_input_rows > 0]
        silver = spark.read.format("delta").load(catalog.spec(f"silver.{s}").location).count()
        quarantined = spark.read.format("delta").load(catalog.spec(f"quarantine.{s}").location).count()
        n = sent["per_topic"].get(s, 0)
        streams[s] = {"sent": n, "silver": silver, "quarantine": quarantined, "duplicates_dropped": dups.get(f"silver.{s}", 0),
                      "batches": len(batches), "batch_mean_ms": round(float(np.mean(batches)), 1) if batches else None,
                      "batch_p99_ms": round(float(np.percentile(batches, 99)), 1) if batches else None,
                      "completeness_pct": round(100.0 * (silver + quarantined + dups.get(f"silver.{s}", 0)) / n, 3) if n else None,
                      "error_rate_pct": round(100.0 * quarantined / n, 3) if n else None}
    series = bronze_rate_series(spark, cfg, STREAMS)
    lat = latency_stats(spark, catalog.spec("gold.fraud_scores").location)
    scored = sum(b["scored"] for b in scorer.history)
    window = [n for t, n in series if t <= args.duration]
    limits = {"raw_consume": raw_consume_rate(cfg, STREAMS, sent["delivered"]),
              "raw_inplace_predict": raw_predict_rate(spark, cfg, base_cfg)}
    bronze_rate = round(sum(window) / max(1, len(window)), 1)
    result = {
        "offered_msgs_per_s": load, "duration_s": args.duration, "sent": sent["delivered"], "achieved_send_rate": sent["achieved_rate"],
        "bronze_rows_per_s": bronze_rate, "bronze_peak_rows_per_s": max(window) if window else 0,
        "scored": scored, "scored_per_s": round(scored / args.duration, 1),
        "latency_kafka_to_score": lat, "resources": resources, "streams": streams, "series": series, "failed_queries": failed,
        "limits": limits,
        "share_of_limits": {"bronze_vs_raw_consume_pct": round(100 * bronze_rate / limits["raw_consume"]["msgs_per_s"], 2)
                            if limits["raw_consume"]["msgs_per_s"] else None,
                            "scoring_vs_raw_predict_pct": round(100 * (scored / args.duration) / limits["raw_inplace_predict"]["rows_per_s"], 4)},
    }
    return result


def table1_markdown(levels: list[dict]) -> str:
    lines = ["| offered load (msgs/s) | achieved (msgs/s into bronze) | avg CPU % | peak memory GB | median latency ms (Kafka -> score) | p99 ms |",
             "|---|---|---|---|---|---|"]
    for r in levels:
        lat = r["latency_kafka_to_score"]
        lines.append(f"| {r['offered_msgs_per_s']:,} | {r['bronze_rows_per_s']:,.0f} | {r['resources']['avg_cpu_pct']} | "
                     f"{r['resources']['peak_memory_gb']} | {lat.get('median_ms', '–')} | {lat.get('p99_ms', '–')} |")
    lines += ["", "The study, at 500 / 1,000 / 2,500 / 5,000 concurrent requests: " + "; ".join(
        f"{c:,}: CPU {cpu}%, {mem} GB, {ms} ms" for c, cpu, mem, ms in STUDY_TABLE1) + "."]
    return "\n".join(lines)


def table3_markdown(level: dict) -> str:
    lines = ["| stream | mean batch ms (study / ours) | p99 batch ms (study / ours) | completeness % (study / ours) | error rate % (study / ours) |",
             "|---|---|---|---|---|"]
    for s, v in level["streams"].items():
        st = STUDY_TABLE3.get(s, ("–", "–", "–", "–"))
        lines.append(f"| {s} | {st[0]} / {v['batch_mean_ms']} | {st[1]} / {v['batch_p99_ms']} | {st[2]} / {v['completeness_pct']} | "
                     f"{st[3]} / {v['error_rate_pct']} |")
    return "\n".join(lines)


def figure1(levels: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    import numpy as np

    for r in levels:
        pts = [(t, n) for t, n in r["series"] if t <= r["duration_s"] + 30]
        # Micro-batches commit in bursts; a 5 s moving average shows the sustained rate.
        smooth = np.convolve([n for _, n in pts], np.ones(5) / 5, mode="same")
        line, = ax.plot([t for t, _ in pts], smooth, label=f"offered {r['offered_msgs_per_s']:,}/s (5 s mean)")
        ax.axhline(r["offered_msgs_per_s"], ls=":", color=line.get_color())
    ax.set(xlabel="seconds since the first commit", ylabel="rows committed to bronze per second",
           title="Figure 1 analog: throughput over the run (all streams; dotted: offered)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def ensure_champion(spark, cfg) -> None:
    """Train a fraud model on a small backfilled history when the registry has no champion."""
    from ml import registry
    from ml.datasets import USE_CASES

    client = registry.connect(cfg)
    try:
        if registry.alias_version(client, registry.registered_name(cfg, USE_CASES["fraud"].registered_name), registry.CHAMPION):
            return
    except Exception:
        pass
    from jobs import produce, stream
    from ml.train import train_use_case

    print("bench: no fraud champion yet; backfilling a history and training one", flush=True)
    produce.run(spark, cfg, produce.build_parser().parse_args([
        "--mode", "bronze", "--count", "60000", "--rate", "max", "--sim-rate", "3", "--fraud-rate", "0.02",
        "--streams", "transactions,tx_labels,user_events", "--quiet", "--run-id", "bench-history"]))
    stream.run(spark, cfg, argparse.Namespace(streams="transactions,tx_labels,user_events", layers="silver,gold",
                                              available_now=True, timeout=None))
    train_use_case(spark, cfg, "fraud")


def run(spark, cfg, args) -> dict:
    from lakehouse.metrics import machine

    loads = [int(x) for x in args.loads.split(",") if x.strip()]
    out = cfg.path("paths.reports") / "bench"
    out.mkdir(parents=True, exist_ok=True)
    ensure_champion(spark, cfg)
    # This process's tree: the job (Python), the Spark driver JVM it launched, Spark's Python workers.
    roots = {"finlake job + Spark JVM + Python workers": os.getpid()}
    levels = []
    for load in loads:
        print(f"bench: {load:,} msgs/s for {args.duration:.0f} s", flush=True)
        levels.append(one_level(spark, cfg, load, args, roots))
        r = levels[-1]
        print(f"bench: {load:,}/s -> bronze {r['bronze_rows_per_s']:,.0f}/s, scored {r['scored_per_s']:,.0f}/s, "
              f"Kafka->score median {r['latency_kafka_to_score'].get('median_ms')} ms, CPU {r['resources']['avg_cpu_pct']}%", flush=True)
    result = {"machine": machine(), "args": {"loads": loads, "duration": args.duration, "trigger": args.trigger, "noise": args.noise},
              "levels": levels}
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    md = ["## Table 1 analog", "", table1_markdown(levels), "", f"## Table 3 analog (offered {levels[-1]['offered_msgs_per_s']:,} msgs/s)", "",
          table3_markdown(levels[-1]), ""]
    (out / "tables.md").write_text("\n".join(md))
    figure1(levels, out / "figure1.png")
    print("\n".join(md))
    print(f"bench: results in {out}")
    return {"out": str(out), "levels": [{k: v for k, v in l.items() if k != "series"} for l in levels]}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--loads", default="1000,2000,5000", help="offered loads, messages per second over all streams")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per level")
    p.add_argument("--drain", type=float, default=90.0, help="seconds the queries get to catch up after the load")
    p.add_argument("--trigger", default="1 second", help="processing-time trigger of every query")
    p.add_argument("--noise", default="all=0.001", help="bad input mixed into the load")
    result = common.execute(p, argv, run, app_name="finlake-bench")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
