# Databricks notebook source
# MAGIC %md
# MAGIC # Statistics: PCA, VIF, paired tests, ANOVA, time series
# MAGIC Writes the statistical report (HTML, JSON, Table 4 Markdown) over gold and the champions'
# MAGIC evidence. Needs trained champions: run notebook 04 first.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, USE_CASES, OVERRIDES = widgets(ENV="local", USE_CASES="fraud,trading,loan_pd", OVERRIDES="")

# COMMAND ----------

import argparse

from jobs import stats_report
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, overrides(OVERRIDES))
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
report = stats_report.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, out=None))
print(report.get("html") or report.get("out") or sorted(report))

# COMMAND ----------

report["table4"]
