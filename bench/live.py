"""The demo's live phase on its own, to see where the lakehouse's time goes beside the decision
paths: every live query (bronze and ingest, gold, the loan-PD scorer, the fraud and trading
decision paths) while a paced producer sends every stream, as `make demo` runs it.

    make demo                                     # once: the broker, the history, the champions
    python -m bench.live --seconds 60             # then, as often as needed
    python -m bench.live --seconds 60 --conf pipeline.ingest=one_query

Each run starts the ingest, bronze and decision queries on new checkpoints (as the demo's first
run does; the decision paths start from silver's history) and the producer on a new seed.
Prints bronze's distance behind Kafka every 5 s; records each ingest batch's rows and
milliseconds per stream and phase, each query's batches and mean batch time, the live phase's
seconds (query starts, load, drain), and per decision path what the demo reports (decisions
against valid live events, Kafka -> decision p50 and p99), in
bench/results/live_<pipeline.ingest>.json (or --out).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of live load")
    p.add_argument("--rate", type=int, default=1000, help="messages per second over all streams")
    p.add_argument("--trigger", default="5 seconds")
    p.add_argument("--conf", action="append", default=[], help="a config override, key=value (repeatable)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    from jobs import demo
    from lakehouse.config import load_config
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.metrics import machine
    from lakehouse.session import build_session
    from lakehouse.streaming import ingest_mode
    from lakehouse.topology import DECISION_PATHS
    from ml import registry
    from ml.datasets import USE_CASES
    from reports.console import Steps
    from reports.demo import decision_performance

    cfg = load_config(None, a.conf)
    client = registry.connect(cfg)
    missing = [u for u in DECISION_PATHS if registry.alias_version(
        client, registry.registered_name(cfg, USE_CASES[u].registered_name), registry.CHAMPION) is None]
    if missing:
        raise SystemExit(f"bench.live: no champion for {', '.join(missing)} in {cfg.home}: run `make demo` first")
    root = cfg.path("paths.checkpoints")
    for folder in ("ingest", "ingest_bronze", "decisions"):
        shutil.rmtree(root / folder, ignore_errors=True)
    ensure_broker(cfg)   # the demo's broker, started again if it was stopped (make down)
    spark = build_session(cfg, app_name="finlake-bench-live")
    args = argparse.Namespace(live_rate=a.rate, live_seconds=a.seconds, trigger=a.trigger, noise="all=0.005",
                              fraud_rate=0.01, drain=300.0)
    since, t0 = dt.datetime.now(dt.timezone.utc), time.monotonic()
    live = demo.go_live(spark, cfg, args, int(time.time()) % 1_000_000, Steps(1))
    live_s = time.monotonic() - t0   # query starts, the load, the drain until every query is idle
    decisions = decision_performance(spark, cfg, since)
    by_query = defaultdict(list)
    for r in live["progress"]:
        if r.num_input_rows > 0:
            by_query[r.query_name].append(r.batch_duration_ms)
    out = {"machine": machine(), "rate": a.rate, "seconds": a.seconds, "trigger": a.trigger, "conf": a.conf,
           "ingest": ingest_mode(cfg), "bronze_behind_kafka_s": live["bronze_behind_s"],
           "decided": {n: d.decided for n, d in live["deciders"].items()}, "live_phase_s": round(live_s, 1),
           "decisions": decisions,
           "queries": {q: {"batches": len(v), "mean_ms": round(statistics.mean(v)), "max_ms": max(v)} for q, v in sorted(by_query.items())},
           "ingest_batches": live["ingest_batches"]}
    path = ROOT / "bench" / "results" / (a.out or f"live_{out['ingest']}.json")
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: out[k] for k in ("ingest", "bronze_behind_kafka_s", "live_phase_s", "decisions", "queries")}, default=str))
    print(f"bench.live: results in {path}")
    return out


if __name__ == "__main__":
    main()
