"""PCA on standardised columns: explained variance, components retained for a target, loadings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import StatsInputError
from ._util import complete_numeric, json_safe

# Cumulative shares are sums of floats: 0.8999999999 must count as reaching 0.9.
_TARGET_SLACK = 1e-9


@dataclass(frozen=True, eq=False)
class PCAResult:
    """PCA of the correlation matrix; loadings are the unit-length eigenvectors of the first k components."""

    features: list[str]
    eigenvalues: list[float]
    explained_ratio: list[float]
    cumulative: list[float]
    n_components: int
    variance_target: float
    cumulative_at_k: float
    loadings: pd.DataFrame
    rows_used: int
    rows_dropped: int

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values; loadings as {component: {feature: value}}."""
        return json_safe({
            "features": self.features, "eigenvalues": self.eigenvalues,
            "explained_ratio": self.explained_ratio, "cumulative": self.cumulative,
            "n_components": self.n_components, "variance_target": self.variance_target,
            "cumulative_at_k": self.cumulative_at_k,
            "loadings": {pc: self.loadings[pc].to_dict() for pc in self.loadings.columns},
            "rows_used": self.rows_used, "rows_dropped": self.rows_dropped,
        })


def pca_summary(df: pd.DataFrame, variance_target: float = 0.9) -> PCAResult:
    """Return the PCA of df's z-scored numeric columns (rows with NaN/inf dropped and counted)."""
    if not 0 < variance_target <= 1:
        raise StatsInputError(f"PCA: variance_target must be in (0, 1], got {variance_target}")
    data, dropped = complete_numeric(df, "PCA", min_rows=3)
    corr = np.atleast_2d(np.corrcoef(data.to_numpy(), rowvar=False))
    eigenvalues, vectors = sorted_eigh(corr)
    ratio = eigenvalues / eigenvalues.sum()
    cumulative = np.minimum(np.cumsum(ratio), 1.0)
    k = components_for(cumulative, variance_target)
    names = [f"PC{i + 1}" for i in range(k)]
    loadings = pd.DataFrame(vectors[:, :k], index=list(data.columns), columns=names)
    return PCAResult(
        features=list(data.columns), eigenvalues=eigenvalues.tolist(), explained_ratio=ratio.tolist(),
        cumulative=cumulative.tolist(), n_components=k, variance_target=float(variance_target),
        cumulative_at_k=float(cumulative[k - 1]), loadings=loadings,
        rows_used=len(data), rows_dropped=dropped,
    )


def sorted_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return eigenvalues (descending, clipped at 0) and sign-fixed eigenvectors of a symmetric matrix."""
    values, vectors = np.linalg.eigh(matrix)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    # eigh's signs are arbitrary; make the largest-magnitude loading positive so results are reproducible.
    rows = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[rows, np.arange(vectors.shape[1])])
    return values, vectors * np.where(signs == 0, 1.0, signs)


def components_for(cumulative: np.ndarray, target: float) -> int:
    """Return the smallest k whose cumulative explained share reaches target."""
    return int(np.argmax(cumulative >= target - _TARGET_SLACK)) + 1


def scree_plot(result: PCAResult) -> Figure:
    """Return a figure with the explained share per component, the cumulative line and the target line."""
    x = np.arange(1, len(result.explained_ratio) + 1)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x, 100 * np.asarray(result.explained_ratio), color="#4c72b0", label="explained")
    ax.plot(x, 100 * np.asarray(result.cumulative), color="#dd8452", marker="o", label="cumulative")
    ax.axhline(100 * result.variance_target, color="grey", linestyle="--",
               label=f"target {100 * result.variance_target:.0f}%")
    ax.axvline(result.n_components, color="grey", linestyle=":", label=f"k = {result.n_components}")
    ax.set(xlabel="component", ylabel="% of variance", ylim=(0, 105), xticks=x, title="PCA scree plot")
    ax.legend(loc="center right")
    return fig
