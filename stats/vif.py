"""Variance inflation factors and a reduced feature set with no VIF above a threshold."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import StatsInputError
from ._util import complete_numeric, json_safe

# 1 - R^2 at or below this (VIF >= 1e10) is an exact linear combination up to rounding.
_PERFECT = 1e-10


@dataclass(frozen=True)
class VIFResult:
    """VIF per column (inf for perfectly collinear columns), summary lists and a suggested reduced set."""

    vif: dict[str, float]
    median: float
    over_5: list[str]
    over_10: list[str]
    perfectly_collinear: list[str]
    reduced: list[str]
    dropped_for_reduction: list[str]
    threshold: float
    rows_used: int
    rows_dropped: int

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values (infinite VIFs become None; see perfectly_collinear)."""
        return json_safe(self.__dict__)


def vif_table(df: pd.DataFrame, threshold: float = 10.0) -> VIFResult:
    """Return VIF_j = 1/(1-R^2_j) of each numeric column regressed on the others with an intercept."""
    if not threshold > 1:
        raise StatsInputError(f"VIF: threshold must be above 1, got {threshold}")
    data, dropped = complete_numeric(df, "VIF", min_rows=2)
    if data.shape[1] < 2:
        raise StatsInputError(f"VIF needs at least 2 columns, got 1 ('{data.columns[0]}')")
    if len(data) <= data.shape[1]:
        raise StatsInputError(f"VIF needs more complete rows than columns ({data.shape[1]}), got {len(data)}")
    names, values = list(data.columns), data.to_numpy()
    vifs = vifs_of(values)
    kept, removed = reduce_by_vif(values, names, threshold)
    return VIFResult(
        vif=dict(zip(names, vifs.tolist())), median=float(np.median(vifs)),
        over_5=[n for n, v in zip(names, vifs) if v > 5], over_10=[n for n, v in zip(names, vifs) if v > 10],
        perfectly_collinear=[n for n, v in zip(names, vifs) if np.isinf(v)],
        reduced=kept, dropped_for_reduction=removed, threshold=float(threshold),
        rows_used=len(data), rows_dropped=dropped,
    )


def vifs_of(values: np.ndarray) -> np.ndarray:
    """Return the VIF of every column of a non-constant float matrix, inf where a column is collinear."""
    n, p = values.shape
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    out = np.empty(p)
    for j in range(p):
        # lstsq rather than inverting the correlation matrix: stays exact-ish when that matrix is singular.
        design = np.column_stack([np.ones(n), np.delete(z, j, axis=1)])
        coef, *_ = np.linalg.lstsq(design, z[:, j], rcond=None)
        resid = z[:, j] - design @ coef
        unexplained = float(resid @ resid) / n  # SST of a z-score (ddof 0) is n
        out[j] = np.inf if unexplained <= _PERFECT else 1.0 / unexplained
    return out


def reduce_by_vif(values: np.ndarray, names: list[str], threshold: float) -> tuple[list[str], list[str]]:
    """Return (kept, dropped) after repeatedly dropping the highest-VIF column while it exceeds threshold."""
    keep, dropped = list(range(len(names))), []
    while len(keep) > 1:
        vifs = vifs_of(values[:, keep])
        # Ties (several inf) go to the last column: derived columns usually come after their sources.
        worst = len(vifs) - 1 - int(np.argmax(vifs[::-1]))
        if not vifs[worst] > threshold:
            break
        dropped.append(names[keep.pop(worst)])
    return [names[i] for i in keep], dropped
