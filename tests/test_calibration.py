"""Calibrated probabilities, thresholds chosen by cost or recall, and feature groups (pure: no Spark)."""
from __future__ import annotations

import numpy as np
import pytest

from ml import calibration, evaluate as ev


def miscalibrated(n: int, seed: int):
    """Raw scores whose true probability is score**3: ordered right, far too high."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 1, n)
    return raw, (rng.uniform(0, 1, n) < raw ** 3).astype(int)


def test_isotonic_calibration_fixes_probabilities_and_keeps_the_ranking():
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import log_loss, roc_auc_score

    raw_val, y_val = miscalibrated(20_000, 1)
    raw_test, y_test = miscalibrated(20_000, 2)
    cal = calibration.fit("isotonic", y_val, raw_val)
    p = cal.apply(raw_test)
    assert calibration.expected_calibration_error(y_test, raw_test) > 0.15
    assert calibration.expected_calibration_error(y_test, p) < 0.01
    assert log_loss(y_test, np.clip(p, 1e-7, 1 - 1e-7)) < log_loss(y_test, raw_test)
    # The tie-break keeps the raw order: ROC-AUC is the raw scores' own.
    assert roc_auc_score(y_test, p) == roc_auc_score(y_test, raw_test)
    # The stored knots reproduce scikit-learn's isotonic fit (up to the tie-break slope).
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw_val, y_val)
    assert np.max(np.abs(p - iso.predict(raw_test))) <= calibration.TIE_BREAK
    # A round trip through the artifact's dict gives the same map; "none" is the identity.
    assert np.array_equal(calibration.Calibration.from_dict(cal.to_dict()).apply(raw_test), p)
    assert np.array_equal(calibration.fit("none", y_val, raw_val).apply(raw_test), raw_test)
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        calibration.fit("platt", y_val, raw_val)


def test_expected_calibration_error_on_inline_rows():
    # Bin [0.1, 0.2): 2 rows, mean p 0.15, observed 0.5; bin [0.9, 1]: 2 rows, mean p 0.95, observed 1.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.2 - 1e-9, 0.9, 1.0])
    assert calibration.expected_calibration_error(y, p) == pytest.approx((2 * abs(0.5 - 0.15) + 2 * 0.05) / 4)


Y = np.array([1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
AMOUNT = np.array([100.0, 10.0, 1000.0, 10.0, 10.0])


def test_thresholds_by_cost_by_recall_and_by_f1():
    # Alerting the top 3 costs 3 reviews and lets no fraud through: 15 against 1,100 for none.
    assert ev.choose_threshold(Y, P, ev.ThresholdPolicy("cost", 5.0), AMOUNT) == 0.7
    # Reviews dearer than every fraud: alert nothing.
    assert ev.choose_threshold(Y, P, ev.ThresholdPolicy("cost", 2000.0), AMOUNT) > 0.9
    # Half the frauds are caught at the top score already; all of them need 0.7.
    assert ev.choose_threshold(Y, P, ev.ThresholdPolicy("precision_at_recall", target_recall=0.5)) == 0.9
    assert ev.choose_threshold(Y, P, ev.ThresholdPolicy("precision_at_recall", target_recall=1.0)) == 0.7
    assert ev.choose_threshold(Y, P, ev.ThresholdPolicy("f1")) == 0.7
    with pytest.raises(ValueError, match="unknown threshold objective 'profit'"):
        ev.ThresholdPolicy("profit")


def test_binary_metrics_count_the_confusion_matrix_and_the_amounts():
    m = ev.binary_metrics(Y, P, 0.8, AMOUNT, review_cost=5.0)
    assert {k: m[k] for k in ("tp", "fp", "fn", "tn", "fraud_amount", "fraud_amount_caught", "review_cost", "net_saved")} == {
        "tp": 1, "fp": 1, "fn": 1, "tn": 2, "fraud_amount": 1100.0, "fraud_amount_caught": 100.0,
        "review_cost": 10.0, "net_saved": 90.0}
    assert m["fraud_amount_caught_share"] == pytest.approx(100 / 1100)
    assert m["precision"] == m["recall"] == 0.5
    assert m["recall_at_0_5pct_fpr"] == m["recall_at_1pct_fpr"] == m["recall_at_2pct_fpr"] == 0.5
    assert m["brier"] == pytest.approx(np.mean((P - Y) ** 2))


def test_feature_groups_switch_off_in_config_and_cover_gold(tmp_path):
    from lakehouse.config import load_config
    from lakehouse.gold import CARD_FEATURES
    from ml.datasets import USE_CASES

    fraud = USE_CASES["fraud"]
    assert list(fraud.features) == CARD_FEATURES
    cfg = load_config("local", overrides=["ml.features.fraud.drop_groups=[user_events,geo]"], home=tmp_path)
    kept = fraud.configured(cfg)
    assert list(kept.groups) == ["velocity", "diversity", "timing", "amount_history", "channel", "customer_days", "time_of_day",
                                 "device", "merchant_risk", "terminal_risk"]
    assert [f for f in CARD_FEATURES if f not in kept.features] == [
        "km_from_prev_tx", "km_from_home", "risky_user_events_1h", "risky_user_events_24h", "device_changes_24h",
        "distinct_ip_countries_24h"]
    assert "mid" not in USE_CASES["trading"].configured(cfg).features
    bad = load_config("local", overrides=["ml.features.fraud.drop_groups=[geography]"], home=tmp_path)
    with pytest.raises(ValueError, match="unknown group 'geography'"):
        fraud.configured(bad)


def test_served_scores_go_through_the_versions_calibration():
    import pandas as pd
    import xgboost as xgb

    from ml.datasets import USE_CASES
    from ml.scoring import LoadedModel, predict

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (x["a"] + rng.normal(size=400) > 1).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), 20)
    raw = booster.inplace_predict(x)
    cal = calibration.fit("isotonic", y.to_numpy(), raw)
    model = LoadedModel("m", "1", ("a", "b"), 0.5, (), b"", cal)
    out = predict(booster, x, USE_CASES["fraud"], model)
    assert np.array_equal(out["score"], cal.apply(raw)) and not np.array_equal(out["score"], raw)
    assert list(out["decision"]) == ["alert" if s >= 0.5 else "pass" for s in cal.apply(raw)]


def test_expected_loss_alerts_large_payments_at_lower_probabilities():
    # Expected losses 90, 8, 700, 2, 1: two alerts catch both frauds (cost 10 against 15 by score).
    policy = ev.ThresholdPolicy("expected_loss", 5.0)
    assert policy.on == "expected_loss"
    assert ev.choose_threshold(Y, P, policy, AMOUNT) == pytest.approx(90.0)
    m = ev.binary_metrics(Y, P, 90.0, AMOUNT, 5.0, on="expected_loss")
    assert (m["tp"], m["fp"], m["fn"], m["net_saved"]) == (2, 0, 0, 1090.0)
    assert list(ev.alerts(P, 90.0, "expected_loss", AMOUNT)) == [True, False, True, False, False]
    with pytest.raises(ValueError, match="needs the amounts"):
        ev.choose_threshold(Y, P, policy)


def test_served_expected_loss_decisions_use_each_rows_amount():
    import pandas as pd
    import xgboost as xgb

    from ml.datasets import USE_CASES
    from ml.scoring import LoadedModel, predict

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=300), "amount": rng.uniform(1, 500, 300)})
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x[["a"]], label=(x["a"] > 0.5).astype(int)), 10)
    model = LoadedModel("m", "1", ("a",), 25.0, (), b"", calibration.NONE, "expected_loss")
    out = predict(booster, x, USE_CASES["fraud"], model)
    p = booster.inplace_predict(x[["a"]])
    assert list(out["decision"]) == ["alert" if s * a >= 25.0 else "pass" for s, a in zip(p, x["amount"])]
    assert np.allclose(out["threshold"], 25.0 / x["amount"].to_numpy())
    with pytest.raises(ValueError, match="needs each row's amount"):
        predict(booster, x[["a"]], USE_CASES["fraud"], model)
