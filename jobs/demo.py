"""The end-to-end demo on the embedded default stack.

Starts the local Kafka broker, produces sample card transactions, lands them in
``bronze.transactions`` (Delta, PAN tokenized) with a Structured Streaming query, and queries
the table by name with SQL, including a time-travel read.
"""
from __future__ import annotations

import sys
import time

from jobs import common
from jobs.sql import render


def run(spark, cfg, args) -> dict:
    from lakehouse.catalog import Catalog
    from lakehouse.generators.producer import ShardPlan, run_shard
    from lakehouse.generators.streams import GeneratorConfig
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import client_config
    from lakehouse.streaming import start_bronze

    info = ensure_broker(cfg)
    print(f"kafka: {'using the broker' if info['reused'] else 'started the broker'} at {info['bootstrap']}")
    run_id = time.strftime("%Y%m%dT%H%M%S")
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    catalog = Catalog(cfg)
    gen = GeneratorConfig(seed=seed, start="now", streams=("transactions",), rate=1000.0)
    plan = ShardPlan(shard=0, shards=1, gen=gen, run_id=run_id, max_messages=args.events, duration_s=None,
                     paced=False, mode="kafka", kafka_conf=client_config(cfg), topic_prefix=str(cfg["kafka.topic_prefix"] or ""),
                     truth_locations={t: catalog.spec(t).location for t in ("truth.fraud", "truth.trading", "truth.loan_pd")})
    sent = run_shard(plan)
    if sent["failed"]:
        common.fail(f"{sent['failed']} of {sent['sent']} events were not delivered: {sent['errors']}")
    print(f"kafka: produced {sent['delivered']} transactions ({sent['sent'] / sent['send_seconds']:,.0f}/s)")

    before = spark.sql("SELECT count(*) FROM bronze.transactions").first()[0]
    query = start_bronze(spark, cfg, "bronze.transactions", available_now=True)
    query.awaitTermination()
    if query.exception():
        raise query.exception()
    catalog.register(spark, ["bronze.transactions"])
    spark.sql("REFRESH TABLE bronze.transactions")
    after = spark.sql("SELECT count(*) FROM bronze.transactions").first()[0]
    print(f"bronze: {after - before} new rows, {after} in bronze.transactions")

    summary_sql = """
        SELECT get_json_object(payload, '$.channel') AS channel,
               count(*) AS transactions,
               round(sum(try_cast(get_json_object(payload, '$.amount') AS DECIMAL(18,2))), 2) AS amount,
               count_if(try_cast(get_json_object(payload, '$.amount') AS DECIMAL(18,2)) IS NULL) AS unreadable_amount,
               count(DISTINCT get_json_object(payload, '$.card_token')) AS cards
        FROM bronze.transactions GROUP BY 1 ORDER BY 1"""
    df = spark.sql(summary_sql)
    print(render(df.columns, [tuple(r) for r in df.collect()], "table"))
    sample = spark.sql("""SELECT get_json_object(payload, '$.event_id') AS event_id,
                                 get_json_object(payload, '$.card_last4') AS card_last4,
                                 substr(get_json_object(payload, '$.card_token'), 1, 16) AS card_token,
                                 get_json_object(payload, '$.amount') AS amount, partition, offset
                          FROM bronze.transactions ORDER BY kafka_timestamp DESC, offset DESC LIMIT 5""")
    print(render(sample.columns, [tuple(r) for r in sample.collect()], "table"))
    spark.sql("REFRESH TABLE truth.fraud")
    truth = spark.sql("""SELECT scenario, count(*) AS transactions, sum(CAST(is_fraud AS INT)) AS frauds,
                                round(avg(fraud_probability), 4) AS mean_true_p
                         FROM truth.fraud WHERE run_id = '%s' GROUP BY scenario ORDER BY scenario""" % run_id)
    print(render(truth.columns, [tuple(r) for r in truth.collect()], "table"))
    history = spark.sql("DESCRIBE HISTORY bronze.transactions").select("version", "operation").orderBy("version")
    versions = [tuple(r) for r in history.collect()]
    first = spark.sql("SELECT count(*) FROM bronze.transactions VERSION AS OF 0").first()[0]
    print(f"delta: {len(versions)} versions; version 0 held {first} rows (time travel)")
    return {"seed": seed, "produced": sent["delivered"], "new_rows": after - before, "rows": after, "versions": len(versions)}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--events", type=int, default=2000, help="sample transactions to produce")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a new one each run)")
    result = common.execute(p, argv, run, app_name="finlake-demo")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
