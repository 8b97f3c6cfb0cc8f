"""Metrics and figures for the three use cases, on numpy arrays.

The same functions score the model, the baseline and the ceiling (the generator's true
probabilities), so every report compares like with like.
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _auc(y, p) -> float | None:
    return float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold with the best F1 on (validation) data."""
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    if len(thresholds) == 0:
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def recall_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float = 0.01) -> float | None:
    """Share of positives caught when at most ``fpr`` of negatives are flagged."""
    if len(np.unique(y)) < 2:
        return None
    fprs, tprs, _ = skm.roc_curve(y, p)
    return float(tprs[fprs <= fpr].max())


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """ROC-AUC, PR-AUC, precision/recall/F1 at ``threshold``, recall at 1% FPR, log loss."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    hit = p >= threshold
    two = len(np.unique(y)) == 2
    return {
        "roc_auc": _auc(y, p),
        "pr_auc": float(skm.average_precision_score(y, p)) if two else None,
        "precision": float(skm.precision_score(y, hit, zero_division=0)),
        "recall": float(skm.recall_score(y, hit, zero_division=0)),
        "f1": float(skm.f1_score(y, hit, zero_division=0)),
        "recall_at_1pct_fpr": recall_at_fpr(y, p, 0.01),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "threshold": float(threshold),
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }


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
    """One metric of one fold (higher is better): ``roc_auc`` or ``auc_macro``."""
    if name == "roc_auc":
        return float(skm.roc_auc_score(y, scores))
    if name == "auc_macro":
        return float(skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=list(range(scores.shape[1]))))
    raise ValueError(f"unknown fold metric '{name}' for {kind}")


def promotion_metric_fn(kind: str, metric: str):
    """``metric(y, scores)`` of a promotion metric, for the paired bootstrap."""
    if metric == "brier":
        return lambda y, p: float(np.mean((np.clip(p, 0.0, 1.0) - y) ** 2))
    if metric in ("roc_auc", "auc_macro"):
        return lambda y, p: fold_metric(kind, metric, y, p)
    raise ValueError(f"no paired test for promotion metric '{metric}'")


def promotion_test(kind: str, metric: str, higher_is_better: bool, y: np.ndarray, challenger: np.ndarray,
                   champion: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """One-sided paired test that the challenger is better than the champion on the same rows:
    DeLong's test for ROC-AUC, a paired bootstrap otherwise. Returns the test's name, the
    p-value and its details."""
    import stats

    if metric == "roc_auc" and kind == "binary":
        from scipy.stats import norm

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


def calibration_figure(tables: dict[str, list[dict]], title: str):
    """Mean predicted PD against the observed default rate and the true PD, per decile."""
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
    ax.set(xlabel="mean predicted PD (decile)", ylabel="default rate", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
