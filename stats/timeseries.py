"""Time-series diagnostics: STL strengths, ACF/PACF, Ljung-Box and ADF, with their plots."""
from __future__ import annotations

from dataclasses import dataclass

import inspect

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.tsa.seasonal import STL
from statsmodels.tsa.stattools import acf, adfuller, pacf

from . import StatsInputError
from ._util import finite_or_none, json_safe

# statsmodels 0.15 warns unless asked for the tuple it has always returned; 0.14 has no such argument.
_ADF_TUPLE = {"result_object": False} if "result_object" in inspect.signature(adfuller).parameters else {}


@dataclass(frozen=True)
class SeriesDiagnostics:
    """Diagnostics of one series; acf[k] and pacf[k] are at lag k (index 0 is lag 0, always 1)."""

    n: int
    period: int
    lags: int
    trend_strength: float | None
    seasonal_strength: float | None
    acf: list[float]
    pacf: list[float]
    acf_band: float
    ljung_box_stat: float
    ljung_box_p: float
    adf_stat: float
    adf_p: float
    adf_used_lag: int
    adf_nobs: int
    adf_critical: dict[str, float]

    def to_dict(self) -> dict:
        """Return the result as JSON-safe values."""
        return json_safe(self.__dict__)


def diagnose_series(series: pd.Series, period: int, lags: int = 20) -> SeriesDiagnostics:
    """Return STL trend/seasonal strengths, ACF/PACF to lags, Ljung-Box at lags and the ADF test of series."""
    x = series_values(series, period, lags)
    fit = STL(x, period=period, robust=True).fit()
    lb = acorr_ljungbox(x, lags=[lags], return_df=True)
    adf_stat, adf_p, used_lag, nobs, critical, *_ = adfuller(x, autolag="AIC", **_ADF_TUPLE)
    return SeriesDiagnostics(
        n=len(x), period=period, lags=lags,
        trend_strength=strength(fit.trend, fit.resid), seasonal_strength=strength(fit.seasonal, fit.resid),
        acf=acf(x, nlags=lags, fft=True).tolist(), pacf=pacf(x, nlags=lags, method="ywadjusted").tolist(),
        acf_band=1.96 / np.sqrt(len(x)),
        ljung_box_stat=float(lb["lb_stat"].iloc[0]), ljung_box_p=float(lb["lb_pvalue"].iloc[0]),
        adf_stat=float(adf_stat), adf_p=float(adf_p), adf_used_lag=int(used_lag), adf_nobs=int(nobs),
        adf_critical={k: float(v) for k, v in critical.items()},
    )


def strength(component: np.ndarray, resid: np.ndarray) -> float | None:
    """Return Wang-Hyndman strength max(0, 1 - var(resid) / var(component + resid)), None if undefined."""
    total = np.var(component + resid, ddof=1)
    if total == 0:
        return None
    return finite_or_none(max(0.0, 1.0 - np.var(resid, ddof=1) / total))


def series_values(series: pd.Series, period: int, lags: int | None) -> np.ndarray:
    """Return series as floats; raise on NaN, a constant series or too few observations for period and lags."""
    if not isinstance(series, pd.Series):
        raise StatsInputError(f"time-series diagnostics: expected a pandas Series, got {type(series).__name__}")
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 2:
        raise StatsInputError(f"time-series diagnostics: period must be an integer >= 2, got {period!r}")
    if lags is not None and (isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or lags < 1):
        raise StatsInputError(f"time-series diagnostics: lags must be an integer >= 1, got {lags!r}")
    try:
        x = series.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(f"time-series diagnostics: series '{series.name}' is not numeric") from None
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise StatsInputError(f"time-series diagnostics: series has {bad} NaN/inf value(s); fill or drop them first")
    needed = minimum_length(period, lags)
    if len(x) < needed:
        raise StatsInputError(f"time-series diagnostics need at least {needed} observations "
                              f"(period {period}, lags {lags}), got {len(x)}")
    if np.ptp(x) == 0:
        raise StatsInputError("time-series diagnostics: series is constant")
    return x


def minimum_length(period: int, lags: int | None) -> int:
    """Return the fewest observations STL (2*period+1), the lag tests (lags+10) and PACF (2*lags+2) allow."""
    if lags is None:
        return 2 * period + 1
    # statsmodels' pacf refuses nlags >= nobs // 2.
    return max(2 * period + 1, lags + 10, 2 * lags + 2)


def acf_pacf_plot(diag: SeriesDiagnostics) -> Figure:
    """Return a two-panel figure of ACF and PACF at lags 1..lags with the +-1.96/sqrt(n) band."""
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    lags = np.arange(1, diag.lags + 1)
    for i, (name, values) in enumerate((("ACF", diag.acf), ("PACF", diag.pacf))):
        ax = fig.add_subplot(2, 1, i + 1)
        ax.vlines(lags, 0, values[1:], color="#4c72b0")
        ax.plot(lags, values[1:], "o", color="#4c72b0", markersize=3)
        ax.axhspan(-diag.acf_band, diag.acf_band, color="grey", alpha=0.2)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(ylabel=name, xlim=(0.5, diag.lags + 0.5))
    ax.set_xlabel("lag")
    return fig


def stl_plot(series: pd.Series, period: int) -> Figure:
    """Return a four-panel figure of the series and its robust STL trend, seasonal and residual parts."""
    x = series_values(series, period, None)
    fit = STL(x, period=period, robust=True).fit()
    index = series.index if isinstance(series.index, pd.DatetimeIndex) else np.arange(len(x))
    fig = Figure(figsize=(6.4, 6.4), layout="constrained")
    parts = (("observed", x), ("trend", fit.trend), ("seasonal", fit.seasonal), ("residual", fit.resid))
    for i, (name, values) in enumerate(parts):
        ax = fig.add_subplot(4, 1, i + 1)
        ax.plot(index, values, color="#4c72b0", linewidth=0.8)
        ax.set_ylabel(name)
    return fig
