"""Produce synthetic financial events: any mix of streams, at a target rate, for a duration or a
count, from one or several processes, with noise on demand; prints a JSON summary.

    python jobs/produce.py --rate 2000 --duration 60
    python jobs/produce.py --streams transactions,tx_labels --count 100000 --rate max --processes 2
    python jobs/produce.py --mode files --out /tmp/history --count 1000000 --rate max --start 2026-01-01
    python jobs/produce.py --mode bronze --count 200000 --rate max     # backfill straight into bronze
    python jobs/produce.py --seed 43 --world-seed 42 --drift amounts,atm_cashout --start 2026-01-03   # a drifted continuation
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

from jobs import common


def _parse_streams(text: str) -> tuple[str, ...]:
    from lakehouse.topology import STREAMS

    return tuple(common.pick("stream", text, STREAMS))


def _parse_mix(text: str | None) -> dict:
    from lakehouse.generators.streams import DEFAULT_MIX

    mix = dict(DEFAULT_MIX)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"mix entry '{item}' must be stream=weight")
        mix[name.strip()] = float(value)
    return mix


def _worker(plan, progress, results):
    from lakehouse.generators.producer import run_shard

    try:
        results.put(run_shard(plan, progress))
    except Exception as exc:  # reported by the parent as one line
        results.put({"shard": plan.shard, "error": f"{type(exc).__name__}: {exc}"})


def plans_from(cfg, args, run_id: str):
    from lakehouse.catalog import Catalog
    from lakehouse.generators.noise import NoiseConfig
    from lakehouse.generators.producer import ShardPlan
    from lakehouse.generators.streams import GeneratorConfig
    from lakehouse.kafka.clients import client_config
    from lakehouse.security import pan_hmac_key

    paced = args.rate != "max"
    try:
        rate = float(args.sim_rate) if not paced else float(args.rate)
        # Live streams start their event time now; files and backfills default to history.
        start = args.start or ("now" if args.mode == "kafka" else None)
        gen = GeneratorConfig(seed=args.seed, start=start, rate=rate,
                              streams=_parse_streams(args.streams), mix=_parse_mix(args.mix),
                              fraud_rate=args.fraud_rate, label_delay_s=args.label_delay,
                              threshold_bps=args.threshold_bps, n_customers=args.customers,
                              noise=NoiseConfig.parse(args.noise), world_seed=args.world_seed,
                              drift=tuple(d.strip() for d in (args.drift or "").split(",") if d.strip()),
                              drift_at=args.drift_at).validate()
    except ValueError as exc:
        common.fail(str(exc))
    if args.count is None and args.duration is None:
        common.fail("give --count N or --duration SECONDS")
    if args.processes < 1:
        common.fail(f"--processes must be at least 1, got {args.processes}")
    catalog = Catalog(cfg)
    truth = {t: catalog.spec(t).location for t in ("truth.fraud", "truth.trading", "truth.loan_pd")} if args.truth else None
    mode = "files" if args.mode in ("files", "bronze") else "kafka"
    out = args.out or str(cfg.home / "landing" / run_id)
    plans = []
    for k in range(args.processes):
        share = None
        if args.count is not None:
            share = args.count // args.processes + (1 if k < args.count % args.processes else 0)
        plans.append(ShardPlan(shard=k, shards=args.processes, gen=gen, run_id=run_id, max_messages=share,
                               duration_s=args.duration, paced=paced, mode=mode,
                               kafka_conf=client_config(cfg) if mode == "kafka" else None,
                               files_dir=out if mode == "files" else None, truth_locations=truth,
                               topic_prefix=str(cfg["kafka.topic_prefix"] or ""), event_timestamps=args.kafka_time == "event",
                               pan_key=pan_hmac_key(cfg) if mode == "files" else None))
    return plans, out


def run(spark, cfg, args) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%S")
    plans, out = plans_from(cfg, args, run_id)
    if plans[0].mode == "kafka":
        from lakehouse.kafka.broker import ensure_broker

        ensure_broker(cfg)
        if args.kafka_time == "event":
            _keep_the_replay(cfg, plans[0].gen)
    ctx = mp.get_context("fork")
    progress = ctx.Array("q", len(plans))
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(p, progress, results), daemon=True) for p in plans]
    started = time.perf_counter()
    for p in procs:
        p.start()
    collected = []
    total = args.count
    with Progress(TextColumn("[bold]produce"), BarColumn(), TextColumn("{task.completed:,.0f} msgs"),
                  TextColumn("{task.fields[rate]:,.0f}/s"), TimeElapsedColumn(), disable=args.quiet,
                  transient=True) as bar:
        task = bar.add_task("produce", total=total or args.duration, rate=0)
        while len(collected) < len(procs):
            try:
                collected.append(results.get(timeout=0.5))
            except Exception:
                pass
            done = sum(progress)
            elapsed = time.perf_counter() - started
            bar.update(task, completed=done if total else min(elapsed, args.duration), rate=done / max(elapsed, 1e-9))
            if not any(p.is_alive() for p in procs) and results.empty() and len(collected) < len(procs):
                break
    for p in procs:
        p.join(10)
    errors = [r["error"] for r in collected if "error" in r]
    if errors or len(collected) < len(procs):
        common.fail(f"producer shard failed: {errors[0] if errors else 'a process exited without a result'}")
    summary = summarize(collected, args, run_id)
    if args.mode == "files":
        summary["files"] = out
    if args.mode == "bronze":
        from lakehouse.backfill import files_to_bronze

        summary["bronze_rows"] = files_to_bronze(spark, cfg, Path(out))
    return summary


def _keep_the_replay(cfg, gen) -> None:
    """Event-time timestamps older than a topic's retention are deleted by the broker within
    minutes: raise the retention of the replayed topics first, and say so."""
    import datetime as dt

    from lakehouse.generators.base import parse_start
    from lakehouse.kafka.clients import replay_retention

    oldest = parse_start(gen.start)
    changed = replay_retention(cfg, [s for s in gen.streams], oldest)
    if changed:
        hours = max(changed.values()) / 3_600_000
        since = dt.datetime.fromtimestamp(oldest, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        print(f"produce: replaying from {since} UTC: retention of {', '.join(sorted(changed))} raised to {hours:,.0f} h so the "
              f"broker keeps it (set it back once bronze has caught up: these topics carry clear card numbers)",
              file=sys.stderr, flush=True)


def summarize(results: list[dict], args, run_id: str) -> dict:
    per_topic: Counter = Counter()
    per_noise: dict[str, Counter] = {}
    truth: Counter = Counter()
    for r in results:
        per_topic.update(r["per_topic"])
        for t, c in r["per_noise"].items():
            per_noise.setdefault(t, Counter()).update(c)
        truth.update(r["truth"])
    # Seconds until the last shard's last message was acknowledged by the broker.
    seconds = max(r["seconds"] for r in results)
    sent = sum(r["sent"] for r in results)
    return {"run_id": run_id, "mode": args.mode, "processes": len(results), "target_rate": args.rate,
            "sent": sent, "delivered": sum(r["delivered"] for r in results), "failed": sum(r["failed"] for r in results),
            "errors": [e for r in results for e in r["errors"]][:5], "seconds": round(seconds, 3),
            "achieved_rate": round(sent / seconds, 1) if seconds > 0 else None,
            "per_topic": dict(sorted(per_topic.items())),
            "per_noise": {t: dict(sorted(c.items())) for t, c in sorted(per_noise.items())},
            "truth": dict(sorted(truth.items())), "seed": args.seed}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--streams", default="all", help="comma list of topics, or all")
    p.add_argument("--mix", default=None, help="relative weights, e.g. transactions=0.7,market_ticks=0.3")
    p.add_argument("--rate", default="1000", help="messages per second over all topics, or 'max' for unthrottled")
    p.add_argument("--sim-rate", type=float, default=50000.0,
                   help="with --rate max: messages per second of event time (how fast event time advances)")
    p.add_argument("--count", type=int, default=None, help="stop after this many messages")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--processes", type=int, default=1, help="producer processes sharing the rate")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--start", default=None, help="event time of the first event (ISO); default now for kafka, 2026-01-01 for files")
    p.add_argument("--world-seed", type=int, default=None,
                   help="seed of the customers, cards and merchants (default --seed): continue a world with new event ids")
    p.add_argument("--drift", default=None, help="drift from --drift-at on: amounts (x2), atm_cashout (a new fraud scenario), or both")
    p.add_argument("--drift-at", default=None, help="event time the drift starts (ISO or epoch; default the first event)")
    p.add_argument("--noise", default=None, help="e.g. malformed=0.01,duplicate=0.02,late=0.01 (or all=0.01)")
    p.add_argument("--fraud-rate", type=float, default=0.005)
    p.add_argument("--label-delay", type=float, default=300.0, help="median seconds from transaction to label")
    p.add_argument("--threshold-bps", type=float, default=2.0, help="trading label: |next return| above this is up/down")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--mode", choices=["kafka", "files", "bronze"], default="kafka")
    p.add_argument("--kafka-time", choices=["now", "event"], default="now",
                   help="kafka mode: record timestamps are the send time (a live stream) or each event's own time (a replay of "
                        "history: silver's lateness rule compares the two; topics must keep messages that old)")
    p.add_argument("--out", default=None, help="files mode: output folder (default FINLAKE_HOME/landing/<run>)")
    p.add_argument("--no-truth", dest="truth", action="store_false", help="do not write truth tables")
    p.add_argument("--run-id", default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    p = build_parser()
    result = common.execute(p, argv, run, app_name="finlake-produce", needs_spark=lambda a: a.mode == "bronze")
    print(json.dumps(result, indent=2))
    common.emit(result)
    return result


if __name__ == "__main__":
    main()
