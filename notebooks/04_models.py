# Databricks notebook source
# MAGIC %md
# MAGIC # Models: train, judge, register, score, explain
# MAGIC Backfills a training history into bronze and runs it to gold, trains the three models
# MAGIC (test period, baseline and ceiling side by side), scores gold with each champion, and
# MAGIC writes the statistical report. Everything it calls is a job or a package function.

# COMMAND ----------

ENV = "local"
HISTORY = 100000
FRAUD_RATE = 0.02
USE_CASES = "fraud,trading,loan_pd"

# COMMAND ----------

import argparse

from jobs import produce, score, stats_report, stream, train
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV)
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
produce.run(spark, cfg, produce.build_parser().parse_args([
    "--mode", "bronze", "--count", str(HISTORY), "--rate", "max", "--sim-rate", "2", "--fraud-rate", str(FRAUD_RATE), "--quiet"]))
stream.run(spark, cfg, argparse.Namespace(streams="all", layers="silver,gold", available_now=True, timeout=None))

# COMMAND ----------

trained = train.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, as_of=None))["use_cases"]
{name: {who: {k: v for k, v in m.items() if isinstance(v, float)} for who, m in r["metrics"].items()} for name, r in trained.items()}

# COMMAND ----------

score.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, available_now=True, timeout=None, alerts=False))
Catalog(cfg).register(spark)
spark.sql("""SELECT decision, count(*) AS rows, round(avg(score), 4) AS mean_score, max(model_version) AS version
             FROM gold.fraud_scores GROUP BY 1""").show()
spark.sql("SELECT event_id, score, top_features FROM gold.fraud_scores WHERE decision = 'alert' LIMIT 5").show(truncate=False)

# COMMAND ----------

report = stats_report.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, out=None))
report["table4"]
