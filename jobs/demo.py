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
    from lakehouse.generators.sample import sample_transactions
    from lakehouse.kafka.broker import LocalKafka
    from lakehouse.kafka.produce import send_json
    from lakehouse.streaming import start_bronze

    if cfg["kafka.managed"]:
        info = LocalKafka(cfg).start()
        print(f"kafka: broker pid {info['pid']} on {info['bootstrap']}")
    run_tag = time.strftime("%Y%m%dT%H%M%S")
    events = sample_transactions(args.events, seed=args.seed, run=run_tag)
    sent = send_json(cfg, "transactions", events, key=lambda e: e["customer_id"])
    if sent["failed"]:
        common.fail(f"{sent['failed']} of {sent['sent']} events were not delivered: {sent['errors']}")
    print(f"kafka: produced {sent['delivered']} transactions")

    catalog = Catalog(cfg)
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
               round(sum(CAST(get_json_object(payload, '$.amount') AS DECIMAL(18,2))), 2) AS amount,
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
    history = spark.sql("DESCRIBE HISTORY bronze.transactions").select("version", "operation").orderBy("version")
    versions = [tuple(r) for r in history.collect()]
    first = spark.sql("SELECT count(*) FROM bronze.transactions VERSION AS OF 0").first()[0]
    print(f"delta: {len(versions)} versions; version 0 held {first} rows (time travel)")
    return {"produced": sent["delivered"], "new_rows": after - before, "rows": after, "versions": len(versions)}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--events", type=int, default=2000, help="sample transactions to produce")
    p.add_argument("--seed", type=int, default=7)
    result = common.execute(p, argv, run, app_name="finlake-demo")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
