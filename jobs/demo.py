"""The end-to-end demo on the embedded default stack.

Starts (or reuses) the local Kafka broker, produces every stream with a little bad input mixed
in, runs the medallion pipeline (bronze -> silver + quarantine -> gold) until it has caught up,
and queries the tables by name with SQL: layer counts, quarantine reasons, features, ground
truth and a Delta time-travel read.
"""
from __future__ import annotations

import argparse
import sys
import time

from jobs import common
from jobs.sql import render


def show(spark, title: str, sql: str) -> list[tuple]:
    df = spark.sql(sql)
    rows = [tuple(r) for r in df.collect()]
    print(f"\n{title}")
    print(render(df.columns, rows, "table"))
    return rows


def run(spark, cfg, args) -> dict:
    from jobs import stream
    from lakehouse.catalog import Catalog
    from lakehouse.generators.noise import NoiseConfig
    from lakehouse.generators.producer import ShardPlan, run_shard
    from lakehouse.generators.streams import GeneratorConfig
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import client_config
    from lakehouse.pipeline import STREAMS

    info = ensure_broker(cfg)
    print(f"kafka: {'using the broker' if info['reused'] else 'started the broker'} at {info['bootstrap']}")
    run_id = time.strftime("%Y%m%dT%H%M%S")
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    catalog = Catalog(cfg)
    # Spread the events over the last 50 minutes of event time: recent enough to be on time
    # (allowed lateness is an hour), spread enough for per-card velocity to look like a day.
    span = 3000.0
    gen = GeneratorConfig(seed=seed, start=time.time() - span, rate=args.events / span, label_delay_s=30.0,
                          noise=NoiseConfig.parse(args.noise))
    plan = ShardPlan(shard=0, shards=1, gen=gen, run_id=run_id, max_messages=args.events, duration_s=None,
                     paced=False, mode="kafka", kafka_conf=client_config(cfg), topic_prefix=str(cfg["kafka.topic_prefix"] or ""),
                     truth_locations={t: catalog.spec(t).location for t in ("truth.fraud", "truth.trading", "truth.loan_pd")})
    sent = run_shard(plan)
    if sent["failed"]:
        common.fail(f"{sent['failed']} of {sent['sent']} events were not delivered: {sent['errors']}")
    print(f"kafka: produced {sent['delivered']} messages ({sent['sent'] / sent['seconds']:,.0f}/s): {sent['per_topic']}")

    pipeline = stream.run(spark, cfg, argparse.Namespace(streams="all", layers="bronze,silver,gold", available_now=True, timeout=None))
    print(f"pipeline: caught up in {pipeline['seconds']} s")
    layers = show(spark, "Rows per layer", " UNION ALL ".join(
        f"SELECT '{s}' AS stream, (SELECT count(*) FROM bronze.{s}) AS bronze, (SELECT count(*) FROM silver.{s}) AS silver, "
        f"(SELECT count(*) FROM quarantine.{s}) AS quarantine" for s in STREAMS) + " ORDER BY stream")
    show(spark, "Why rows were quarantined (first reason)", """
        SELECT source_table, reasons[0] AS first_reason, count(*) AS rows FROM (
          SELECT * FROM quarantine.transactions UNION ALL SELECT * FROM quarantine.market_ticks UNION ALL
          SELECT * FROM quarantine.user_events UNION ALL SELECT * FROM quarantine.tx_labels)
        GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10""")
    show(spark, "Card features of the riskiest-looking transactions", """
        SELECT event_id, channel, amount, tx_count_1h, round(amount_vs_card_mean, 1) AS vs_card_mean,
               round(km_from_home, 0) AS km_home, risky_user_events_1h AS risky_ue_1h
        FROM gold.card_features ORDER BY risky_user_events_1h DESC, amount_vs_card_mean DESC NULLS LAST LIMIT 5""")
    show(spark, "Ground truth of this run (never a feature)", f"""
        SELECT scenario, count(*) AS transactions, sum(CAST(is_fraud AS INT)) AS frauds, round(avg(fraud_probability), 4) AS mean_true_p
        FROM truth.fraud WHERE run_id = '{run_id}' GROUP BY scenario ORDER BY transactions DESC""")
    versions = spark.sql("DESCRIBE HISTORY silver.transactions").count()
    first = spark.sql("SELECT count(*) FROM silver.transactions VERSION AS OF 1").first()[0] if versions > 1 else 0
    print(f"\ndelta: silver.transactions has {versions} versions; version 1 held {first} rows (time travel)")
    return {"seed": seed, "produced": sent["delivered"], "tables": pipeline["tables"], "layers": [list(r) for r in layers],
            "versions": versions}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--events", type=int, default=20000, help="messages to produce over all streams")
    p.add_argument("--noise", default="all=0.005", help="bad input to mix in (see jobs/produce.py)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a new one each run)")
    result = common.execute(p, argv, run, app_name="finlake-demo")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
