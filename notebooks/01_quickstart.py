# Databricks notebook source
# MAGIC %md
# MAGIC # finlake quickstart
# MAGIC Joins the lakehouse from a notebook: builds the session for an environment, registers the
# MAGIC table catalog and queries tables by name. Run `make demo` first to land sample data.

# COMMAND ----------

# Parameters
ENV = "local"          # local | gpu | cluster
OVERRIDES: list[str] = []

# COMMAND ----------

from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, OVERRIDES)
try:
    spark  # provided by Databricks
except NameError:
    spark = build_session(cfg, app_name="finlake-notebook")
registered = Catalog(cfg).register(spark)
print(f"{len(registered)} tables registered")

# COMMAND ----------

spark.sql("SHOW TABLES IN bronze").show()

# COMMAND ----------

spark.sql("""
    SELECT get_json_object(CAST(payload AS STRING), '$.channel') AS channel, count(*) AS transactions
    FROM bronze.transactions GROUP BY 1 ORDER BY 1
""").show()

# COMMAND ----------

spark.sql("DESCRIBE HISTORY bronze.transactions").select("version", "timestamp", "operation").show(truncate=False)
