"""Load outside history (CSV, Parquet or JSON files another source wrote) into finlake through a
column mapping; prints a JSON summary.

    python jobs/load.py --mapping conf/mappings/transactions_example.yaml --source data/tx.csv
    python jobs/load.py --mapping my_mapping.yaml --source 'exports/*.parquet' --to bronze
    python jobs/load.py --mapping my_mapping.yaml --source data/tx.csv --kafka-time now

``--to kafka`` (the default) replays the history through the broker with each record timestamped
at its event time, after raising the topics' retention so the broker keeps it; run the
pipeline (jobs/stream.py) to take it through silver and gold. ``--to bronze`` appends it to the
bronze tables directly, for histories too large to send.
"""
from __future__ import annotations

import sys
import time

from jobs import common


def run(spark, cfg, args) -> dict:
    # pyspark and confluent_kafka: +0.7 s at import; --help stays quick
    from lakehouse.catalog import Catalog
    from lakehouse.loader import MappingError, SourceMapping, messages

    started = time.perf_counter()
    try:
        mapping = SourceMapping.from_yaml(args.mapping)
        Catalog(cfg).register(spark)
        # Read and map the source once: the counts, the retention check and the send reuse it.
        topics = {t: df.persist() for t, df in messages(spark, mapping, args.source).items()}
        counts = {t: df.count() for t, df in topics.items()}
    except MappingError as exc:
        common.fail(str(exc))
    try:
        return _load(spark, cfg, args, mapping, topics, counts, started)
    finally:
        for df in topics.values():
            df.unpersist()


def _load(spark, cfg, args, mapping, topics, counts, started) -> dict:
    from lakehouse.loader import load_to_bronze, load_to_kafka  # pyspark: +0.7 s at import; --help stays quick

    if counts.get(mapping.stream, 0) == 0:
        common.fail(f"no rows in {', '.join(args.source)}: nothing loaded")
    if args.to == "kafka":
        result = load_to_kafka(cfg, topics, args.kafka_time)
        if result["failed"]:
            common.fail(f"{result['failed']} messages were not delivered: {result['errors'][0]}")
        loaded = result["per_topic"]
        extra = {"retention_ms": result["retention_ms"], "kafka_time": args.kafka_time}
    else:
        loaded = load_to_bronze(spark, cfg, topics)
        extra = {}
    short = {t: n for t, n in counts.items() if loaded.get(t) != n}
    if short:
        common.fail(f"loaded fewer messages than the source holds: {short} read, {loaded} loaded")
    for t, n in loaded.items():
        print(f"{t}: {n:,} messages -> {'Kafka' if args.to == 'kafka' else 'bronze'}", flush=True)
    print("check after jobs/stream.py: each stream's silver + quarantine + duplicates dropped = the messages sent "
          "(README, 'Your own data'); a stream with more than pipeline.max_quarantine_share quarantined fails the run", flush=True)
    return {"mapping": args.mapping, "source": args.source, "to": args.to, "per_topic": loaded, **extra,
            "seconds": round(time.perf_counter() - started, 1)}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--mapping", required=True, help="the column mapping (YAML; see conf/mappings/)")
    p.add_argument("--source", required=True, nargs="+", help="files, folders or globs of the source's rows")
    p.add_argument("--to", choices=["kafka", "bronze"], default="kafka", help="replay through Kafka, or append to bronze")
    p.add_argument("--kafka-time", choices=["event", "now"], default="event",
                   help="record timestamp: the event time (a replay; silver's lateness rule then passes history) or the send time")
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    from lakehouse.loader import MappingError, SourceMapping  # pyspark: +0.7 s at import; --help stays quick

    try:
        SourceMapping.from_yaml(args.mapping)   # a bad mapping fails before Spark starts
    except MappingError as exc:
        common.fail(str(exc))
    result = common.execute(p, argv, run, app_name="finlake-load")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
