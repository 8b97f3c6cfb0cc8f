"""The share of each stream's rows that silver quarantined, and what finlake does when it is
above ``pipeline.max_quarantine_share``: a run that exits (``stream.py --available-now``, the
demo) fails with one line naming the stream, the share and the top three reasons; a continuous
job keeps running and, each ``pipeline.quarantine_window_s``, writes a failed
``quarantine_share`` row to ``ops.dq_results``, sets the ``finlake_quarantine_share`` gauge and
prints one warning line per stream over the bound.

Shares are taken over at least ``pipeline.min_rows_for_failure_rate`` rows, so a handful of bad
rows in a quiet window warns no one. Duplicates dropped as exact copies count for neither side.
"""
from __future__ import annotations

import sys
import time

from pyspark.sql import functions as F

from lakehouse import observe
from lakehouse.catalog import read_delta_if_exists
from lakehouse.config import Config, ConfigError
from lakehouse.pipeline import dq_frame

SUITE = "finlake.quarantine_watch"


def max_share(cfg: Config) -> float:
    """``pipeline.max_quarantine_share``, checked (0 to 1)."""
    value = cfg.get("pipeline.max_quarantine_share", 0.05)
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0 <= share <= 1:
        raise ConfigError(f"pipeline.max_quarantine_share must be a share from 0 to 1, got {value!r}")
    return share


def min_rows(cfg: Config) -> int:
    return int(cfg["pipeline.min_rows_for_failure_rate"])


def spikes(counts: dict[str, dict], bound: float, least_rows: int) -> list[str]:
    """One line per table whose quarantined share is above ``bound`` over at least
    ``least_rows`` rows; ``counts``: {table: {"checked", "quarantined", "reasons": {reason: n}}}
    (checked: rows that went to silver or quarantine). Pure."""
    out = []
    for table, c in sorted(counts.items()):
        checked, quarantined = int(c["checked"]), int(c["quarantined"])
        if checked < max(1, least_rows) or quarantined / checked <= bound:
            continue
        top = sorted(c["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        out.append(f"{table}: {quarantined / checked:.1%} of {checked:,} rows quarantined, above "
                   f"pipeline.max_quarantine_share={bound:g}; top reasons: " + ", ".join(f"{r} ({n:,})" for r, n in top))
    return out


def counts_since(spark, catalog, streams: list[str], since=None) -> dict[str, dict]:
    """Rows each stream's silver accepted and quarantine took since ``since`` (a timestamp from
    the session's clock; None: ever), with the quarantine's reasons."""
    out = {}
    for s in streams:
        silver = read_delta_if_exists(spark, catalog.spec(f"silver.{s}").location)
        quarantine = read_delta_if_exists(spark, catalog.spec(f"quarantine.{s}").location)
        if since is not None:
            silver = silver.where(F.col("silver_time") >= F.lit(since)) if silver is not None else None
            quarantine = quarantine.where(F.col("quarantined_at") >= F.lit(since)) if quarantine is not None else None
        accepted = silver.count() if silver is not None else 0
        reasons, quarantined = {}, 0
        if quarantine is not None:
            quarantined = quarantine.count()
            reasons = {r["reason"]: int(r["n"]) for r in quarantine.select(F.explode("reasons").alias("reason"))
                       .groupBy("reason").agg(F.count("*").alias("n")).collect()}
        out[f"silver.{s}"] = {"checked": accepted + quarantined, "quarantined": quarantined, "reasons": reasons}
    return out


def session_now(spark):
    """The session's clock, in the form ``counts_since`` compares with."""
    return spark.sql("SELECT current_timestamp() AS t").first()["t"]


class Watch:
    """The continuous job's check, window by window, from what this process's silver batches
    counted (``observe.checked_so_far``): no extra Spark job unless a window warns."""

    def __init__(self, spark, cfg: Config, catalog, window_s: float | None = None):
        self.spark, self.catalog = spark, catalog
        self.bound, self.least_rows = max_share(cfg), min_rows(cfg)
        self.window_s = float(window_s if window_s is not None else cfg.get("pipeline.quarantine_window_s", 60))
        self.started, self.windows = time.monotonic(), 0
        self.last = observe.checked_so_far()
        self.warnings: list[str] = []

    def tick(self) -> list[str]:
        """Close the window if it is over; returns its warning lines (also printed)."""
        if time.monotonic() - self.started < self.window_s * (self.windows + 1):
            return []
        self.windows += 1
        now = observe.checked_so_far()
        window = {}
        for table, c in now.items():
            before = self.last.get(table, {"checked": 0, "quarantined": 0, "reasons": {}})
            window[table] = {"checked": c["checked"] - before["checked"], "quarantined": c["quarantined"] - before["quarantined"],
                             "reasons": {r: n - before["reasons"].get(r, 0) for r, n in c["reasons"].items()
                                         if n - before["reasons"].get(r, 0) > 0}}
        self.last = now
        lines = spikes(window, self.bound, self.least_rows)
        for table, c in window.items():
            if c["checked"]:
                observe.QUARANTINE_SHARE.labels(table).set(c["quarantined"] / c["checked"])
        if lines:
            over = {line.split(":", 1)[0] for line in lines}
            records = [(t, SUITE, [{"expectation": "quarantine_share", "success": False, "unexpected_count": c["quarantined"],
                                    "element_count": c["checked"], "details": {"bound": self.bound, "window_s": self.window_s}}])
                       for t, c in window.items() if t in over]
            dq = self.catalog.spec("ops.dq_results")
            dq_frame(self.spark, self.windows, records).write.format("delta").mode("append").save(dq.location)
            for line in lines:
                print(f"finlake: warning: {line} (the last {self.window_s:g} s)", file=sys.stderr, flush=True)
            self.warnings += lines
        return lines
