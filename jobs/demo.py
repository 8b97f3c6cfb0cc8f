"""The end-to-end demo on the embedded default stack, in one command: start (or reuse) the local
Kafka broker; backfill a training history (two days of event time, all streams) into bronze and
run the medallion pipeline over it; train the fraud, trading-signal and loan-PD models (MLflow,
promotion); go live (the pipeline and the fraud, trading and loan-PD decision paths
while a paced producer sends every stream with a little bad input); write the statistics report,
monitor each champion, and write FINLAKE_HOME/reports/demo/index.html and summary.json (counts
per layer, reconciled; model quality; stream performance; statistics; monitoring; plots).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import sys
import time

import stats
from jobs import common, produce, stream
from jobs import stats_report as stats_job
from jobs import train as train_job
from lakehouse.kafka.broker import ensure_broker
from lakehouse.kafka.clients import end_offsets, ensure_topics, topic_name
from lakehouse.metrics import Freshness, ingest_batch_summary, machine
from lakehouse.runtime import StreamingRun
from lakehouse.streaming import kafka_query
from lakehouse.topology import DECISION_PATHS, GOLD_VIEWS, LAKEHOUSE_SCORED, STREAMS
from reports.console import Steps
from reports.demo import demo_shortfalls, monitor_champions, print_summary, summarise, write_report
from serving.start import start_decision_paths, start_scorers

HISTORY_MIX = "transactions=0.5,market_ticks=0.25,user_events=0.1,bureau_updates=0.07,loan_applications=0.08"
# The short demo (CI's end-to-end test, bench/busy.py): a small history, 20 s of live load, a
# one-point search grid.
SHORT_DEMO_ARGV = ["--history", "20000", "--history-hours", "6", "--fraud-rate", "0.03", "--live-rate", "300",
                   "--live-seconds", "20", "--drain", "400", "--trigger", "1 second", "--noise", "all=0.01", "--seed", "3",
                   *[a for g in ("ml.search.folds=2", "ml.search.max_depth=[3]", "ml.search.learning_rate=[0.3]",
                                 "ml.search.n_estimators=[40, 80]", "ml.gbt.max_iter=20", "stats.sample_rows=3000") for a in ("--conf", g)]]


def _produce_live(queue, cfg, argv):
    try:
        queue.put(produce.run(None, cfg, produce.build_parser().parse_args(argv)))
    except BaseException as exc:  # reported by the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def go_live(spark, cfg, args, seed: int, steps: Steps) -> dict:
    """Every live query (the lakehouse, the fraud, trading and loan-PD decision paths, a lakehouse
    scorer for any use case without one)
    while a paced producer sends every stream; the freshness line every 5 s; drain; stop."""
    run = StreamingRun(spark, cfg, "live")
    # A reused broker may hold another run's messages (and decisions): new checkpoints start at
    # the topics' current ends, so this run reads, decides and reconciles exactly what it sends.
    ensure_topics(cfg)
    topics = [run.catalog.source_topic(f"bronze.{s}") for s in STREAMS]
    ends = end_offsets(cfg, topics)   # by the topics' Kafka names
    start_at = {s: json.dumps({topic_name(cfg, t): ends[topic_name(cfg, t)]}) for s, t in zip(STREAMS, topics)}
    run.start_lakehouse(STREAMS, GOLD_VIEWS, args.trigger, bronze_from=start_at)
    scorers = start_scorers(run, LAKEHOUSE_SCORED, processing_time=args.trigger, only_new=True)   # use cases without a decision path
    land_from = end_offsets(cfg, [t for p in DECISION_PATHS.values() for t in (p.decisions_topic, p.alerts_topic) if t])
    deciders = start_decision_paths(run, list(DECISION_PATHS), starting_offsets={s: start_at[s] for p in DECISION_PATHS.values()
                                                                                 for s in p.streams}, land_from=land_from)
    steps.log(f"{len(run.queries)} streaming queries running (trigger {args.trigger})")
    ctx = mp.get_context("fork")
    result = ctx.Queue()
    argv = ["--rate", str(args.live_rate), "--duration", str(args.live_seconds), "--seed", str(seed), "--quiet",
            "--noise", args.noise, "--fraud-rate", str(args.fraud_rate), "--label-delay", "20", "--run-id", f"live-{seed}"]
    producer = ctx.Process(target=_produce_live, args=(result, cfg, argv))  # it forks its own shards
    producer.start()
    # Freshness every 5 s: what Kafka holds of this run, and how far bronze is behind it.
    t0, fresh, ingest = time.monotonic(), Freshness(cfg, topics, ends), {kafka_query(cfg, s) for s in STREAMS}
    while producer.is_alive():
        time.sleep(5)
        run.check()
        landed = sum(r.num_input_rows for r in run.progress() if r.query_name in ingest)
        held, behind = fresh.look(landed)
        steps.log(f"live: {time.monotonic() - t0:,.0f} s of {args.live_seconds:.0f} s; Kafka {held:,} messages; bronze {landed:,} "
                  f"({behind:,.0f} s behind Kafka); {deciders['fraud'].decided:,} transactions decided")
    sent = result.get(timeout=120)
    producer.join(10)
    if "error" in sent:
        run.stop()
        common.fail(f"live producer failed: {sent['error']}")
    run.wait_until_idle(args.drain)   # stop once every query has caught up with what was sent
    time.sleep(2 * float(str(args.trigger).split()[0]))
    run.stop()
    return {"sent": sent, "progress": run.progress(), "scorers": scorers, "deciders": deciders, "bronze_behind_s": fresh.summary(),
            "ingest_batches": {name: ingest_batch_summary(fn.history) for name, fn in run.batch_functions.items()}}


def run(spark, cfg, args) -> dict:
    started = time.perf_counter()
    # What this run writes is counted from here on: a demo run again in the same home
    # reconciles its own rows, not the earlier runs' too.
    since = dt.datetime.now(dt.timezone.utc)
    steps = Steps(7)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    out = cfg.path("paths.reports") / "demo"

    steps("Kafka")
    info = ensure_broker(cfg)
    ensure_topics(cfg)
    steps.log(f"{'using the broker' if info['reused'] else 'started the broker'} at {info['bootstrap']}")

    steps("Training history -> bronze -> silver -> gold")
    span = args.history_hours * 3600.0
    start = dt.datetime.fromtimestamp(time.time() - span - 900, dt.timezone.utc).isoformat()
    hist = produce.run(spark, cfg, produce.build_parser().parse_args([
        "--mode", "bronze", "--count", str(args.history), "--rate", "max", "--sim-rate", f"{args.history / span:.6f}",
        "--start", start, "--seed", str(seed), "--fraud-rate", str(args.fraud_rate), "--mix", HISTORY_MIX,
        "--label-delay", "120", "--quiet", "--run-id", f"history-{seed}"]))
    steps.log(f"history: {hist['delivered']:,} events over {args.history_hours} h of event time: {hist['per_topic']}")
    pipeline = stream.run(spark, cfg, argparse.Namespace(streams="all", layers="silver,gold", available_now=True, timeout=None))
    steps.log(f"pipeline caught up in {pipeline['seconds']} s")

    steps("Training fraud, trading and loan-PD models")
    trained = train_job.run(spark, cfg, argparse.Namespace(use_case="all", as_of=None))["use_cases"]

    steps(f"Live: {args.live_rate:,} msgs/s for {args.live_seconds:.0f} s through the pipeline and the decision paths")
    live = go_live(spark, cfg, args, seed + 1, steps)

    steps("Statistics report")
    stats_out = stats_job.run(spark, cfg, argparse.Namespace(use_case="all", out=str(out / "stats")))

    steps("Monitoring the champions")
    monitoring = monitor_champions(spark, cfg, list(trained))

    steps("Summary and report")
    measured = summarise(spark, cfg, since, hist, live, trained)
    steps.done()
    summary = {
        "seed": seed, "machine": machine(), "seconds": round(time.perf_counter() - started, 1), "steps": steps.seconds, **measured,
        "live": {"rate": args.live_rate, "seconds": args.live_seconds, "trigger": args.trigger,
                 "achieved_rate": live["sent"]["achieved_rate"], "bronze_behind_kafka_s": live["bronze_behind_s"],
                 "ingest_batches": live["ingest_batches"]},
        "table4": stats.json_safe(stats_out["table4"]), "stats_report": str(out / "stats" / "report.html"),
        "monitoring": monitoring["summary"],
    }
    page = write_report(summary, live, trained, monitoring, out)
    print_summary(summary, page, cfg)
    return summary


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--history", type=int, default=300000, help="events in the training history (bronze backfill)")
    p.add_argument("--history-hours", type=float, default=48.0, help="event-time span of the history")
    p.add_argument("--fraud-rate", type=float, default=0.01, help="share of fraudulent transactions")
    p.add_argument("--live-rate", type=int, default=1000, help="live producer: messages per second over all streams")
    p.add_argument("--live-seconds", type=float, default=120.0, help="live producer: seconds of load")
    p.add_argument("--drain", type=float, default=300.0, help="at most this many seconds for the live queries to catch up after the load (they stop as soon as all are idle)")
    p.add_argument("--trigger", default="5 seconds", help="processing-time trigger of the live queries")
    p.add_argument("--noise", default="all=0.005", help="bad input in the live stream (see jobs/produce.py)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a new one each run)")
    # The machine-readable record is the report's summary.json (its path is printed), not a
    # JSON line on a newcomer's console.
    result = common.execute(p, argv, run, app_name="finlake-demo")
    shortfalls = demo_shortfalls(result)
    if shortfalls:
        common.fail("the demo fell short: " + "; ".join(shortfalls), 1)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
