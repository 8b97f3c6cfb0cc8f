"""Metrics and figures for the three use cases, on numpy arrays.

The same functions score the model, the baseline and the ceiling (the generator's true
probabilities), so every report compares like with like.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn import metrics as skm

from ml.calibration import expected_calibration_error


def _auc(y, p) -> float | None:
    return float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


OBJECTIVES = ("cost", "expected_loss", "precision_at_recall", "f1")


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the fraud threshold is chosen on validation.

    - ``cost``: the score threshold of least cost, ``review_cost`` per alert plus the amount of
      every fraud let through;
    - ``expected_loss``: the same cost, but alerts are ranked by the expected loss
      ``probability x amount`` instead of the score, so a large payment is alerted at a lower
      probability than a small one (with calibrated probabilities the chosen threshold is close
      to ``review_cost``: alert when the expected loss exceeds what a review costs);
    - ``precision_at_recall``: the highest threshold that still catches ``target_recall`` of
      the frauds (so the best precision at that recall);
    - ``f1``: the best F1."""

    objective: str = "f1"
    review_cost: float = 5.0
    target_recall: float = 0.8

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown threshold objective '{self.objective}' (known: {', '.join(OBJECTIVES)})")
        if self.review_cost < 0 or not 0 < self.target_recall <= 1:
            raise ValueError("threshold review_cost must be >= 0 and target_recall in (0, 1]")

    @property
    def on(self) -> str:
        """What the threshold is compared with: ``score`` or ``expected_loss`` (score x amount)."""
        return "expected_loss" if self.objective == "expected_loss" else "score"

    @classmethod
    def from_cfg(cls, cfg) -> "ThresholdPolicy":
        return cls(str(cfg["ml.threshold.objective"]), float(cfg["ml.threshold.review_cost"]),
                   float(cfg["ml.threshold.target_recall"]))

    def to_dict(self) -> dict:
        return {"objective": self.objective, "review_cost": self.review_cost, "target_recall": self.target_recall}


