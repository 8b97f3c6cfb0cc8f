"""Notebook parameters the Databricks way, and a runner that executes a Databricks-source
notebook top to bottom outside a workspace (tests, CI, a laptop).

In a notebook's parameters cell::

    from lakehouse.notebook import widgets
    ENV, COUNT, OVERRIDES = widgets(ENV="local", COUNT=50000, OVERRIDES="")   # OVERRIDES: "key=value; key=value"

In a workspace each name becomes a text widget with its default and the widget's value is
returned, typed like the default (int, float, bool, str). Elsewhere the defaults are returned,
unless ``run_notebook`` was given values for them.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

CELL = re.compile(r"^# COMMAND -+\s*$", re.M)
_given: dict[str, Any] = {}


def _dbutils():
    try:
        from IPython import get_ipython  # here, not at the top: only a notebook kernel has it

        shell = get_ipython()
        return shell.user_ns.get("dbutils") if shell is not None else None
    except ImportError:
        return None


def _typed(text: str, default):
    if isinstance(default, bool):
        return str(text).strip().lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return str(text)


def widgets(**defaults) -> tuple:
    """The parameters' values, in the order given (see the module docstring)."""
    unknown = sorted(set(_given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; this notebook takes {sorted(defaults)}")
    dbutils = _dbutils()
    values = []
    for name, default in defaults.items():
        if name in _given:
            values.append(_given[name])
        elif dbutils is not None:
            dbutils.widgets.text(name, str(default))
            values.append(_typed(dbutils.widgets.get(name), default))
        else:
            values.append(default)
    return tuple(values)


def overrides(text: str) -> list[str]:
    """An OVERRIDES widget ("key=value; key=value") as config overrides (--conf values)."""
    return [t.strip() for t in str(text).split(";") if t.strip()]


def cells(path: str | Path) -> list[str]:
    """The code cells of a Databricks-source notebook (markdown ``# MAGIC`` cells dropped)."""
    text = Path(path).read_text()
    out = []
    for cell in CELL.split(text):
        lines = [l for l in cell.splitlines() if not l.startswith("# Databricks notebook source")]
        if all(l.startswith("# MAGIC") or not l.strip() for l in lines):
            continue
        out.append("\n".join(l for l in lines if not l.startswith("# MAGIC")))
    return out


@contextlib.contextmanager
def _environment(env: dict[str, str] | None):
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(path: str | Path, params: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 namespace: dict | None = None) -> dict:
    """Execute every code cell of ``path`` in one namespace, with ``params`` for its widgets and
    ``env`` set meanwhile; returns the namespace. An error names the notebook and the cell."""
    ns = {"__name__": "__main__", "display": _display, **(namespace or {})}
    _given.clear()
    _given.update(params or {})
    try:
        with _environment(env):
            for i, code in enumerate(cells(path), 1):
                try:
                    exec(compile(code, f"{Path(path).name} [cell {i}]", "exec"), ns)
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        raise RuntimeError(f"{Path(path).name} cell {i}: a job exited with code {exc.code}") from exc
    finally:
        _given.clear()
    return ns


def _display(obj, *args, **kwargs):
    """Databricks' ``display`` outside a workspace: a DataFrame is shown, anything else printed."""
    show = getattr(obj, "show", None)
    if callable(show):
        show(truncate=False)
    else:
        print(obj)
