"""Compare the fraud alert objectives on the current champion: each threshold chosen on the
champion's own validation period, judged on its test period (the rows of its training run).

    FINLAKE_HOME=... python -m bench.thresholds [--review-cost 5] [--target-recall 0.8]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json


def run(spark, cfg, review_cost: float, target_recall: float) -> dict:
    import mlflow
    from pyspark.sql import functions as F

    from lakehouse.catalog import Catalog
    from ml import evaluate as ev
    from ml import registry
    from ml.datasets import USE_CASES, build_rows

    client = registry.connect(cfg)
    name = registry.registered_name(cfg, "fraud")
    version = registry.alias_version(client, name, registry.CHAMPION)
    if version is None:
        raise SystemExit("finlake: error: no fraud champion; train one first (jobs/train.py --use-case fraud)")
    split = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/lineage.json")["split"]
    features = json.loads(version.tags["features"])
    calibration = registry.load_calibration(client, name, version)
    booster = registry.load_booster(name, str(version.version))
    rows, _ = build_rows(spark, Catalog(cfg), USE_CASES["fraud"])
    ts = lambda iso: dt.datetime.fromisoformat(iso).timestamp()  # noqa: E731
    t = F.col("event_time").cast("double")
    val = rows.where((t >= ts(split["train_end"])) & (t < ts(split["validation_end"]) - split["embargo_s"])).toPandas()
    test = rows.where((t >= ts(split["validation_end"])) & (t <= ts(split["end"]))).toPandas()
    score = lambda df: calibration.apply(booster.inplace_predict(df[features].astype("float64")))  # noqa: E731
    pv, pt = score(val), score(test)
    out = {"model": f"{name} v{version.version}", "validation_rows": len(val), "test_rows": len(test),
           "test_frauds": int(test["label"].sum()), "test_fraud_amount": float(test.loc[test["label"] == 1, "amount"].sum()),
           "objectives": {}}
    for objective in ev.OBJECTIVES:
        policy = ev.ThresholdPolicy(objective, review_cost, target_recall)
        threshold = ev.choose_threshold(val["label"].to_numpy(), pv, policy, val["amount"].to_numpy())
        m = ev.binary_metrics(test["label"].to_numpy(), pt, threshold, test["amount"].to_numpy(), review_cost, policy.on)
        out["objectives"][objective] = {k: m[k] for k in ("threshold", "precision", "recall", "f1", "tp", "fp", "fn",
                                                          "fraud_amount_caught_share", "net_saved")}
    return out


def main(argv=None):
    from lakehouse.config import load_config
    from lakehouse.session import build_session

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--review-cost", type=float, default=5.0)
    p.add_argument("--target-recall", type=float, default=0.8)
    args = p.parse_args(argv)
    cfg = load_config()
    spark = build_session(cfg, app_name="finlake-bench-thresholds")
    print(json.dumps(run(spark, cfg, args.review_cost, args.target_recall), indent=1, default=float))


if __name__ == "__main__":
    main()