def _alert_curve(y: np.ndarray, p: np.ndarray, amount: np.ndarray | None):
    """Per distinct score, highest first: the threshold, alerts, frauds caught and fraud amount
    caught when every row scoring at or above it is alerted."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    amt = (amount[order] if amount is not None else np.ones(len(p))) * ys
    last = np.r_[ps[1:] != ps[:-1], True]          # the last row of each group of equal scores
    return ps[last], np.cumsum(np.ones(len(p)))[last], np.cumsum(ys)[last], np.cumsum(amt)[last]


def choose_threshold(y: np.ndarray, p: np.ndarray, policy: ThresholdPolicy | None = None,
                     amount: np.ndarray | None = None) -> float:
    """The threshold that ``policy`` prefers on (validation) data: alert when the score (or, for
    ``expected_loss``, score x amount) is at or above it."""
    policy = policy or ThresholdPolicy()
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if policy.on == "expected_loss":
        if amount is None:
            raise ValueError("the expected_loss objective needs the amounts")
        p = p * np.asarray(amount, dtype=float)
    if len(p) == 0 or y.sum() == 0:
        return 0.5
    if policy.objective == "f1":
        precision, recall, thresholds = skm.precision_recall_curve(y, p)
        if len(thresholds) == 0:
            return 0.5
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        return float(thresholds[int(np.argmax(f1))])
    thresholds, alerts, caught, caught_amount = _alert_curve(y, p, None if amount is None else np.asarray(amount, dtype=float))
    if policy.objective == "precision_at_recall":
        enough = np.flatnonzero(caught / y.sum() >= policy.target_recall - 1e-12)
        return float(thresholds[enough[0]])
    total = caught_amount[-1]
    cost = policy.review_cost * alerts + (total - caught_amount)
    best = int(np.argmin(cost))
    if total <= cost[best]:             # alerting nothing is cheapest
        return float(np.nextafter(thresholds[0], np.inf))
    return float(thresholds[best])


def recall_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float = 0.01) -> float | None:
    """Share of positives caught when at most ``fpr`` of negatives are flagged."""
    if len(np.unique(y)) < 2:
        return None
    fprs, tprs, _ = skm.roc_curve(y, p)
    return float(tprs[fprs <= fpr].max())


def alerts(p: np.ndarray, threshold: float, on: str = "score", amount: np.ndarray | None = None) -> np.ndarray:
    """Which rows are alerted: score >= threshold, or score x amount >= threshold."""
    p = np.asarray(p, dtype=float)
    if on == "expected_loss":
        if amount is None:
            raise ValueError("an expected_loss threshold needs the amounts")
        return p * np.asarray(amount, dtype=float) >= threshold
    return p >= threshold


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float, amount: np.ndarray | None = None,
                   review_cost: float | None = None, on: str = "score") -> dict:
    """ROC-AUC, PR-AUC, the confusion matrix and precision/recall/F1 at ``threshold``, recall at
    0.5/1/2% FPR, log loss, Brier score, expected calibration error; with ``amount`` the fraud
    amount caught and, with ``review_cost``, the net amount saved after reviewing the alerts."""
    y = np.asarray(y).astype(int)
    raw = np.asarray(p, dtype=float)
    p = np.clip(raw, 1e-7, 1 - 1e-7)
    hit = alerts(raw, threshold, on, amount)
    two = len(np.unique(y)) == 2
    tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
    fn, tn = int((~hit & (y == 1)).sum()), int((~hit & (y == 0)).sum())
    # Ranking metrics on the scores as given: clipping would tie calibrated probabilities near 0.
    out = {
        "roc_auc": _auc(y, raw),
        "pr_auc": float(skm.average_precision_score(y, raw)) if two else None,
        "precision": float(skm.precision_score(y, hit, zero_division=0)),
        "recall": float(skm.recall_score(y, hit, zero_division=0)),
        "f1": float(skm.f1_score(y, hit, zero_division=0)),
        "recall_at_0_5pct_fpr": recall_at_fpr(y, raw, 0.005),
        "recall_at_1pct_fpr": recall_at_fpr(y, raw, 0.01),
        "recall_at_2pct_fpr": recall_at_fpr(y, raw, 0.02),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(np.mean((np.clip(raw, 0, 1) - y) ** 2)),
        "ece": expected_calibration_error(y, raw),
        "threshold": float(threshold),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }
    if amount is not None:
        amount = np.asarray(amount, dtype=float)
        fraud_amount = float(amount[y == 1].sum())
        caught = float(amount[hit & (y == 1)].sum())
        out.update({"fraud_amount": fraud_amount, "fraud_amount_caught": caught,
                    "fraud_amount_caught_share": caught / fraud_amount if fraud_amount > 0 else None})
        if review_cost is not None:
            out.update({"review_cost": float(review_cost) * int(hit.sum()),
                        "net_saved": caught - float(review_cost) * int(hit.sum())})
    return out


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Macro-F1, per-class precision and recall, confusion matrix (rows true, columns predicted),
    one-vs-rest macro AUC, accuracy and log loss; the predicted class is the most probable one."""
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    prec = skm.precision_score(y, pred, labels=labels, average=None, zero_division=0)
    rec = skm.recall_score(y, pred, labels=labels, average=None, zero_division=0)
    present = len(np.unique(y)) == len(classes)
    return {
        "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "auc_macro": float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)) if present else None,
        "accuracy": float(skm.accuracy_score(y, pred)),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-7, 1), labels=labels)),
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]), "support": int((y == i).sum())}
                      for i, c in enumerate(classes)},
        "confusion": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "rows": int(len(y)),
    }


