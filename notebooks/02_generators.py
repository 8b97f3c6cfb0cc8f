# Databricks notebook source
# MAGIC %md
# MAGIC # Generators: synthetic history with ground truth
# MAGIC Backfills a history of all six streams straight into bronze (tokenized as the stream does)
# MAGIC and looks at the generators' ground truth, which never reaches a feature table.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, COUNT, SEED, OVERRIDES = widgets(ENV="local", COUNT=50000, SEED=7, OVERRIDES="")

# COMMAND ----------

from jobs.produce import main as produce
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, overrides(OVERRIDES))
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
conf = [a for o in overrides(OVERRIDES) for a in ("--conf", o)]
summary = produce(["--env", ENV, *conf, "--mode", "bronze", "--count", str(COUNT), "--rate", "max", "--seed", str(SEED),
                   "--label-delay", "5", "--quiet"])

# COMMAND ----------

Catalog(cfg).register(spark, ["truth.fraud", "truth.trading", "truth.loan_pd"])
display(spark.sql("""SELECT scenario, count(*) AS transactions, sum(CAST(is_fraud AS INT)) AS frauds,
                            round(avg(fraud_probability), 4) AS mean_true_p
                     FROM truth.fraud GROUP BY scenario ORDER BY frauds DESC"""))

# COMMAND ----------

display(spark.sql("""SELECT label, count(*) AS ticks, round(avg(p_up), 3) AS mean_p_up, round(avg(p_down), 3) AS mean_p_down
                     FROM truth.trading GROUP BY label"""))

# COMMAND ----------

display(spark.sql("""SELECT round(avg(true_pd), 4) AS mean_pd, round(avg(CAST(defaulted AS INT)), 4) AS default_rate, count(*) AS loans
                     FROM truth.loan_pd"""))
