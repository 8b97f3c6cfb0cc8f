"""ANOVA and Tukey HSD over a hyperparameter search (one row per setting and fold, higher metric is better)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd

from . import StatsInputError
from ._util import finite_or_none, json_safe

HYPERPARAMETERS = ("max_depth", "learning_rate", "n_estimators")
SETTING = "setting"


@dataclass(frozen=True)
class OneWayResult:
    """One-way ANOVA F test that the mean metric is equal across groups."""

    factor: str
    F: float
    p: float
    groups: int
    df_between: int
    df_within: int
    n_rows: int
    group_means: dict

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


@dataclass(frozen=True)
class TwoWayResult:
    """Type II two-way ANOVA table of metric ~ C(a) * C(b); rows: a, b, a:b, Residual."""

    a: str
    b: str
    table: list[dict]
    n_rows: int

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


@dataclass(frozen=True)
class TukeyResult:
    """Tukey HSD of every pair of groups: mean difference (group2 - group1), adjusted p and interval."""

    factor: str
    alpha: float
    pairs: list[dict]

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


def one_way_anova(search: pd.DataFrame, factor: str = SETTING) -> OneWayResult:
    """Return scipy's f_oneway F and p of metric across the groups of factor."""
    who = "one-way ANOVA"
    labels, metric = group_labels(search, factor, who)
    samples = _samples(labels, metric, factor, who)
    f, p = st.f_oneway(*samples.values())
    k, n = len(samples), len(metric)
    return OneWayResult(factor=factor, F=float(f), p=float(p), groups=k, df_between=k - 1, df_within=n - k,
                        n_rows=n, group_means={str(g): float(v.mean()) for g, v in samples.items()})


def two_way_anova(search: pd.DataFrame, a: str = "max_depth", b: str = "learning_rate") -> TwoWayResult:
    """Return statsmodels' type II ANOVA table of metric ~ C(a) * C(b) as records (source, sum_sq, df, F, p)."""
    who = "two-way ANOVA"
    if a == b:
        raise StatsInputError(f"{who}: the two factors must differ, got '{a}' twice")
    la, metric = group_labels(search, a, who)
    lb, _ = group_labels(search, b, who)
    _check_cells(la, lb, metric, a, b, who)
    data = pd.DataFrame({"y": metric.to_numpy(), "A": la.to_numpy(), "B": lb.to_numpy()})
    table = anova_lm(ols("y ~ C(A) * C(B)", data=data).fit(), typ=2)
    names = {"C(A)": a, "C(B)": b, "C(A):C(B)": f"{a}:{b}", "Residual": "Residual"}
    records = [{"source": names[src], "sum_sq": float(row["sum_sq"]), "df": int(round(row["df"])),
                "F": finite_or_none(row["F"]), "p": finite_or_none(row["PR(>F)"])}
               for src, row in table.iterrows()]
    return TwoWayResult(a=a, b=b, table=records, n_rows=len(data))


def tukey_hsd(search: pd.DataFrame, factor: str = SETTING, alpha: float = 0.05) -> TukeyResult:
    """Return statsmodels' pairwise Tukey HSD of metric across the groups of factor."""
    who = "Tukey HSD"
    if not 0 < alpha < 1:
        raise StatsInputError(f"{who}: alpha must be in (0, 1), got {alpha}")
    labels, metric = group_labels(search, factor, who)
    _samples(labels, metric, factor, who)
    res = pairwise_tukeyhsd(metric.to_numpy(), labels.to_numpy(), alpha=alpha)
    # statsmodels orders its arrays like itertools.combinations over the sorted unique groups.
    pairs = [{"group1": g1, "group2": g2, "meandiff": float(res.meandiffs[i]), "p_adj": float(res.pvalues[i]),
              "lower": float(res.confint[i, 0]), "upper": float(res.confint[i, 1]), "reject": bool(res.reject[i])}
             for i, (g1, g2) in enumerate(itertools.combinations(res.groupsunique.tolist(), 2))]
    return TukeyResult(factor=factor, alpha=float(alpha), pairs=pairs)


def group_labels(search: pd.DataFrame, factor: str, who: str) -> tuple[pd.Series, pd.Series]:
    """Return each row's group (a hyperparameter combination for 'setting', else factor's value) and its metric."""
    if not isinstance(search, pd.DataFrame):
        raise StatsInputError(f"{who}: expected a pandas DataFrame, got {type(search).__name__}")
    columns = list(HYPERPARAMETERS) if factor == SETTING else [factor]
    missing = [c for c in [*columns, "metric"] if c not in search.columns]
    if missing:
        raise StatsInputError(f"{who}: search has no column(s) {', '.join(map(repr, missing))}")
    if search.empty:
        raise StatsInputError(f"{who}: the search has no rows")
    for c in [*columns, "metric"]:
        if search[c].isna().any():
            raise StatsInputError(f"{who}: column '{c}' has {int(search[c].isna().sum())} missing value(s)")
    try:
        metric = search["metric"].astype(float)
    except (TypeError, ValueError):
        raise StatsInputError(f"{who}: column 'metric' is not numeric") from None
    if not np.isfinite(metric).all():
        raise StatsInputError(f"{who}: column 'metric' has infinite values")
    if factor != SETTING:
        return search[factor], metric
    labels = search[columns[0]].astype(str).radd(f"{columns[0]}=")
    for c in columns[1:]:
        labels = labels + f", {c}=" + search[c].astype(str)
    return labels, metric


def _samples(labels: pd.Series, metric: pd.Series, factor: str, who: str) -> dict:
    """Return {group: metric values}; raise on fewer than 2 groups, a group under 2 rows, or no within-group spread."""
    samples = {g: v.to_numpy() for g, v in metric.groupby(labels, sort=True)}
    what = "settings" if factor == SETTING else f"levels of '{factor}'"
    if len(samples) < 2:
        raise StatsInputError(f"{who} needs at least 2 {what}, got {len(samples)}")
    for g, v in samples.items():
        if len(v) < 2:
            raise StatsInputError(f"{who}: group '{g}' has 1 row; each group needs at least 2")
    if np.ptp(metric.to_numpy()) == 0:
        raise StatsInputError(f"{who}: column 'metric' is constant")
    if all(np.ptp(v) == 0 for v in samples.values()):
        raise StatsInputError(f"{who}: the metric does not vary within any group, so the test is undefined")
    return samples


def _check_cells(la: pd.Series, lb: pd.Series, metric: pd.Series, a: str, b: str, who: str) -> None:
    """Raise unless both factors have 2+ levels and every (a, b) cell has 2+ rows with some spread within cells."""
    for name, labels in ((a, la), (b, lb)):
        if labels.nunique() < 2:
            raise StatsInputError(f"{who} needs at least 2 levels of '{name}', got {labels.nunique()}")
    counts = pd.crosstab(la, lb)
    for level_a, row in counts.iterrows():
        for level_b, n in row.items():
            if n < 2:
                raise StatsInputError(f"{who}: cell ({a}={level_a}, {b}={level_b}) has {n} row(s); "
                                      f"every cell needs at least 2")
    if np.ptp(metric.to_numpy()) == 0:
        raise StatsInputError(f"{who}: column 'metric' is constant")
    cells = metric.groupby([la, lb])
    if ((cells.max() - cells.min()) == 0).all():
        raise StatsInputError(f"{who}: the metric does not vary within any cell, so the test is undefined")
