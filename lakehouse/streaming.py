"""Streaming wiring: Kafka sources and the bronze queries, by table name."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.kafka.clients import spark_kafka_options
from lakehouse.security import pan_hmac_key


def read_kafka(spark: SparkSession, cfg: Config, topic: str, starting_offsets: str = "earliest",
               max_offsets_per_trigger: int | None = None) -> DataFrame:
    """A streaming DataFrame over one topic with the configured broker and security."""
    reader = spark.readStream.format("kafka").options(**spark_kafka_options(cfg))
    reader = reader.option("subscribe", topic).option("startingOffsets", starting_offsets)
    reader = reader.option("failOnDataLoss", "false")
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def start_bronze(spark: SparkSession, cfg: Config, table: str, available_now: bool = False,
                 processing_time: str = "2 seconds"):
    """Start the Kafka -> ``table`` bronze query (Delta sink: exactly once via its checkpoint)."""
    catalog = Catalog(cfg)
    spec = catalog.spec(table)
    if not (spec.source or "").startswith("kafka:"):
        raise ValueError(f"table '{table}' is not fed from Kafka (source: {spec.source})")
    topic = spec.source.split(":", 1)[1]
    df = read_kafka(spark, cfg, topic).transform(kafka_to_bronze).transform(tokenize_pan(pan_hmac_key(cfg)))
    writer = (df.writeStream.format("delta").queryName(table.replace(".", "_"))
              .option("checkpointLocation", spec.checkpoint).outputMode("append"))
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    return writer.start(spec.location)
