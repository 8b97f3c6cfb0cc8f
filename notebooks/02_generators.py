# Databricks notebook source
# MAGIC %md
# MAGIC # Synthetic streams and their ground truth
# MAGIC Produces a small history straight into bronze, then compares what the events show with
# MAGIC the truth tables the models will be judged against.

# COMMAND ----------

ENV = "local"
COUNT = 50000
SEED = 7

# COMMAND ----------

from jobs.produce import main as produce
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV)
spark = build_session(cfg, app_name="finlake-notebook")
Catalog(cfg).register(spark)
summary = produce(["--env", ENV, "--mode", "bronze", "--count", str(COUNT), "--rate", "max", "--seed", str(SEED),
                   "--label-delay", "5", "--quiet"])

# COMMAND ----------

Catalog(cfg).register(spark, ["truth.fraud", "truth.trading", "truth.loan_pd"])
spark.sql("""SELECT scenario, count(*) AS transactions, sum(CAST(is_fraud AS INT)) AS frauds,
                    round(avg(fraud_probability), 4) AS mean_true_p
             FROM truth.fraud GROUP BY scenario ORDER BY frauds DESC""").show()

# COMMAND ----------

spark.sql("""SELECT label, count(*) AS ticks, round(avg(p_up), 3) AS mean_p_up, round(avg(p_down), 3) AS mean_p_down
             FROM truth.trading GROUP BY label""").show()

# COMMAND ----------

spark.sql("""SELECT round(avg(true_pd), 4) AS mean_pd, round(avg(CAST(defaulted AS INT)), 4) AS default_rate, count(*) AS loans
             FROM truth.loan_pd""").show()
