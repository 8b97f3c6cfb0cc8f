"""Model-versus-baseline comparisons: paired tests over CV folds and DeLong's test for two AUCs."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

from . import StatsInputError
from ._util import json_safe

_ROUNDING = 1e-12


@dataclass(frozen=True)
class PairedResult:
    """Paired t-test and Wilcoxon signed-rank test of model minus baseline over the same folds."""

    metric: str
    n_folds: int
    mean_model: float
    mean_baseline: float
    mean_diff: float
    sd_diff: float
    t: float | None
    p: float | None
    wilcoxon_stat: float | None
    wilcoxon_p: float | None
    cohens_dz: float | None
    note: str | None

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of AUC(score_a) = AUC(score_b) on the same labels (two-sided)."""

    auc_a: float
    auc_b: float
    auc_diff: float
    se_diff: float
    z: float | None
    p: float | None
    n_pos: int
    n_neg: int
    note: str | None

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of metric(a) - metric(b) over the same rows: the observed difference, a
    percentile interval, and the one-sided p that a is not better than b."""

    metric: str
    value_a: float
    value_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_not_better: float
    n_rows: int
    n_boot: int

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


def paired_bootstrap(y_true: Sequence, score_a: np.ndarray, score_b: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float],
                     name: str, higher_is_better: bool = True, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> BootstrapResult:
    """Resample the rows with replacement ``n_boot`` times and recompute both scorers' metric on
    each resample (the same rows for both, so their correlation is kept); scores may be one
    column or one row of class probabilities per row. ``diff`` is signed so
    that positive means a is better; ``p_not_better`` is the share of resamples where it is not
    (with the +1 correction, so it is never 0)."""
    y = np.asarray(y_true)
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if not len(a) == len(b) == len(y) or len(y) < 2:
        raise StatsInputError(f"paired bootstrap of '{name}': y, a, b have lengths {len(y)}, {len(a)}, {len(b)} (need equal, at least 2)")
    sign = 1.0 if higher_is_better else -1.0
    va, vb = float(metric(y, a)), float(metric(y, b))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        try:
            diffs.append(sign * (metric(y[idx], a[idx]) - metric(y[idx], b[idx])))
        except ValueError:   # a resample with one class only: skip it
            continue
    if not diffs:
        raise StatsInputError(f"paired bootstrap of '{name}': no resample could be scored")
    d = np.asarray(diffs, dtype=float)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    p = (1 + int((d <= 0).sum())) / (1 + len(d))
    return BootstrapResult(metric=name, value_a=va, value_b=vb, diff=sign * (va - vb), ci_low=float(lo), ci_high=float(hi),
                           p_not_better=float(p), n_rows=int(len(y)), n_boot=int(len(d)))


def paired_comparison(model: Sequence[float], baseline: Sequence[float], metric: str) -> PairedResult:
    """Return paired t (scipy ttest_rel), Wilcoxon, mean difference and Cohen's d_z of model - baseline."""
    who = f"paired comparison of '{metric}'"
    m, b = _vector(model, who, "model scores"), _vector(baseline, who, "baseline scores")
    if len(m) != len(b):
        raise StatsInputError(f"{who}: model has {len(m)} folds but baseline has {len(b)}")
    if len(m) < 2:
        raise StatsInputError(f"paired t-test needs at least 2 folds, got {len(m)}")
    # Differences below rounding noise of the scores count as zero; otherwise scipy sees 1e-17 as a real effect.
    noise = _ROUNDING * max(np.abs(m).max(), np.abs(b).max(), np.finfo(float).tiny)
    d = np.where(np.abs(m - b) <= noise, 0.0, m - b)
    sd = float(np.std(d, ddof=1))
    flat = sd <= noise
    notes = []
    if not flat:
        t, p = (float(x) for x in st.ttest_rel(d, np.zeros_like(d)))
    else:
        t = p = None
        notes.append("every fold has the same difference, so the t statistic is undefined")
    w_stat, w_p = _wilcoxon(d, notes)
    return PairedResult(
        metric=metric, n_folds=len(d), mean_model=float(m.mean()), mean_baseline=float(b.mean()),
        mean_diff=float(d.mean()), sd_diff=0.0 if flat else sd, t=t, p=p, wilcoxon_stat=w_stat, wilcoxon_p=w_p,
        cohens_dz=None if flat else float(d.mean()) / sd, note="; ".join(notes) or None,
    )


