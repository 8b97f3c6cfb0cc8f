"""Loan PD against the true PD as the history grows: the demo's loan history (its rates of
bureau updates and loan applications over 48 hours of event time) at 1x, 2x and 4x the span,
each through bronze, silver and gold in a home of its own, then loan-PD training (no ablation).

    python -m bench.pd_history [--multiples 1,2,4]

Writes bench/results/pd_history.json: per multiple the rows, the fitted setting, RMSE against the
true PD, Brier score and ROC-AUC of xgboost, and the RMSE of the GBTRegressor beside it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

HOURS = 48
MESSAGES = 36_000          # the demo's bureau updates + loan applications over its 48 hours
MIX = "bureau_updates=0.07,loan_applications=0.08"   # the demo's HISTORY_MIX for these two streams


def run(multiple: int, home: Path, spark=None) -> tuple[dict, object]:
    from jobs import produce, stream
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.session import build_session
    from ml.train import train_use_case

    cfg = load_config("local", ["security.pan_hmac_key_missing=generate", "ml.search.ablation=false"], home=home)
    spark = spark or build_session(cfg, app_name="finlake-bench-pd-history")
    Catalog(cfg).register(spark)
    hours, count = HOURS * multiple, MESSAGES * multiple
    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.perf_counter()
    produce.run(spark, cfg, produce.build_parser().parse_args([
        "--mode", "bronze", "--count", str(count), "--rate", "max", "--sim-rate", f"{count / (hours * 3600):.6f}", "--start", start,
        "--seed", "11", "--streams", "bureau_updates,loan_applications", "--mix", MIX, "--quiet", "--run-id", f"pd-{multiple}"]))
    stream.run(spark, cfg, argparse.Namespace(streams="bureau_updates,loan_applications", layers="silver,gold", available_now=True,
                                              timeout=None))
    r = train_use_case(spark, cfg, "loan_pd")
    m = r["metrics"]
    return {"hours": hours, "messages": count, "rows": r["rows"], "fitted": r["fitted"],
            "xgboost": {k: m["xgboost"].get(k) for k in ("rmse_vs_true_pd", "brier", "roc_auc")},
            "gbt_rmse_vs_true_pd": m["gbt"].get("rmse_vs_true_pd"), "seconds": round(time.perf_counter() - t0, 1)}, spark


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--multiples", default="1,2,4")
    p.add_argument("--out", default="bench/results/pd_history.json")
    args = p.parse_args(argv)
    base = Path(os.environ.get("FINLAKE_HOME", Path.home() / ".finlake")) / "bench_pd_history"
    out, spark = {"multiples": {}, "machine": {"cpus": os.cpu_count()}}, None
    for m in [int(x) for x in args.multiples.split(",")]:
        home = base / f"x{m}"
        if home.exists():
            raise SystemExit(f"finlake: error: {home} exists from an earlier run; remove it first")
        out["multiples"][m], spark = run(m, home, spark)
        r = out["multiples"][m]
        print(f"{m}x ({r['rows']['train']:,} training rows): RMSE vs true PD {r['xgboost']['rmse_vs_true_pd']:.4f}, "
              f"Brier {r['xgboost']['brier']:.4f}, ROC-AUC {r['xgboost']['roc_auc']:.4f}; GBTRegressor RMSE {r['gbt_rmse_vs_true_pd']:.4f}")
    out["measured_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
