"""The trading sequence challenger (ml/sequence.py): windows of a symbol's past ticks, a BiLSTM
that learns what only a window shows, and the challenger trained on the pipeline's gold ticks,
registered in the real MLflow store and judged against the xgboost champion on the same rows."""
from __future__ import annotations

import copy
import dataclasses
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

# No skip without the extra: make install (and CI) installs it, and a missing Keras must fail here.
SMALL = ["ml.sequence.window=8", "ml.sequence.hidden=8", "ml.sequence.epochs=3", "ml.sequence.patience=2"]


def test_windows_hold_each_symbols_own_past_ticks_oldest_first():
    from ml.sequence import scaling, tick_windows

    # Two symbols interleaved and out of order; a tie in time is broken by event id.
    ticks = pd.DataFrame({
        "event_id": ["a3", "b1", "a1", "a2", "b2", "a4"],
        "event_time": pd.to_datetime(["2026-03-01 12:00:03", "2026-03-01 12:00:01", "2026-03-01 12:00:01",
                                      "2026-03-01 12:00:01", "2026-03-01 12:00:05", "2026-03-01 12:00:09"]),
        "symbol": ["A", "B", "A", "A", "B", "A"],
        "x": [3.0, 10.0, 1.0, 2.0, np.nan, 4.0],
        "y": [30.0, 100.0, 10.0, 20.0, 200.0, 40.0],
    })
    mean, std = scaling(ticks[["x", "y"]].to_numpy())
    assert mean.tolist() == pytest.approx([4.0, 400 / 6]) and std[0] == pytest.approx(np.nanstd([3, 10, 1, 2, 4]))
    w = tick_windows(ticks, ["x", "y"], 3, np.array([0.0, 0.0]), np.array([1.0, 10.0]))
    expected = np.array([
        [[1, 1], [2, 2], [3, 3]],      # a3: a1, a2, a3
        [[0, 0], [0, 0], [10, 10]],    # b1: the symbol's first tick, padded
        [[0, 0], [0, 0], [1, 1]],      # a1
        [[0, 0], [1, 1], [2, 2]],      # a2
        [[0, 0], [10, 10], [0, 20]],   # b2: a missing value is the (scaled) mean, 0
        [[2, 2], [3, 3], [4, 4]],      # a4: only the last three
    ], dtype="float32")
    np.testing.assert_array_equal(w, expected)


def test_the_network_learns_what_only_the_window_shows():
    """Each tick's class is the sign band of a feature three ticks earlier: invisible in the
    tick's own features (window 1), plain in a window of four."""
    from ml.sequence import build_network, fit_network, predict, tick_windows
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=n)
    label = np.digitize(np.r_[np.zeros(3), x[:-3]], [-0.4, 0.4])   # 0 down, 1 flat, 2 up
    ticks = pd.DataFrame({"event_id": [f"t{i:05d}" for i in range(n)], "event_time": np.arange(n), "symbol": "S", "x": x,
                          "noise": rng.normal(size=n)})
    train, val, test = slice(0, 2000), slice(2000, 2500), slice(2500, n)

    def auc(window: int) -> float:
        w = tick_windows(ticks, ["x", "noise"], window, np.zeros(2), np.ones(2))
        net = build_network(window, 2, 3, hidden=8, dropout=0.0, learning_rate=0.01, seed=1)
        fit_network(net, w[train], label[train], w[val], label[val], epochs=12, patience=12, batch_size=64)
        return roc_auc_score(label[test], predict(net, w[test]), multi_class="ovr")

    assert auc(4) > 0.9
    assert auc(1) < 0.6


@pytest.fixture(scope="module")
def own_store(ml_cfg, tmp_path_factory):
    """The suite's gold ticks with an MLflow store of this module's own (the training tests keep
    the suite's registry numbering)."""
    tmp = tmp_path_factory.mktemp("sequence_store")
    data = copy.deepcopy(dict(ml_cfg.data))
    data["ml"]["mlflow"]["tracking_uri"] = f"sqlite:///{tmp}/mlflow.db"
    data["paths"]["mlflow_db"] = str(tmp / "mlflow.db")
    data["paths"]["reports"] = str(tmp / "reports")
    for item in SMALL:
        key, value = item.split("=")
        data["ml"]["sequence"][key.split(".")[-1]] = int(value)
    return dataclasses.replace(ml_cfg, data=data)


def test_without_a_champion_the_challenger_stops_in_one_line(ml_cfg, own_store):
    from ml import registry
    from ml.datasets import TrainingDataError
    from ml.sequence import train_sequence

    try:
        with pytest.raises(TrainingDataError, match=r"no xgboost champion \(finlake-trading@champion\).*finlake train --use-case trading"):
            train_sequence(None, own_store)
    finally:
        registry.connect(ml_cfg)   # the suite's MLflow store again


