"""Monitor each champion: feature and prediction drift against its training period, and its
precision, recall and PR-AUC on the labels that arrived since; verdicts to ops.model_monitor.

    python jobs/monitor.py                         # fraud, trading and loan_pd
    python jobs/monitor.py --use-case fraud --conf monitor.recent_hours=6
    python jobs/monitor.py --fail-on degraded      # exit 3 when a model is degraded (for schedulers)
"""
from __future__ import annotations

import sys

from jobs import common
from jobs.train import parse_use_cases


def run(spark, cfg, args) -> dict:
    from ml.monitor import MonitorError, monitor_use_case  # pyspark, pandas: +1.8 s at import; --help stays quick

    results = {}
    for name in parse_use_cases(args.use_case):
        try:
            r = monitor_use_case(spark, cfg, name)
        except MonitorError as exc:
            common.fail(str(exc))
        results[name] = r
        why = ", ".join([*r["degraded"], *r["drifting"]]) or "no check failed"
        print(f"{name}: {r['model']} v{r['version']} {r['verdict']} ({why}; {r['checks']} checks, "
              f"{r['recent_rows']} recent rows against {r['reference_rows']} from its training period)", flush=True)
    return {"use_cases": results}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--use-case", default="all", help="fraud, trading, loan_pd, a comma list, or all")
    p.add_argument("--fail-on", choices=["never", "drifting", "degraded"], default="never",
                   help="exit 3 when a model's verdict is this bad or worse (schedulers retrain on it)")
    return p


def main(argv=None):
    p = build_parser()
    result = common.execute(p, argv, run, app_name="finlake-monitor")
    common.emit(result)
    fail_on = p.parse_args(argv).fail_on
    order = {"ok": 0, "drifting": 1, "degraded": 2}
    bad = [n for n, r in result["use_cases"].items() if fail_on != "never" and order[r["verdict"]] >= order[fail_on]]
    if bad:
        print(f"finlake: monitor: {', '.join(bad)} {fail_on} or worse", file=sys.stderr)
        raise SystemExit(3)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
