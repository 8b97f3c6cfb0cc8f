# Databricks notebook source
# MAGIC %md
# MAGIC # Training: train, judge, register, score, explain
# MAGIC Backfills a training history into bronze and runs it to gold, trains the three models
# MAGIC (test period, baseline and ceiling side by side), registers them in MLflow with the
# MAGIC champion alias, and scores gold with each champion. Everything it calls is a job or a
# MAGIC package function.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, HISTORY, FRAUD_RATE, USE_CASES, OVERRIDES = widgets(
    ENV="local", HISTORY=100000, FRAUD_RATE=0.02, USE_CASES="fraud,trading,loan_pd", OVERRIDES="")

# COMMAND ----------

import argparse

from jobs import produce, score, stream, train
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, overrides(OVERRIDES))
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
# Its own seed: event ids carry the seed, and the same ids with other content from another
# notebook's run in this home would be quarantined as conflicting replays (and fail the run).
produce.run(spark, cfg, produce.build_parser().parse_args([
    "--mode", "bronze", "--count", str(HISTORY), "--rate", "max", "--sim-rate", "2", "--fraud-rate", str(FRAUD_RATE), "--seed", "404",
    "--mix", "transactions=0.55,market_ticks=0.2,user_events=0.1,bureau_updates=0.1,loan_applications=0.1", "--quiet"]))
stream.run(spark, cfg, argparse.Namespace(streams="all", layers="silver,gold", available_now=True, timeout=None))

# COMMAND ----------

trained = train.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, as_of=None))["use_cases"]
{name: {who: {k: round(v, 4) for k, v in m.items() if isinstance(v, float)} for who, m in r["metrics"].items()}
 for name, r in trained.items()}

# COMMAND ----------

# MAGIC %md
# MAGIC The study's trading model is a bidirectional LSTM. With trading trained above, train one as
# MAGIC a challenger over windows of each symbol's ticks (Keras on JAX, the `sequence` extra): it is
# MAGIC judged on the trading champion's test ticks by the same paired test, and never replaces it.

if "trading" in train.parse_use_cases(USE_CASES):
    sequence = train.run(spark, cfg, argparse.Namespace(use_case="trading", as_of=None, model="sequence"))["use_cases"]["trading"]
    display({who: round(m["auc_macro"], 4) for who, m in sequence["metrics"].items()} | {"p_value": sequence["vs_champion"]["p_value"]})

# COMMAND ----------

score.run(spark, cfg, argparse.Namespace(use_case=USE_CASES, available_now=True, timeout=None, alerts=False))
Catalog(cfg).register(spark)
display(spark.sql("""SELECT decision, count(*) AS rows, round(avg(score), 4) AS mean_score, max(model_version) AS version
                     FROM gold.fraud_scores GROUP BY 1"""))

# COMMAND ----------

display(spark.sql("SELECT event_id, score, top_features FROM gold.fraud_scores WHERE decision = 'alert' LIMIT 5"))
