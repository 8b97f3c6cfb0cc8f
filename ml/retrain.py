"""Retraining: a challenger from a fresh point-in-time window, promoted only on evidence.

For one use case:
1. (``when`` drifting or degraded) run the monitor first; retrain only when the champion's
   verdict is that bad or worse, otherwise record a ``retrain`` row with status ``skipped``;
2. train a challenger on the last ``retrain.window_hours`` of the gold feature table's event
   time (labels as known now), split by time as every training is;
3. the promotion rule of ``ml.train.promote`` judges it against the champion on the same,
   most recent test rows: better by the metric and by a one-sided paired test (DeLong for
   ROC-AUC, a paired bootstrap otherwise) at ``ml.promotion.alpha``;
4. the decision, the p-value and the reason go to the MLflow run (``promotion.json``, tags) and
   to ``ops.model_monitor`` as a ``promotion`` row. A moved ``champion`` alias is picked up by
   the decision paths and streaming scoring at their next micro-batch, without a restart.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.config import Config
from ml.datasets import USE_CASES
from ml.monitor import append_rows, monitor_use_case
from ml.train import train_use_case

SEVERITY = {"ok": 0, "drifting": 1, "degraded": 2}
WHEN = ("always", "drifting", "degraded")


def _naive(t: dt.datetime | str) -> dt.datetime:
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t)
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def retrain_use_case(spark: SparkSession, cfg: Config, name: str, when: str = "always", window_hours: float | None = None,
                     step: Callable[[str], None] = lambda _msg: None) -> dict:
    """Monitor (unless ``when`` is always), retrain on the fresh window, apply the rule, record it."""
    if when not in WHEN:
        raise ValueError(f"when must be one of {', '.join(WHEN)}, got '{when}'")
    use_case = USE_CASES[name]
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    monitored = None
    if when != "always":
        step("monitoring the champion")
        monitored = monitor_use_case(spark, cfg, name, run_time=now)
        if SEVERITY[monitored["verdict"]] < SEVERITY[when]:
            reason = f"champion v{monitored['version']} is {monitored['verdict']}; retraining runs when it is {when} or worse"
            append_rows(spark, cfg, [(now, name, monitored["model"], monitored["version"], None, None,
                                  _naive(monitored["window"][0]), _naive(monitored["window"][1]), "retrain", None, None, None,
                                  "skipped", monitored["verdict"], None, {"reason": reason, "when": when})])
            return {"use_case": name, "retrained": False, "promoted": False, "reason": reason, "monitor": monitored}
    hours = float(window_hours if window_hours is not None else cfg["retrain.window_hours"])
    gold = spark.read.format("delta").load(Catalog(cfg).spec(use_case.features_table).location)
    newest = gold.agg(F.max(F.col("event_time").cast("double"))).first()[0]   # epoch seconds, no time zone involved
    since = None if newest is None else float(newest) - hours * 3600.0
    trigger = "schedule" if monitored is None else f"monitor verdict {monitored['verdict']}"
    step(f"training a challenger on the last {hours:g} h of {use_case.features_table}")
    result = train_use_case(spark, cfg, name, step=step, since=since,
                            run_tags={"retrain_trigger": trigger, "retrain_window_hours": f"{hours:g}",
                                      "monitor_verdict": monitored["verdict"] if monitored else "unchecked"})
    d, split, model = result["promotion"], result["split"], result["model"]
    details = {k: "" if d.get(k) is None else str(d[k]) for k in
               ("reason", "metric", "challenger_value", "champion_value", "champion_version", "test", "alpha", "min_delta")}
    details.update(run_id=model["run_id"], trigger=trigger, window_hours=f"{hours:g}")
    append_rows(spark, cfg, [(now, name, model["name"], str(model["version"]), _naive(split["start"]), _naive(split["train_end"]),
                          _naive(split["validation_end"]), _naive(split["end"]), "promotion", None, d.get("p_value"), d.get("alpha"),
                          "promoted" if d["promote"] else "kept", monitored["verdict"] if monitored else "unchecked",
                          int(result["rows"]["test"]), details)])
    return {"use_case": name, "retrained": True, "promoted": bool(d["promote"]), "reason": d["reason"],
            "challenger": str(model["version"]), "champion_before": d.get("champion_version"), "p_value": d.get("p_value"),
            "test": d.get("test"), "monitor": monitored, "training": result}