def test_the_challenger_is_registered_and_judged_against_the_champion_on_the_same_ticks(spark, ml_cfg, own_store):
    import mlflow.artifacts

    from lakehouse.catalog import Catalog
    from ml import registry
    from ml.datasets import USE_CASES, build_rows
    from ml.sequence import load_sequence_model, train_sequence
    from ml.train import train_use_case

    try:
        champion = train_use_case(spark, own_store, "trading")
        steps = []
        result = train_sequence(spark, own_store, steps.append)
    finally:
        registry.connect(ml_cfg)   # the suite's MLflow store again
    client = registry.connect(own_store)
    try:
        assert result["model"] == {"name": "finlake-trading-sequence", "version": "1", "run_id": result["model"]["run_id"],
                                   "alias": "challenger"}
        assert str(client.get_model_version_by_alias("finlake-trading-sequence", "challenger").version) == "1"
        assert registry.alias_version(client, "finlake-trading-sequence", "champion") is None
        assert str(registry.alias_version(client, "finlake-trading", "champion").version) == "1"   # serving is untouched
        # The champion is scored on exactly the ticks its own run was judged on: same metrics.
        m = result["metrics"]
        assert set(m) == {"sequence", "xgboost_champion_v1", "ceiling"}
        for k in ("auc_macro", "macro_f1", "log_loss", "rows"):
            assert m["xgboost_champion_v1"][k] == pytest.approx(champion["metrics"]["xgboost"][k]), k
        assert m["sequence"]["rows"] == champion["rows"]["test"] == result["rows"]["test"]
        assert 0.4 < m["sequence"]["auc_macro"] <= m["ceiling"]["auc_macro"] + 0.02
        vs = result["vs_champion"]
        assert vs["test"] == "paired bootstrap" and 0.0 <= vs["p_value"] <= 1.0
        assert vs["beats_champion"] == (m["sequence"]["auc_macro"] > m["xgboost_champion_v1"]["auc_macro"] and vs["p_value"] < 0.05)
        assert 1 <= result["best_epoch"] <= len(result["history"]) <= 3
        assert any(s.startswith("epoch 1/3: loss ") for s in steps)
        version = client.get_model_version("finlake-trading-sequence", "1")
        assert version.tags["beats_champion"] == str(vs["beats_champion"]).lower() and version.tags["window"] == "8"
        # Serving equals training: the registered pyfunc, given the ticks, gives the logged test scores.
        rows, _ = build_rows(spark, Catalog(own_store), USE_CASES["trading"])
        ticks = rows.toPandas()
        served = load_sequence_model("finlake-trading-sequence", "challenger").predict(ticks)
        logged = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{result['model']['run_id']}/test_scores.csv")))
        got = pd.concat([ticks[["event_id"]], served], axis=1).merge(logged, on="event_id")
        assert len(got) == result["rows"]["test"]
        for c in ("down", "flat", "up"):
            np.testing.assert_allclose(got[f"p_{c}"], got[f"sequence_{c}"], atol=1e-5)
        assert (own_store.path("paths.reports") / "training" / "trading_sequence" / "learning_curve.png").stat().st_size > 1000
    finally:
        registry.connect(ml_cfg)


@pytest.mark.parametrize("argv, line", [
    (["--use-case", "fraud"], "--model sequence trains the trading use case only: use --use-case trading"),
    (["--use-case", "trading", "--as-of", "1700000000"],
     "--as-of applies to the xgboost models only (trading labels come from the ticks that follow)"),
])
def test_the_job_refuses_what_the_sequence_model_cannot_do_in_one_line(job_env, argv, line):
    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "jobs/train.py", *argv, "--model", "sequence"], cwd=ROOT,
                         env=job_env, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == f"finlake: error: {line}"


@pytest.mark.parametrize("key, value, line", [
    ("window", 0, "ml.sequence.window must be at least 1, got 0"),
    ("dropout", 1.0, "ml.sequence.dropout must be in [0, 1), got 1.0"),
    ("hidden", "many", "ml.sequence.hidden: expected a number, got 'many'"),
])
def test_bad_sequence_settings_are_one_line(tmp_path, key, value, line):
    from lakehouse.config import load_config
    from ml.sequence import settings

    assert settings(load_config(None, [], home=tmp_path))["window"] == 32   # the shipped defaults pass
    cfg = load_config(None, [f"ml.sequence.{key}={value}"], home=tmp_path)
    with pytest.raises(ValueError) as exc:
        settings(cfg)
    assert str(exc.value) == line
