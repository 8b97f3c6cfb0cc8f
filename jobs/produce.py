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
import sys
import time
from pathlib import Path

from jobs import common
from lakehouse.kafka.broker import ensure_broker


def run(spark, cfg, args) -> dict:
    # Imported here, not at the top: the producer loads pyspark (through the table schemas) and
    # rich draws the bar; ``--help`` and the command list need neither.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lakehouse.generators.producer import ShardProcesses, keep_the_replay, plans_from, summarize

    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%S")
    plans, out = plans_from(cfg, args, run_id)
    if plans[0].mode == "kafka":
        ensure_broker(cfg)
        notice = keep_the_replay(cfg, plans[0].gen) if args.kafka_time == "event" else None
        if notice:
            print(f"produce: {notice}", file=sys.stderr, flush=True)
    shards = ShardProcesses(plans)   # forked before the bar starts its refresh thread
    total = args.count
    with Progress(TextColumn("[bold]produce"), BarColumn(), TextColumn("{task.completed:,.0f} msgs"),
                  TextColumn("{task.fields[rate]:,.0f}/s"), TimeElapsedColumn(), disable=args.quiet,
                  transient=True) as bar:
        task = bar.add_task("produce", total=total or args.duration, rate=0)

        def show(done, elapsed):
            bar.update(task, completed=done if total else min(elapsed, args.duration), rate=done / max(elapsed, 1e-9))

        collected = shards.wait(show)
    errors = [r["error"] for r in collected if "error" in r]
    if errors or len(collected) < len(plans):
        common.fail(f"producer shard failed: {errors[0] if errors else 'a process exited without a result'}")
    summary = summarize(collected, args, run_id)
    if args.mode == "files":
        summary["files"] = out
    if args.mode == "bronze":
        from lakehouse.backfill import files_to_bronze   # pyspark: only the bronze mode needs it

        summary["bronze_rows"] = files_to_bronze(spark, cfg, Path(out))
    return summary


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
