"""Streaming wiring: Kafka sources and the bronze queries, by table name."""
from __future__ import annotations

import json
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.catalog import Catalog
from lakehouse.config import Config, ConfigError
from lakehouse.kafka.clients import end_offsets, spark_kafka_options, topic_name
from lakehouse.pipeline import GoldBatch, IngestBatch, SilverBatch
from lakehouse.security import pan_hmac_key
from lakehouse.session import scheduler_pool
from lakehouse.topology import GOLD_VIEWS, STREAMS, stream_table


INGEST_MODES = ("one_query", "bronze_apart", "per_layer")


def ingest_mode(cfg: Config) -> str:
    """``pipeline.ingest``: one_query (Kafka -> bronze and silver of every stream in one query),
    bronze_apart (a bronze query and an ingest query, each reading every stream's topic: bronze
    lands in its own short batches however long silver's take) or per_layer (a bronze query and a
    silver query per stream)."""
    mode = str(cfg.get("pipeline.ingest", "bronze_apart"))
    if mode not in INGEST_MODES:
        raise ConfigError(f"pipeline.ingest must be one of {', '.join(INGEST_MODES)}, got '{mode}'")
    return mode


INGEST_QUERY = "ingest"
BRONZE_QUERY = "bronze"


def silver_query(cfg: Config, stream: str) -> str:
    """The name of the query whose batches carry ``stream``'s Kafka rows into silver."""
    return f"silver_{stream}" if ingest_mode(cfg) == "per_layer" else INGEST_QUERY


def kafka_query(cfg: Config, stream: str) -> str:
    """The name of the query that lands ``stream``'s Kafka rows in bronze."""
    return {"one_query": INGEST_QUERY, "bronze_apart": BRONZE_QUERY}.get(ingest_mode(cfg), f"bronze_{stream}")


# The columns of Spark's Kafka source (what ``read_kafka`` returns), for batch frames of records.
KAFKA_SOURCE_DDL = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"


def read_kafka(spark: SparkSession, cfg: Config, topic: str, starting_offsets: str = "earliest",
               max_offsets_per_trigger: int | None = None) -> DataFrame:
    """A streaming DataFrame over one topic (or a comma list) with the configured broker and security."""
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
    topic = topic_name(cfg, catalog.source_topic(table))
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


def committed_offsets(checkpoint: str) -> dict | None:
    """The Kafka offsets up to which a single-source query's checkpoint has committed its
    batches ({topic: {partition: offset}}), or None (no committed batch)."""
    root = Path(checkpoint)
    done = sorted(int(p.name) for p in (root / "commits").glob("*") if p.name.isdigit())
    if not done or not (root / "offsets" / str(done[-1])).exists():
        return None
    lines = (root / "offsets" / str(done[-1])).read_text().splitlines()
    return json.loads(lines[2]) if len(lines) > 2 else None


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


def ingest_checkpoint(cfg: Config, streams, query: str = INGEST_QUERY) -> str:
    root = str(cfg["paths.checkpoints"]).rstrip("/")
    folder = "ingest" if query == INGEST_QUERY else f"ingest_{query}"
    return f"{root}/{folder}/" + ("all" if set(streams) == set(STREAMS) else "+".join(sorted(streams)))


