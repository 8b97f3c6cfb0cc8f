# Databricks notebook source
# MAGIC %md
# MAGIC # The medallion pipeline, with bad input
# MAGIC Produces every stream with 1% of each kind of bad input, runs bronze -> silver -> gold until
# MAGIC caught up, then shows what was quarantined and why, and what each validation reported.

# COMMAND ----------

ENV = "local"
MESSAGES = 20000
NOISE = "all=0.01"

# COMMAND ----------

from jobs.produce import main as produce
from jobs.stream import main as stream
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV)
spark = build_session(cfg, app_name="finlake-notebook")
produce(["--env", ENV, "--count", str(MESSAGES), "--rate", "max", "--noise", NOISE, "--label-delay", "5", "--quiet"])
stream(["--env", ENV, "--available-now"])
Catalog(cfg).register(spark)

# COMMAND ----------

spark.sql("""SELECT source_table, reasons, count(*) AS rows FROM quarantine.transactions
             GROUP BY 1, 2 ORDER BY rows DESC""").show(truncate=False)

# COMMAND ----------

spark.sql("""SELECT table, suite, expectation, sum(unexpected_count) AS unexpected, sum(element_count) AS checked
             FROM ops.dq_results GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").show(100, truncate=False)

# COMMAND ----------

spark.sql("""SELECT query_name, count(*) AS batches, sum(num_input_rows) AS rows, round(avg(batch_duration_ms)) AS mean_ms
             FROM ops.stream_metrics GROUP BY 1 ORDER BY 1""").show(truncate=False)