def calibration_table(p: np.ndarray, y: np.ndarray, true_pd: np.ndarray | None, bins: int = 10) -> list[dict]:
    """Rows grouped by predicted-PD decile: mean prediction, observed default rate, mean true PD."""
    p = np.asarray(p, dtype=float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in range(max(len(edges) - 1, 1)):
        m = idx == b
        if not m.any():
            continue
        out.append({"bin": b, "rows": int(m.sum()), "mean_predicted": float(p[m].mean()), "observed_rate": float(np.mean(y[m])),
                    "mean_true_pd": float(true_pd[m].mean()) if true_pd is not None else None})
    return out


def pd_metrics(y: np.ndarray, p: np.ndarray, true_pd: np.ndarray | None) -> dict:
    """RMSE of predicted PD against the true PD, AUC and Brier score against realised defaults."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    out = {
        "rmse_vs_true_pd": float(np.sqrt(np.mean((p - true_pd) ** 2))) if true_pd is not None else None,
        "mae_vs_true_pd": float(np.mean(np.abs(p - true_pd))) if true_pd is not None else None,
        "roc_auc": _auc(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "mean_predicted": float(p.mean()),
        "default_rate": float(y.mean()),
        "rows": int(len(y)),
    }
    return out


def fold_metric(kind: str, name: str, y: np.ndarray, scores: np.ndarray) -> float:
    """One metric of one fold (higher is better): ``roc_auc``, ``pr_auc`` (average precision) or
    ``auc_macro``."""
    if name == "roc_auc":
        return float(skm.roc_auc_score(y, scores))
    if name == "pr_auc":
        return float(skm.average_precision_score(y, scores))
    if name == "auc_macro":
        return float(skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=list(range(scores.shape[1]))))
    raise ValueError(f"unknown fold metric '{name}' for {kind}")


def promotion_metric_fn(kind: str, metric: str):
    """``metric(y, scores)`` of a promotion metric, for the paired bootstrap."""
    if metric == "brier":
        return lambda y, p: float(np.mean((np.clip(p, 0.0, 1.0) - y) ** 2))
    if metric in ("roc_auc", "auc_macro", "pr_auc"):
        return lambda y, p: fold_metric(kind, metric, y, p)
    raise ValueError(f"no paired test for promotion metric '{metric}'")


def promotion_test(kind: str, metric: str, higher_is_better: bool, y: np.ndarray, challenger: np.ndarray,
                   champion: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """One-sided paired test that the challenger is better than the champion on the same rows:
    DeLong's test for ROC-AUC, a paired bootstrap otherwise. Returns the test's name, the
    p-value and its details."""
    # stats (statsmodels): +1.5 s at import, and the scorers load this module for ``alerts`` alone
    import stats

    if metric == "roc_auc" and kind == "binary":
        r = stats.delong_test(y, challenger, champion)
        if r.z is None:
            p = 0.0 if r.auc_diff > 0 else 1.0
        else:
            p = float(norm.sf(r.z))
        return {"test": "DeLong", "p_value": p, "details": r.to_dict()}
    r = stats.paired_bootstrap(y, challenger, champion, promotion_metric_fn(kind, metric), metric, higher_is_better,
                               n_boot=n_boot, seed=seed)
    return {"test": "paired bootstrap", "p_value": r.p_not_better, "details": r.to_dict()}


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg)


def _plt():
    # pyplot: +1 s at import for the scorers and the search, which draw nothing; and Agg must come first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """ROC curves of several scorers on the same labels, in one figure."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y, p) in curves.items():
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(confusion: list[list[int]], classes: tuple[str, ...], title: str):
    plt = _plt()
    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", color="black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def calibration_figure(tables: dict[str, list[dict]], title: str, xlabel: str = "mean predicted PD (decile)",
                       ylabel: str = "default rate"):
    """Mean prediction against the observed rate (and the true probability where known), per
    decile of the prediction: a reliability diagram."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for name, rows in tables.items():
        x = [r["mean_predicted"] for r in rows]
        ax.plot(x, [r["observed_rate"] for r in rows], marker="o", label=f"{name}: observed")
        if rows and rows[0]["mean_true_pd"] is not None:
            ax.plot(x, [r["mean_true_pd"] for r in rows], marker="x", ls="--", label=f"{name}: true PD")
        top = max([top, *x, *[r["observed_rate"] for r in rows]])
    ax.plot([0, top], [0, top], ls=":", color="grey")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
