# Databricks notebook source
# MAGIC %md
# MAGIC # Monitoring: is each champion still looking at the data it was trained on?
# MAGIC Runs the monitor (feature and prediction drift against the champion's training period,
# MAGIC PR-AUC, precision and recall on labels that arrived since) and reads `ops.model_monitor`.
# MAGIC Needs trained champions: run notebook 04 first.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, USE_CASES, RECENT_HOURS, OVERRIDES = widgets(ENV="local", USE_CASES="fraud,trading,loan_pd", RECENT_HOURS=24, OVERRIDES="")

# COMMAND ----------

import argparse

from jobs import monitor
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, [*overrides(OVERRIDES), f"monitor.recent_hours={RECENT_HOURS}"])
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
result = monitor.run(spark, cfg, argparse.Namespace(use_case=USE_CASES))["use_cases"]
{name: (r["verdict"], r["drifting"], r["degraded"]) for name, r in result.items()}

# COMMAND ----------

display(spark.sql("""
    SELECT use_case, model_version, `check`, feature, round(value, 4) AS value, threshold, status, verdict
    FROM ops.model_monitor
    WHERE run_time = (SELECT max(run_time) FROM ops.model_monitor)
    ORDER BY use_case, status DESC, `check`, value DESC"""))
