"""Model monitoring: drift and delayed-label checks, pure on inline data, then on the trained
fraud champion (real MLflow registry and Delta tables) with one feature shifted in a copy of gold."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from ml.monitor import judge_drift, judge_labels, verdict


def test_a_shifted_column_drifts_a_stable_one_does_not_and_a_short_one_is_skipped():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"same": rng.normal(size=3000), "moved": rng.normal(size=3000), "short": rng.normal(size=3000)})
    cur = pd.DataFrame({"same": rng.normal(size=3000), "moved": rng.normal(1.5, 1, size=3000),
                        "short": [np.nan] * 2950 + list(rng.normal(size=50))})
    checks = judge_drift(ref, cur, ["same", "moved", "short"], bins=10, psi_threshold=0.2, ks_alpha=0.01, min_rows=200)
    status = {(c["check"], c["feature"]): c["status"] for c in checks}
    assert status == {("feature_psi", "same"): "ok", ("feature_ks", "same"): "ok",
                      ("feature_psi", "moved"): "drifting", ("feature_ks", "moved"): "drifting",
                      ("feature_psi", "short"): "skipped", ("feature_ks", "short"): "skipped"}
    assert verdict(checks) == "drifting"


def test_delayed_labels_degrade_only_below_the_reference_pr_auc_minus_the_allowed_drop():
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.05).astype(int)
    good = np.clip(y * 0.8 + rng.random(2000) * 0.3, 0, 1)     # separates the frauds well
    noise = rng.random(2000)                                     # a model that lost its signal
    ok = judge_labels(y, good, 0.5, reference_pr_auc=0.8, max_drop=0.1, min_rows=200, min_positives=10)
    bad = judge_labels(y, noise, 0.5, reference_pr_auc=0.8, max_drop=0.1, min_rows=200, min_positives=10)
    few = judge_labels(y[:100], good[:100], 0.5, reference_pr_auc=0.8, max_drop=0.1, min_rows=200, min_positives=10)
    assert [c["check"] for c in ok] == ["pr_auc", "precision", "recall"] and verdict(ok) == "ok"
    assert verdict(bad) == "degraded" and bad[0]["threshold"] == pytest.approx(0.7) and bad[0]["value"] < 0.7
    assert [c["status"] for c in few] == ["skipped"] and verdict(few) == "ok"
    assert verdict([*ok, *bad, {"status": "drifting"}]) == "degraded"


def test_a_pr_auc_drop_must_be_significant_against_the_champions_own_test_rows():
    """A champion judged on a small test period (18 frauds) has a noisy PR-AUC: a recent value a
    little under its bound is not degradation; a collapse to noise is."""
    rng = np.random.default_rng(4)

    def sample(n, rate, sep):
        y = (rng.random(n) < rate).astype(int)
        return y, 1 / (1 + np.exp(-(sep * y + rng.normal(0, 1, n))))

    y_ref, p_ref = sample(500, 0.05, 3.2)
    y, p = sample(3000, 0.05, 2.5)
    ref_pr_auc = float(__import__("sklearn.metrics").metrics.average_precision_score(y_ref, p_ref))
    point = judge_labels(y, p, 0.5, ref_pr_auc, 0.1, 200, 10)
    tested = judge_labels(y, p, 0.5, ref_pr_auc, 0.1, 200, 10, reference=(y_ref, p_ref), alpha=0.05, n_boot=300)
    assert point[0]["value"] < point[0]["threshold"] and verdict(point) == "degraded"
    assert verdict(tested) == "ok" and float(tested[0]["details"]["drop_pvalue"]) >= 0.05
    collapsed = judge_labels(y, rng.random(3000), 0.5, ref_pr_auc, 0.1, 200, 10, reference=(y_ref, p_ref), alpha=0.05, n_boot=300)
    assert verdict(collapsed) == "degraded" and float(collapsed[0]["details"]["drop_pvalue"]) < 0.05


def _copy_of_gold(spark, ml_cfg, folder, shift: dict[str, float]):
    """``ml_cfg`` with gold.card_features and ops.model_monitor moved to ``folder``; the copy's
    last hour has each feature in ``shift`` multiplied by its factor; monitoring judges that hour."""
    from lakehouse.catalog import Catalog
    from tests.test_scoring import moved

    cfg = moved(ml_cfg, folder, ["gold.card_features", "ops.model_monitor"])
    data = dict(cfg.data)
    data["monitor"] = {**data["monitor"], "recent_hours": 1}
    cfg = dataclasses.replace(cfg, data=data)
    gold = spark.read.format("delta").load(Catalog(ml_cfg).spec("gold.card_features").location)
    newest = gold.agg(F.max("event_time")).first()[0]
    recent = F.col("event_time") > F.lit(newest) - F.expr("INTERVAL 1 HOUR")
    for col, factor in shift.items():
        gold = gold.withColumn(col, F.when(recent, F.col(col) * factor).otherwise(F.col(col)))
    gold.write.format("delta").save(Catalog(cfg).spec("gold.card_features").location)
    Catalog(cfg).register(spark, ["ops.model_monitor"])
    return cfg


def test_the_champion_is_flagged_on_the_shifted_feature_only(spark, cfg, ml_cfg, fraud_result, tmp_path):
    from lakehouse.catalog import Catalog
    from lakehouse.schemas.tables import MODEL_MONITOR
    from ml.monitor import monitor_use_case

    try:
        shifted = _copy_of_gold(spark, ml_cfg, tmp_path / "shifted", {"amount_max_1h": 5.0})
        same = _copy_of_gold(spark, ml_cfg, tmp_path / "same", {})
        drifted, control = monitor_use_case(spark, shifted, "fraud"), monitor_use_case(spark, same, "fraud")
        rows = spark.read.format("delta").load(Catalog(shifted).spec("ops.model_monitor").location)
        psi = {r.feature: r.status for r in rows.where("check = 'feature_psi'").collect()}
        stored = rows.schema
    finally:
        Catalog(cfg).register(spark)
    assert drifted["version"] == fraud_result["model"]["version"] and drifted["verdict"] in ("drifting", "degraded")
    assert "amount_max_1h" in drifted["drifting"] and "amount_max_1h" not in control["drifting"]
    assert psi["amount_max_1h"] == "drifting"
    assert set(drifted["drifting"]) - set(control["drifting"]) <= {"amount_max_1h", "score"}
    assert [f.name for f in stored.fields] == [f.name for f in MODEL_MONITOR.fields]
    assert rows.select("verdict").distinct().count() == 1 and rows.count() == drifted["checks"]
