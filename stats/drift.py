"""Distribution drift between a reference sample and a recent one: the population stability
index (PSI) over the reference's quantile bins, and the two-sample Kolmogorov-Smirnov test."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from . import StatsInputError

EPS = 1e-4   # share given to an empty bin, so that PSI stays finite


@dataclass(frozen=True)
class DriftResult:
    psi: float
    ks_statistic: float
    ks_pvalue: float
    reference_rows: int
    recent_rows: int


def _clean(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype="float64")
    a = a[np.isfinite(a)]
    if len(a) == 0:
        raise StatsInputError(f"{name} sample has no finite values")
    return a


def psi(reference, recent, bins: int = 10) -> float:
    """Sum over bins of (recent share - reference share) * ln(recent share / reference share).
    Bins are the reference's quantiles (ties merged, so a column with few distinct values gets
    one bin per value); both ends are open. 0 means the same distribution; 0.1-0.2 is usually read
    as a moderate shift and above 0.2 as a large one."""
    ref, cur = _clean(reference, "reference"), _clean(recent, "recent")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # Right-closed bins: a value equal to an edge falls in the bin below it, so a value that
    # repeats (a quantile) gets a bin of its own.
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1) / len(cur)
    r, c = np.clip(r, EPS, None), np.clip(c, EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def drift(reference, recent, bins: int = 10) -> DriftResult:
    """PSI and the two-sample KS statistic and p-value of one feature."""
    ref, cur = _clean(reference, "reference"), _clean(recent, "recent")
    ks = sps.ks_2samp(ref, cur)
    return DriftResult(psi(ref, cur, bins), float(ks.statistic), float(ks.pvalue), len(ref), len(cur))
