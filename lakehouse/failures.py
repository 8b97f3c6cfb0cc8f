"""Failures said in one line: a query that failed, and the root cause of an error that crossed
py4j (light: no Spark import, so every job can read it)."""
from __future__ import annotations

import re


class QueryFailed(RuntimeError):
    """A streaming query failed, or stopped, beyond what the run restarts: one line."""


_PY_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
_JVM_CAUSE = re.compile(r"Caused by: ([\w.$]+(?:Error|Exception)): ?(.*)")


def root_cause(exc) -> str:
    """The root cause of a failure in one line: the last Python exception of a traceback that
    crossed py4j (not "An exception was raised by the Python Proxy"), else the deepest JVM
    "Caused by", else the first line."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        tail = text[text.rindex("Traceback (most recent call last)"):]
        hits = [m for m in (_PY_ERROR.match(line.strip()) for line in tail.splitlines()) if m]
        if hits:
            name, message = hits[-1].groups()
            return f"{name.rsplit('.', 1)[-1]}: {message}".strip()
    causes = _JVM_CAUSE.findall(text)
    if causes:
        name, message = causes[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}".strip()
    for marker in ("AnalysisException: ", "PipelineQualityError: "):
        if marker in text:
            return text.split(marker)[-1].strip().splitlines()[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