def start_ingest(spark: SparkSession, cfg: Config, streams, available_now: bool = False,
                 processing_time: str | None = None, starting_offsets: dict[str, str] | None = None,
                 layers=("bronze", "silver")):
    """Start the ingest query: one Kafka read of every stream's topic -> bronze and silver
    (+ quarantine, ops.dq_results) of each stream in one ``foreachBatch`` (``IngestBatch``).
    ``layers`` ("bronze",): the bronze query of ``pipeline.ingest: bronze_apart``; ("silver",):
    its ingest query. ``starting_offsets``: a new checkpoint's per-stream starting offsets
    (Spark's per-partition JSON for that stream's topic, or earliest/latest); default earliest.
    Returns (query, fn)."""
    name = BRONZE_QUERY if tuple(layers) == ("bronze",) else INGEST_QUERY
    catalog = Catalog(cfg)
    logical = {s: catalog.source_topic(f"bronze.{s}") for s in streams}
    topics = {topic_name(cfg, logical[s]): s for s in streams}
    checkpoint = ingest_checkpoint(cfg, streams, name)
    given = {s: (starting_offsets or {}).get(s, "earliest") for s in topics.values()}
    handed = _bronze_handover(cfg, streams, checkpoint) if name == BRONZE_QUERY else {}
    given.update({stream: json.dumps({t: handed[t]}) for t, stream in topics.items() if t in handed})
    offsets = next(iter(set(given.values()))) if len(set(given.values())) == 1 else None
    if offsets not in ("earliest", "latest"):
        # Spark wants every partition of every topic in the JSON: -2 earliest, -1 latest.
        parts = end_offsets(cfg, [logical[s] for s in topics.values() if given[s] in ("earliest", "latest")])
        merged = {}
        for topic, stream in topics.items():
            if given[stream] in ("earliest", "latest"):
                merged[topic] = {p: -2 if given[stream] == "earliest" else -1 for p in parts[topic]}
            else:
                merged.update(json.loads(given[stream]))
        offsets = json.dumps(merged)
    limit = None if available_now else int(cfg["pipeline.max_offsets_per_trigger"]) or None
    df = (read_kafka(spark, cfg, ",".join(topics), offsets, max_offsets_per_trigger=limit)
          .transform(kafka_to_bronze).transform(tokenize_pan(pan_hmac_key(cfg))))
    fn = IngestBatch(cfg, topics, checkpoint, layers)

    def make_writer():
        return (df.writeStream.queryName(name).option("checkpointLocation", checkpoint).foreachBatch(fn))

    # The bronze query of bronze_apart runs in its own pool (pipeline.bronze_pool), so its few
    # appends take the next free slots ahead of silver's and gold's queued stages.
    with scheduler_pool(spark, str(cfg.get("pipeline.bronze_pool", "") or "") if name == BRONZE_QUERY else None):
        return _start(make_writer, cfg, checkpoint, available_now, processing_time), fn


def _bronze_handover(cfg: Config, streams, checkpoint: str) -> dict:
    """A new bronze query (``bronze_apart``) of a deployment whose ingest query wrote bronze
    itself (``one_query``) starts where that query's bronze ended, not at the topics' start
    (which would land them in bronze again): {topic: {partition: offset}}, or {}."""
    ingest = ingest_checkpoint(cfg, streams)
    if (Path(checkpoint) / "offsets").exists() or not list(Path(ingest).glob("_finlake_app_id.bronze.*")):
        return {}
    return committed_offsets(ingest) or {}


def start_silver(spark: SparkSession, cfg: Config, stream: str, available_now: bool = False,
                 processing_time: str | None = None):
    """Start bronze.<stream> -> silver.<stream> (+ quarantine, ops.dq_results) in foreachBatch.

    With ``pipeline.ingest: one_query`` (or bronze_apart) the ingest query carries Kafka's rows to silver itself;
    this query then takes only bronze rows that came another way (backfills and loads straight
    to bronze, partition -1)."""
    catalog = Catalog(cfg)
    source, target = catalog.spec(f"bronze.{stream}"), catalog.spec(f"silver.{stream}")
    fn = SilverBatch(cfg, stream, target.checkpoint)
    only_backfills = ingest_mode(cfg) != "per_layer"

    def make_writer():
        rows = spark.readStream.format("delta").load(source.location)
        if only_backfills:
            rows = rows.where(F.col("partition") < 0)
        return (rows.writeStream.queryName(f"silver_{stream}")
                .option("checkpointLocation", target.checkpoint).foreachBatch(fn))

    return _start(make_writer, cfg, target.checkpoint, available_now, processing_time)


def start_gold(spark: SparkSession, cfg: Config, table: str, available_now: bool = False,
               processing_time: str | None = None):
    """Start the silver -> ``table`` feature query (point-in-time windows over silver history)."""
    catalog = Catalog(cfg)
    target = catalog.spec(table)
    source = catalog.spec(stream_table("silver", GOLD_VIEWS[table].driver))
    fn = GoldBatch(cfg, table, target.checkpoint)

    def make_writer():
        return (spark.readStream.format("delta").load(source.location).writeStream.queryName(table.replace(".", "_"))
                .option("checkpointLocation", target.checkpoint).foreachBatch(fn))

    return _start(make_writer, cfg, target.checkpoint, available_now, processing_time)
