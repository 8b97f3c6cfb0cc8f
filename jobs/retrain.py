"""Retrain a challenger on a fresh window of gold and promote it only when it beats the
champion on the same recent rows, by the metric and by a paired test; record the decision.

    python jobs/retrain.py --use-case fraud                      # retrain now (a schedule)
    python jobs/retrain.py --when drifting                       # only models the monitor finds drifting or degraded
    python jobs/retrain.py --use-case fraud --window-hours 72
"""
from __future__ import annotations

import sys
import time

from rich.console import Console

from jobs import common
from jobs.train import parse_use_cases


def run(spark, cfg, args) -> dict:
    # pyspark, pandas: +2.0 s at import; --help stays quick
    from ml.datasets import LeakageError, TrainingDataError
    from ml.monitor import MonitorError
    from ml.retrain import retrain_use_case

    console = Console(stderr=True)
    started = time.perf_counter()
    results = {}
    for name in parse_use_cases(args.use_case):
        def step(msg, n=name):
            console.log(f"{n}: {msg} ({time.perf_counter() - started:,.0f} s)")

        try:
            r = retrain_use_case(spark, cfg, name, args.when, args.window_hours, step)
        except (MonitorError, TrainingDataError, LeakageError) as exc:
            common.fail(str(exc))
        results[name] = r
        if not r["retrained"]:
            print(f"{name}: not retrained ({r['reason']})", flush=True)
        else:
            word = "promoted" if r["promoted"] else "not promoted"
            print(f"{name}: challenger v{r['challenger']} {word} ({r['reason']})", flush=True)
    return {"use_cases": results, "seconds": round(time.perf_counter() - started, 1)}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--use-case", default="all", help="fraud, trading, loan_pd, a comma list, or all")
    p.add_argument("--when", choices=["always", "drifting", "degraded"], default="always",
                   help="always, or only when the monitor's verdict is drifting (or degraded) or worse")
    p.add_argument("--window-hours", type=float, default=None, help="training window, hours of event time (default retrain.window_hours)")
    return p


def main(argv=None):
    p = build_parser()
    parse_use_cases(p.parse_args(argv).use_case)  # a bad name fails before Spark starts
    result = common.execute(p, argv, run, app_name="finlake-retrain")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
