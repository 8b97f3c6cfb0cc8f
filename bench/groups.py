"""What each fraud feature group is worth on a home's data, judged on the test period.

The training run's own ablation (``feature_groups.json``) refits once per group and reads the
validation period, where one refit's column sample moves PR-AUC by about 0.03. This reads the
home's labelled gold rows exactly as training splits them (``ml.train.build_training_data``),
fits the champion's fitted setting natively with every group and without each one, over several
seeds, and reports validation and test PR-AUC and ROC-AUC as means with their spread: a
measurement to decide on, not a step of training. Rows and labels are those of the champion's
training run (none after its split's end).

    python -m bench.groups [--groups device,time_of_day] [--seeds 7,11,23] [--out NAME.json]

FINLAKE_HOME names the home (a demo's, or ``bench.outside``'s ``bench_outside/<shape>-<seed>`` with
``--conf ml.features.fraud.drop_groups=[user_events]`` as that benchmark trains). Writes
bench/results/groups.json (or ``--out``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fit_scores(cfg, use_case, setting: dict, data, features: list[str], seed: int) -> dict:
    """Validation and test PR-AUC / ROC-AUC of ``setting`` fitted natively on ``features``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from ml.models import native_xgb
    from ml.search import setting_weight

    y = data.train_pd["label"].to_numpy()
    model = native_xgb(cfg, use_case, setting, setting_weight(setting, y)).set_params(random_state=seed)
    model.fit(data.train_pd[features].to_numpy(dtype=float), y)
    out = {}
    for period, frame in (("validation", data.val_pd), ("test", data.test_pd)):
        p = model.predict_proba(frame[features].to_numpy(dtype=float))[:, 1]
        out[period] = {"pr_auc": float(average_precision_score(frame["label"], p)), "roc_auc": float(roc_auc_score(frame["label"], p))}
    return out


def summarise(runs: list[dict]) -> dict:
    return {period: {m: {"mean": round(float(np.mean([r[period][m] for r in runs])), 4),
                         "sd": round(float(np.std([r[period][m] for r in runs])), 4)} for m in ("pr_auc", "roc_auc")}
            for period in ("validation", "test")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", default="", help="comma-separated groups to leave out one at a time (default: every group)")
    p.add_argument("--seeds", default="7,11,23")
    p.add_argument("--conf", action="append", default=[], help="config override, as for the jobs")
    p.add_argument("--out", default="groups.json")
    a = p.parse_args(argv)
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.session import build_session
    from ml.train import _settings, build_training_data

    home = Path(os.environ.get("FINLAKE_HOME", ROOT / ".finlake"))
    result_file = home / "reports" / "training" / "fraud" / "result.json"
    if not result_file.exists():
        raise SystemExit(f"finlake: error: {result_file} is missing: train fraud in this home first (make demo, or finlake train)")
    trained = json.loads(result_file.read_text())
    cfg = load_config("local", ["security.pan_hmac_key_missing=generate", *a.conf], home=home)
    spark = build_session(cfg, app_name="finlake-bench-groups")
    Catalog(cfg).register(spark)
    use_case, _, _ = _settings(cfg, "fraud")
    # The rows and labels the training run saw: none later than its split's end (a demo home's
    # live phase came after its training).
    as_of = dt.datetime.fromisoformat(trained["split"]["end"]).timestamp()
    data = build_training_data(spark, cfg, use_case, as_of, None, lambda _m: None)
    groups = [g.strip() for g in a.groups.split(",") if g.strip()] or list(data.use_case.groups)
    unknown = [g for g in groups if g not in data.use_case.groups]
    if unknown:
        raise SystemExit(f"finlake: error: no feature group '{unknown[0]}' with values here (groups: {', '.join(data.use_case.groups)})")
    seeds = [int(s) for s in a.seeds.split(",")]
    setting = dict(trained["fitted"])
    rows = {"with_all": summarise([fit_scores(cfg, data.use_case, setting, data, data.features, s) for s in seeds])}
    for g in groups:
        kept = [f for f in data.features if f not in data.use_case.groups[g]]
        rows[f"without_{g}"] = summarise([fit_scores(cfg, data.use_case, setting, data, kept, s) for s in seeds])
    out = {"home": str(home), "setting": setting, "seeds": seeds, "rows": {k: len(v) for k, v in
                                                                           (("train", data.train_pd), ("validation", data.val_pd),
                                                                            ("test", data.test_pd))},
           "results": rows, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (ROOT / "bench" / "results" / a.out).write_text(json.dumps(out, indent=1))
    for name, r in rows.items():
        t, v = r["test"], r["validation"]
        print(f"{name:28s} test PR-AUC {t['pr_auc']['mean']:.3f} +-{t['pr_auc']['sd']:.3f}  ROC-AUC {t['roc_auc']['mean']:.3f}   "
              f"validation PR-AUC {v['pr_auc']['mean']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
