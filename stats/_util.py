"""Shared input validation and JSON conversion for the stats package."""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import is_dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

from . import StatsInputError


def drop_constant(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Return df without its constant columns (at most one distinct non-NaN value) and their names."""
    if not isinstance(df, pd.DataFrame):
        raise StatsInputError(f"drop_constant: expected a pandas DataFrame, got {type(df).__name__}")
    dropped = [c for c in df.columns if df[c].nunique(dropna=True) <= 1]
    return df.drop(columns=dropped), [str(c) for c in dropped]


def complete_numeric(df: pd.DataFrame, who: str, min_rows: int) -> tuple[pd.DataFrame, int]:
    """Return df as floats restricted to rows without NaN/inf, and the number of rows dropped; raise if degenerate."""
    _check_frame(df, who)
    values = df.astype(float).replace([np.inf, -np.inf], np.nan)
    complete = values.dropna()
    dropped = len(values) - len(complete)
    if complete.empty:
        raise StatsInputError(f"{who}: no complete rows (all {len(values)} rows contain NaN or inf)")
    if len(complete) < min_rows:
        raise StatsInputError(f"{who} needs at least {min_rows} complete rows, got {len(complete)}")
    for name in complete.columns:
        col = complete[name].to_numpy()
        # A spread at rounding level (0.1 + 0.2 vs 0.3) is constant too: z-scoring it would amplify noise.
        if np.ptp(col) <= 1e-12 * np.abs(col).max():
            where = f" over the {len(complete)} complete rows" if dropped else ""
            raise StatsInputError(f"{who}: column '{name}' is constant{where} (see stats.drop_constant)")
    complete.columns = [str(c) for c in complete.columns]
    return complete, dropped


def _check_frame(df: pd.DataFrame, who: str) -> None:
    """Raise unless df is a non-empty DataFrame of uniquely named numeric columns."""
    if not isinstance(df, pd.DataFrame):
        raise StatsInputError(f"{who}: expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise StatsInputError(f"{who}: the DataFrame has no columns")
    if df.shape[0] == 0:
        raise StatsInputError(f"{who}: the DataFrame has no rows")
    if df.columns.has_duplicates:
        raise StatsInputError(f"{who}: duplicate column names {sorted(map(str, df.columns[df.columns.duplicated()]))}")
    for name in df.columns:
        dtype = df[name].dtype
        if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) or is_complex_dtype(dtype):
            raise StatsInputError(f"{who}: column '{name}' is not numeric (dtype {dtype})")


def finite_or_none(x) -> float | None:
    """Return x as a float, or None when it is None, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def json_safe(obj):
    """Return obj converted to plain JSON types, with NaN and +-inf replaced by None."""
    if obj is None or obj is pd.NA or obj is pd.NaT or isinstance(obj, (bool, str)):
        return None if obj is pd.NA or obj is pd.NaT else obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_or_none(obj)
    if is_dataclass(obj) and hasattr(obj, "to_dict"):
        return json_safe(obj.to_dict())
    if isinstance(obj, pd.DataFrame):
        frame = obj if isinstance(obj.index, pd.RangeIndex) else obj.reset_index()
        return json_safe(frame.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return json_safe(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray)):
        return [json_safe(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (_dt.date, _dt.datetime, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"json_safe: cannot convert {type(obj).__name__} to JSON")