def _wilcoxon(d: np.ndarray, notes: list[str]) -> tuple[float | None, float | None]:
    """Return scipy's two-sided Wilcoxon signed-rank statistic and p of differences d, or (None, None) with a note."""
    if np.all(d == 0):
        notes.append("all differences are zero, so the Wilcoxon test is undefined")
        return None, None
    try:
        res = st.wilcoxon(d)
    except ValueError as exc:
        notes.append(f"Wilcoxon test not computed: {exc}")
        return None, None
    return float(res.statistic), float(res.pvalue)


def delong_test(y_true: Sequence[int], score_a: Sequence[float], score_b: Sequence[float]) -> DeLongResult:
    """Return both AUCs and DeLong's z and two-sided p for their difference (fast algorithm, Sun & Xu 2014)."""
    y = _labels(y_true)
    a, b = _vector(score_a, "DeLong test", "score_a"), _vector(score_b, "DeLong test", "score_b")
    if not len(a) == len(b) == len(y):
        raise StatsInputError(f"DeLong test: y_true, score_a, score_b have lengths {len(y)}, {len(a)}, {len(b)}")
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if min(n_pos, n_neg) < 2:
        raise StatsInputError(f"DeLong test needs at least 2 positives and 2 negatives, got {n_pos} and {n_neg}")
    scores = np.vstack([a, b])
    aucs, cov = fast_delong(scores[:, pos], scores[:, ~pos])
    diff, var = float(aucs[0] - aucs[1]), float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z, p, note = _z_test(diff, var)
    return DeLongResult(auc_a=float(aucs[0]), auc_b=float(aucs[1]), auc_diff=diff, se_diff=float(np.sqrt(max(var, 0.0))),
                        z=z, p=p, n_pos=n_pos, n_neg=n_neg, note=note)


def fast_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the AUCs of k score rows and their k x k DeLong covariance, from positives (k,m) and negatives (k,n)."""
    m, n = pos.shape[1], neg.shape[1]
    tx = st.rankdata(pos, axis=1)
    ty = st.rankdata(neg, axis=1)
    tz = st.rankdata(np.hstack([pos, neg]), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    v01 = (tz[:, :m] - tx) / n  # per positive: share of negatives scored below it (ties count half)
    v10 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives scored above it
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def _z_test(diff: float, var: float) -> tuple[float | None, float | None, str | None]:
    """Return (z, two-sided p, note) for an AUC difference and its variance."""
    if var > 1e-15:
        z = diff / np.sqrt(var)
        return float(z), float(2 * st.norm.sf(abs(z))), None
    if abs(diff) <= 1e-12:
        return 0.0, 1.0, "the two scores rank every pair alike: the AUC difference and its variance are 0"
    return None, None, "the variance of the AUC difference is 0 although the AUCs differ; z is undefined"


def _labels(y_true: Sequence[int]) -> np.ndarray:
    """Return y_true as a 0/1 int array; raise unless it has both classes."""
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) == 0:
        raise StatsInputError("DeLong test: y_true must be a non-empty 1-D sequence of 0/1 labels")
    if y.dtype == bool:
        y = y.astype(int)
    if not np.isin(y, [0, 1]).all():
        raise StatsInputError("DeLong test: y_true must contain only 0 and 1")
    if len(np.unique(y)) < 2:
        raise StatsInputError(f"DeLong test: y_true has a single class ({int(y[0])}); both classes are needed")
    return y.astype(int)


def _vector(values: Sequence[float], who: str, name: str) -> np.ndarray:
    """Return values as a 1-D float array; raise on non-numbers and NaN/inf."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{who}: {name} are not numbers ({exc})") from None
    if arr.ndim != 1:
        raise StatsInputError(f"{who}: {name} must be 1-D, got shape {arr.shape}")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise StatsInputError(f"{who}: {name} contain {bad} NaN/inf value(s)")
    return arr
