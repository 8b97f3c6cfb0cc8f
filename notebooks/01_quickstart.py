# Databricks notebook source
# MAGIC %md
# MAGIC # finlake quickstart
# MAGIC Joins the lakehouse from a notebook: builds the session for an environment, registers the
# MAGIC table catalog and queries tables by name. Run `make demo` (or notebooks 02-04) first to land
# MAGIC data; on an empty home every table exists and is empty.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, OVERRIDES = widgets(ENV="local", OVERRIDES="")

# COMMAND ----------

from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.session import build_session

cfg = load_config(ENV, overrides(OVERRIDES))
spark = build_session(cfg, app_name="finlake-notebook")   # joins the running session (Databricks' or a test's)
registered = Catalog(cfg).register(spark)
print(f"{len(registered)} tables registered")

# COMMAND ----------

display(spark.sql("SHOW TABLES IN bronze"))

# COMMAND ----------

display(spark.sql("""
    SELECT get_json_object(CAST(payload AS STRING), '$.channel') AS channel, count(*) AS transactions
    FROM bronze.transactions GROUP BY 1 ORDER BY 1
"""))

# COMMAND ----------

display(spark.sql("DESCRIBE HISTORY bronze.transactions").select("version", "timestamp", "operation"))
