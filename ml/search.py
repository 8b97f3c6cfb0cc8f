"""Hyperparameter search over time-ordered folds of the training period.

Each setting (depth, learning rate, rounds) and the baseline are scored on every fold; the
per-fold metrics are kept (they are the samples of the paired t-test and the ANOVA in
``stats``). Fits run natively on the driver: a fold fit is a few seconds of work, and the
fixed cost of a Spark barrier job per fit would dominate it. The final model is trained with
xgboost.spark on the whole training period.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from lakehouse.config import Config
from ml.datasets import TrainingDataError, UseCase, expanding_folds
from ml.evaluate import fold_metric
from ml.models import native_baseline, native_scores, native_xgb


@dataclass(frozen=True)
class SearchResult:
    folds: pd.DataFrame      # fold, max_depth, learning_rate, n_estimators, [class_weight,] metric
    baseline: pd.DataFrame   # fold, metric
    best: dict               # the setting with the best mean fold metric
    metric: str

    def best_folds(self) -> pd.DataFrame:
        """Per-fold metric of the best setting."""
        m = np.ones(len(self.folds), dtype=bool)
        for k, v in self.best.items():
            m &= self.folds[k].to_numpy() == v
        return self.folds[m].sort_values("fold")[["fold", "metric"]].reset_index(drop=True)


CLASS_WEIGHTS = ("balanced", "none")


def grid(cfg: Config, use_case: UseCase | None = None) -> list[dict]:
    """Every combination of the configured depths, learning rates and round counts, and for a
    binary use case of the class weights (``balanced``: scale_pos_weight = negatives / positives;
    ``none``)."""
    keys = ["max_depth", "learning_rate", "n_estimators"]
    binary = use_case is not None and use_case.kind == "binary"
    if binary:
        keys.append("class_weight")
    values = [cfg.get(f"ml.search.{k}", ["balanced"]) if k == "class_weight" else cfg[f"ml.search.{k}"] for k in keys]
    for k, v in zip(keys, values):
        if not isinstance(v, list) or not v:
            raise ValueError(f"ml.search.{k} must be a non-empty list, got {v!r}")
    if binary and set(values[-1]) - set(CLASS_WEIGHTS):
        raise ValueError(f"ml.search.class_weight: unknown {sorted(set(values[-1]) - set(CLASS_WEIGHTS))} (known: {', '.join(CLASS_WEIGHTS)})")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def setting_weight(setting: dict, y: np.ndarray) -> float | None:
    """The scale_pos_weight a setting trains with on labels ``y``."""
    return pos_weight(y) if setting.get("class_weight") == "balanced" else None


def pos_weight(y: np.ndarray) -> float | None:
    pos = float(np.sum(y == 1))
    return (len(y) - pos) / pos if pos else None


def run_search(cfg: Config, use_case: UseCase, x: np.ndarray, y: np.ndarray, times: np.ndarray,
               progress: Callable[[str], None] | None = None) -> SearchResult:
    """Score the grid and the baseline on ``ml.search.folds`` expanding-window folds."""
    k = int(cfg["ml.search.folds"])
    settings = grid(cfg, use_case)
    folds = expanding_folds(pd.Series(times), k, float(cfg["ml.split.embargo_s"]))
    metric = use_case.fold_metric
    rows, base_rows = [], []
    # One fit per (fold, depth, rate) with the most rounds; fewer rounds are read off its prefix.
    fits = sorted({(s["max_depth"], s["learning_rate"], s.get("class_weight")) for s in settings}, key=str)
    rounds = sorted({int(s["n_estimators"]) for s in settings})
    for f, (tr, ev) in enumerate(folds):
        y_ev = y[ev]
        labels_ok = len(np.unique(y_ev)) >= (len(use_case.classes) or 2) and len(np.unique(y[tr])) >= (len(use_case.classes) or 2)
        if not labels_ok:
            raise TrainingDataError(
                f"{use_case.name}: fold {f} of the search lacks a class in its training or evaluation rows "
                f"({len(tr)} / {len(ev)} rows); produce more history or lower ml.search.folds")
        for depth, rate, weight in fits:
            fixed = {"max_depth": depth, "learning_rate": rate, **({"class_weight": weight} if weight else {})}
            model = native_xgb(cfg, use_case, {**fixed, "n_estimators": max(rounds)}, setting_weight(fixed, y[tr]))
            model.fit(x[tr], y[tr])
            for n in rounds:
                if {**fixed, "n_estimators": n} not in settings:
                    continue
                scores = _prefix_scores(model, use_case, x[ev], n)
                rows.append({"fold": f, **fixed, "n_estimators": n, "metric": fold_metric(use_case.kind, metric, y_ev, scores)})
        base = native_baseline(use_case).fit(x[tr], y[tr])
        base_rows.append({"fold": f, "metric": fold_metric(use_case.kind, metric, y_ev, native_scores(base, use_case, x[ev]))})
        if progress:
            progress(f"search fold {f + 1}/{k}")
    table = pd.DataFrame(rows)
    keys = [k for k in ("max_depth", "learning_rate", "n_estimators", "class_weight") if k in table.columns]
    means = table.groupby(keys)["metric"].mean()
    best = dict(zip(means.index.names, means.idxmax()))
    best = {"max_depth": int(best["max_depth"]), "learning_rate": float(best["learning_rate"]), "n_estimators": int(best["n_estimators"]),
            **({"class_weight": str(best["class_weight"])} if "class_weight" in best else {})}
    return SearchResult(table, pd.DataFrame(base_rows), best, metric)


def _prefix_scores(model, use_case: UseCase, x: np.ndarray, n: int) -> np.ndarray:
    if use_case.kind == "multiclass":
        return model.predict_proba(x, iteration_range=(0, n))
    if use_case.kind == "pd":
        return model.predict(x, iteration_range=(0, n))
    return model.predict_proba(x, iteration_range=(0, n))[:, 1]


# What early stopping watches on the validation period, per kind: PR-AUC for fraud (the fold
# metric), the log loss of the class probabilities for trading, the RMSE of the PD (its Brier score's root).
EVAL_METRICS = {"binary": "aucpr", "multiclass": "mlogloss", "pd": "rmse"}


def early_stopping(cfg: Config, use_case: UseCase, setting: dict, x: np.ndarray, y: np.ndarray,
                   x_val: np.ndarray, y_val: np.ndarray) -> dict:
    """The rounds of ``setting`` that score best on the validation rows: one native fit of up to
    ``ml.search.max_rounds`` rounds that stops ``ml.xgboost.early_stopping_rounds`` rounds after
    the best. ``rounds`` is None (keep the searched count) when validation lacks a class."""
    cap = int(cfg.get("ml.search.max_rounds") or max(cfg["ml.search.n_estimators"]))
    patience = int(cfg["ml.xgboost.early_stopping_rounds"])
    out = {"max_rounds": cap, "patience": patience, "eval_metric": EVAL_METRICS[use_case.kind], "rounds": None, "best_score": None}
    if use_case.kind != "pd" and len(np.unique(y_val)) < (len(use_case.classes) or 2):
        return out
    model = native_xgb(cfg, use_case, {**setting, "n_estimators": cap}, setting_weight(setting, y))
    model.set_params(early_stopping_rounds=patience, eval_metric=out["eval_metric"])
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    return {**out, "rounds": int(model.best_iteration) + 1, "best_score": float(model.best_score)}


def feature_groups(cfg: Config, use_case: UseCase, setting: dict, booster, x: np.ndarray, y: np.ndarray,
                   x_val: np.ndarray, y_val: np.ndarray) -> dict:
    """What each feature group brings: its share of the fitted booster's total gain, and an
    ablation (``ml.search.ablation``): the validation fold metric of ``setting`` refitted natively
    without the group, beside the same fit with every group."""
    features = list(use_case.features)
    gains = booster.get_score(importance_type="total_gain")
    named = {f: float(gains.get(f, gains.get(f"f{i}", 0.0))) for i, f in enumerate(features)}
    total = sum(named.values()) or 1.0
    out = {"metric": use_case.fold_metric, "groups": {g: {"features": len(fs), "gain_share": round(sum(named[f] for f in fs) / total, 4)}
                                                      for g, fs in use_case.groups.items()}}
    if not cfg.get("ml.search.ablation", True) or (use_case.kind != "pd" and len(np.unique(y_val)) < (len(use_case.classes) or 2)):
        return out

    def fitted(cols: list[int]) -> float:
        model = native_xgb(cfg, use_case, setting, setting_weight(setting, y)).fit(x[:, cols], y)
        return fold_metric(use_case.kind, use_case.fold_metric, y_val, native_scores(model, use_case, x_val[:, cols]))

    out["with_all"] = round(fitted(list(range(len(features)))), 5)
    for g, fs in use_case.groups.items():
        keep = [i for i, f in enumerate(features) if f not in fs]
        if keep:
            without = fitted(keep)
            out["groups"][g].update(without=round(without, 5), loss_without=round(out["with_all"] - without, 5))
    return out
