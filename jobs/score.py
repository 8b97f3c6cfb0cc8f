"""Score gold features in streaming with each use case's champion: fraud scores and alerts,
trading signals, loan PDs. A champion moved in the registry is picked up at the next
micro-batch, with no restart.

    python jobs/score.py                                  # all use cases, continuous, until Ctrl-C
    python jobs/score.py --use-case fraud --available-now # score what gold holds, then exit
    python jobs/score.py --no-alerts                      # no Kafka alerts (scores only)
"""
from __future__ import annotations

import sys
import time

from jobs import common
from lakehouse.kafka.broker import ensure_broker
from lakehouse.kafka.clients import ensure_topics
from lakehouse.runtime import StreamingRun
from lakehouse.topology import USE_CASES
from serving.start import start_scorers


def run(spark, cfg, args) -> dict:
    names = common.pick("use case", args.use_case, USE_CASES)
    if args.alerts and "fraud" in names:
        ensure_broker(cfg)
        ensure_topics(cfg)
    common.live_metrics(spark, cfg, "score")
    started = time.monotonic()
    run = StreamingRun(spark, cfg, "scoring")
    try:
        fns = start_scorers(run, names, available_now=args.available_now, alerts=args.alerts)
    except RuntimeError as exc:   # no champion: one line
        run.stop()
        common.fail(str(exc))
    if args.available_now:
        run.await_all()
        run.stop()
    else:
        stop = common.stop_flag()
        print(f"scoring: {len(run.queries)} queries running; stop with Ctrl-C", flush=True)
        run.supervise(lambda: stop["stop"] or (args.timeout is not None and time.monotonic() - started >= args.timeout))
    out = {}
    for name, fn in fns.items():
        target = USE_CASES[name].scores
        batches = fn.history
        rows = spark.read.format("delta").load(run.catalog.spec(target).location).count() if run.catalog.register(spark, [target]) else 0
        out[name] = {"table": target, "rows": rows,
                     "batches": len(batches), "scored": sum(b["scored"] for b in batches),
                     "alerts": sum(b["alerts"] for b in batches), "versions": sorted({b["version"] for b in batches})}
        print(f"{name}: {out[name]['scored']:,} rows scored in {len(batches)} batches into {target}"
              + (f", {out[name]['alerts']:,} alerts" if name == "fraud" else "") + f" (model versions {out[name]['versions']})")
    return {"use_cases": out, "seconds": round(time.monotonic() - started, 1)}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--use-case", default="all", help="fraud, trading, loan_pd, a comma list, or all")
    p.add_argument("--available-now", action="store_true", help="score what is available, then exit")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--no-alerts", dest="alerts", action="store_false", help="do not send fraud alerts to Kafka")
    result = common.execute(p, argv, run, app_name="finlake-score")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
