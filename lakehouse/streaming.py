"""Streaming wiring: Kafka sources and the bronze queries, by table name."""
from __future__ import annotations

import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.kafka.clients import spark_kafka_options, topic_name
from lakehouse.security import pan_hmac_key


def release_checkpoint(df: DataFrame) -> None:
    """Free the blocks of ``df.localCheckpoint()`` now, not when the JVM collects its RDD."""
    df._jdf.queryExecution().analyzed().rdd().unpersist(False)


def read_kafka(spark: SparkSession, cfg: Config, topic: str, starting_offsets: str = "earliest",
               max_offsets_per_trigger: int | None = None) -> DataFrame:
    """A streaming DataFrame over one topic with the configured broker and security."""
    reader = spark.readStream.format("kafka").options(**spark_kafka_options(cfg))
    reader = reader.option("subscribe", topic).option("startingOffsets", starting_offsets)
    reader = reader.option("failOnDataLoss", "true" if cfg["pipeline.fail_on_data_loss"] else "false")
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def start_bronze(spark: SparkSession, cfg: Config, table: str, available_now: bool = False,
                 processing_time: str | None = None, starting_offsets: str = "earliest"):
    """Start the Kafka -> ``table`` bronze query (Delta sink: exactly once via its checkpoint).

    ``starting_offsets`` (Spark's option: earliest, latest or per-partition JSON) applies only to
    a new checkpoint; an existing one resumes where it stopped."""
    catalog = Catalog(cfg)
    spec = catalog.spec(table)
    if not (spec.source or "").startswith("kafka:"):
        raise ValueError(f"table '{table}' is not fed from Kafka (source: {spec.source})")
    topic = topic_name(cfg, spec.source.split(":", 1)[1])
    # The per-trigger limit paces continuous runs; an availableNow run takes what is there.
    limit = None if available_now else int(cfg["pipeline.max_offsets_per_trigger"]) or None
    df = (read_kafka(spark, cfg, topic, starting_offsets, max_offsets_per_trigger=limit)
          .transform(kafka_to_bronze).transform(tokenize_pan(pan_hmac_key(cfg))))
    def make_writer():
        writer = (df.writeStream.format("delta").queryName(table.replace(".", "_"))
                  .option("checkpointLocation", spec.checkpoint).outputMode("append"))
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
        return writer

    return _start(make_writer, cfg, spec.checkpoint, available_now, processing_time, path=spec.location)


def pending_batch(checkpoint: str) -> int | None:
    """The id of a batch a query planned (offsets written) but never committed, if any."""
    root = Path(checkpoint)
    planned = {int(p.name) for p in (root / "offsets").glob("*") if p.name.isdigit()}
    done = {int(p.name) for p in (root / "commits").glob("*") if p.name.isdigit()}
    pending = planned - done
    return max(pending) if pending else None


def _start(make_writer, cfg: Config, checkpoint: str, available_now: bool, processing_time: str | None, path=None):
    """Start a query. An availableNow start first finishes any batch a crashed run left
    planned but uncommitted, under a processing-time trigger: Spark 4.1.1 fails with a
    NullPointerException when an availableNow query restarts onto such a batch."""
    if not available_now:
        writer = make_writer().trigger(processingTime=processing_time or str(cfg["pipeline.trigger_interval"]))
        return writer.start(path) if path else writer.start()
    pending = pending_batch(checkpoint)
    if pending is not None:
        writer = make_writer().trigger(processingTime="1 second")
        query = writer.start(path) if path else writer.start()
        deadline = time.monotonic() + 600
        while not (Path(checkpoint) / "commits" / str(pending)).exists():
            if query.exception() is not None or time.monotonic() > deadline:
                query.stop()
                raise RuntimeError(f"could not finish the pending batch {pending} of {checkpoint}: {query.exception()}")
            time.sleep(0.2)
        query.stop()
    writer = make_writer().trigger(availableNow=True)
    return writer.start(path) if path else writer.start()


def start_silver(spark: SparkSession, cfg: Config, stream: str, available_now: bool = False,
                 processing_time: str | None = None):
    """Start bronze.<stream> -> silver.<stream> (+ quarantine, ops.dq_results) in foreachBatch."""
    from lakehouse.pipeline import SilverBatch

    catalog = Catalog(cfg)
    source, target = catalog.spec(f"bronze.{stream}"), catalog.spec(f"silver.{stream}")
    fn = SilverBatch(cfg, stream, target.checkpoint)

    def make_writer():
        return (spark.readStream.format("delta").load(source.location).writeStream.queryName(f"silver_{stream}")
                .option("checkpointLocation", target.checkpoint).foreachBatch(fn))

    return _start(make_writer, cfg, target.checkpoint, available_now, processing_time)


def start_gold(spark: SparkSession, cfg: Config, table: str, available_now: bool = False,
               processing_time: str | None = None):
    """Start the silver -> ``table`` feature query (point-in-time windows over silver history)."""
    from lakehouse.pipeline import GOLD, GoldBatch

    catalog = Catalog(cfg)
    target = catalog.spec(table)
    source = catalog.spec(f"silver.{GOLD[table][0]}")
    fn = GoldBatch(cfg, table, target.checkpoint)

    def make_writer():
        return (spark.readStream.format("delta").load(source.location).writeStream.queryName(table.replace(".", "_"))
                .option("checkpointLocation", target.checkpoint).foreachBatch(fn))

    return _start(make_writer, cfg, target.checkpoint, available_now, processing_time)


def start_pipeline(spark: SparkSession, cfg: Config, streams, gold_tables, processing_time: str,
                   bronze_from: dict[str, str] | None = None) -> list:
    """Start bronze and silver for ``streams`` and the ``gold_tables`` queries, continuous
    (``bronze_from``: a new bronze checkpoint's starting offsets per stream, default earliest)."""
    queries = [start_bronze(spark, cfg, f"bronze.{s}", processing_time=processing_time,
                            starting_offsets=(bronze_from or {}).get(s, "earliest")) for s in streams]
    queries += [start_silver(spark, cfg, s, processing_time=processing_time) for s in streams]
    queries += [start_gold(spark, cfg, t, processing_time=processing_time) for t in gold_tables]
    return queries


def wait_until_idle(queries: list, timeout_s: float, checks: int = 4, every_s: float = 2.0):
    """Wait until every query has been idle (no data available, no trigger running) for
    ``checks`` looks in a row, or ``timeout_s`` passes, or one fails; returns a failed query."""
    deadline, idle = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and idle < checks:
        failed = next((q for q in queries if q.exception() is not None), None)
        if failed:
            return failed
        quiet = all(not q.status["isDataAvailable"] and not q.status["isTriggerActive"] for q in queries)
        idle = idle + 1 if quiet else 0
        time.sleep(every_s)
    return next((q for q in queries if q.exception() is not None), None)
