# Databricks notebook source
# MAGIC %md
# MAGIC # Decisions: Kafka in, fraud decisions out
# MAGIC Starts the fraud decision path (per-card state in Spark's state store, the silver rules as
# MAGIC gate, the MLflow champion as scorer, decisions and alerts to Kafka, landed once in
# MAGIC `gold.fraud_scores`), produces live transactions, and reads what was decided and how fast.
# MAGIC Needs a fraud champion: run notebook 04 first.

# COMMAND ----------

# Parameters: widgets in a workspace, these defaults elsewhere.
from lakehouse.notebook import overrides, widgets

ENV, TRANSACTIONS, RATE, WAIT_S, OVERRIDES = widgets(ENV="local", TRANSACTIONS=2000, RATE=200, WAIT_S=300, OVERRIDES="")

# COMMAND ----------

import time

from jobs import produce
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from lakehouse.kafka.broker import ensure_broker
from lakehouse.runtime import StreamingRun
from lakehouse.session import build_session
from serving.start import start_decision_paths

cfg = load_config(ENV, overrides(OVERRIDES))
spark = build_session(cfg, app_name="finlake-notebook")
catalog = Catalog(cfg)
catalog.register(spark)
ensure_broker(cfg)
scores = catalog.spec("gold.fraud_scores").location
before = spark.read.format("delta").load(scores).count()
run = StreamingRun(spark, cfg, "notebook", catalog)   # every query of this notebook, stopped together below
decide = start_decision_paths(run, ["fraud"], starting_offsets="latest")   # the queries run in the background
while not all(q.lastProgress for q in run.queries):   # each has fixed its starting offsets
    run.raise_if_failed()
    time.sleep(1)

# COMMAND ----------

# Live transactions (and the user events the fraud features read), paced, with event time now.
sent = produce.run(spark, cfg, produce.build_parser().parse_args([
    "--streams", "transactions,user_events", "--mix", "transactions=0.8,user_events=0.2", "--count", str(int(TRANSACTIONS / 0.8)),
    "--rate", str(RATE), "--seed", "11", "--quiet"]))
expected = sent["per_topic"].get("transactions", 0)   # the mix is drawn at random: count what was sent
deadline = time.monotonic() + WAIT_S
landed = 0
while time.monotonic() < deadline and landed < expected:
    run.raise_if_failed()
    time.sleep(2)
    landed = spark.read.format("delta").load(scores).count() - before
run.stop()
print(f"{landed} decisions landed for {expected} transactions sent")
assert landed == expected, f"{landed} decisions landed within WAIT_S seconds for {expected} transactions sent"

# COMMAND ----------

display(spark.sql(f"""SELECT decision, count(*) AS decisions, max(model_version) AS model_version,
                             percentile(decision_latency_ms, 0.5) AS p50_ms, percentile(decision_latency_ms, 0.99) AS p99_ms
                      FROM delta.`{scores}` WHERE decision_latency_ms IS NOT NULL GROUP BY 1"""))
