"""Calibrated probabilities: a monotone map from a booster's raw score to a probability.

Fitted on the validation period (isotonic regression; the training period is what the trees
overfit, the test period is touched by nothing but judging) and stored with the registered
version (``calibration.json`` of its run, named by the version's ``calibration`` tag). Every
reader of a version's scores (the streaming scorer, the decision path, the monitor and the
promotion rule) applies it through ``Calibration.apply``, so serving and training agree.

Isotonic regression is a step function: it ties scores that the trees ordered. Mixing in
``TIE_BREAK`` of the raw score (a score in [0, 1] stays in [0, 1]) keeps the order, so ROC-AUC
and the ranking metrics are the raw scores' own, and moves a probability by at most
``TIE_BREAK``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

METHODS = ("isotonic", "none")
TIE_BREAK = 1e-6
ARTIFACT = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """A piecewise-linear map through the knots ``(x[i], y[i])``, flat outside them."""

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, scores) -> np.ndarray:
        """Probabilities for raw scores (any shape; a multi-class matrix passes unchanged)."""
        p = np.asarray(scores, dtype=float)
        if self.method == "none" or not self.x or p.ndim != 1:
            return p
        return np.clip((1 - TIE_BREAK) * np.interp(p, self.x, self.y) + TIE_BREAK * p, 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Calibration":
        if not d:
            return NONE
        return cls(d["method"], tuple(float(v) for v in d.get("x", ())), tuple(float(v) for v in d.get("y", ())))

    @classmethod
    def from_json(cls, text: str | None) -> "Calibration":
        return cls.from_dict(json.loads(text) if text else None)


NONE = Calibration("none")


def fit(method: str, y: np.ndarray, scores: np.ndarray) -> Calibration:
    """Fit ``method`` on (validation) labels 0/1 and raw scores."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method '{method}' (known: {', '.join(METHODS)})")
    scores = np.asarray(scores, dtype=float)
    if method == "none" or scores.ndim != 1 or len(np.unique(y)) < 2:
        return NONE
    # sklearn: +2.5 s at import, and serving start-up (ml.scoring, ml.registry) loads this module
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, np.asarray(y, dtype=float))
    return Calibration("isotonic", tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |observed rate - mean probability| over ``bins`` equal-width probability
    bins, weighted by the rows in each."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / len(y))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Rows per equal-count probability bin: mean probability, observed rate, rows."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    out = []
    for b, chunk in enumerate(np.array_split(order, bins)):
        if len(chunk):
            out.append({"bin": b, "rows": int(len(chunk)), "mean_predicted": float(p[chunk].mean()),
                        "observed_rate": float(y[chunk].mean())})
    return out
