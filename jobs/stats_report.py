"""Statistical diagnostics per use case: PCA and VIF on a bounded sample of the features, the
champion against its baseline (paired t-test and Wilcoxon over the search folds, DeLong on
the fraud test period), ANOVA and Tukey HSD over the hyperparameter search, and STL, ACF/PACF,
Ljung-Box and ADF per market symbol. Writes report.html, report.json and table4.md under
FINLAKE_HOME/reports/stats/, and logs them to each champion's training run in MLflow.

    python jobs/stats_report.py
    python jobs/stats_report.py --use-case fraud --conf stats.sample_rows=20000
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from jobs import common


def run(spark, cfg, args) -> dict:
    # Imported here, not at the top: the report loads pyspark, pandas, matplotlib and MLflow,
    # which --help and the scheduler's check of this job's arguments do not need.
    from ml.datasets import USE_CASES
    from reports.stats import write_report

    names = common.pick("use case", args.use_case, USE_CASES)
    out_dir = Path(args.out) if args.out else cfg.path("paths.reports") / "stats"
    started = time.perf_counter()
    written = write_report(spark, cfg, names, out_dir, progress=lambda name: print(f"stats: {name}", flush=True))
    print(written["markdown"])
    print(f"\nstats: report in {out_dir / 'report.html'} ({time.perf_counter() - started:.0f} s)")
    return {"out": str(out_dir), "table4": written["table4"], "logged_to_runs": written["logged_to_runs"],
            "seconds": round(time.perf_counter() - started, 1)}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--use-case", default="all", help="fraud, trading, loan_pd, a comma list, or all")
    p.add_argument("--out", default=None, help="output folder (default FINLAKE_HOME/reports/stats)")
    return p


def main(argv=None):
    p = build_parser()
    result = common.execute(p, argv, run, app_name="finlake-stats")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
