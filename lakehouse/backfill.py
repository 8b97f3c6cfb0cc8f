"""Backfill: land producer files (``<folder>/<topic>/*.jsonl``) in bronze through the same
transforms as the stream, for large histories that need not pass through Kafka."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, DoubleType

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.security import pan_hmac_key

LANDING_SCHEMA = StructType([
    StructField("key", StringType(), True),
    StructField("value", StringType(), True),
    StructField("timestamp", DoubleType(), True),
])


def landing_to_kafka_rows(df, topic: str):
    """Landing rows -> the Kafka source's columns (partition -1 and a per-file offset mark a backfill)."""
    return df.select(
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
        F.lit(topic).alias("topic"),
        F.lit(-1).alias("partition"),
        F.monotonically_increasing_id().alias("offset"),
        F.timestamp_seconds("timestamp").alias("timestamp"),
    )


def append_landing(spark: SparkSession, cfg: Config, topic: str, landing) -> int:
    """Append landing rows (``key``, ``value``, ``timestamp`` in epoch seconds) of one topic to
    its bronze table through the stream's transforms; returns the rows appended."""
    spec = Catalog(cfg).spec(f"bronze.{topic}")
    landing = landing.persist()
    try:
        n = landing.count()
        bronze = landing_to_kafka_rows(landing, topic).transform(kafka_to_bronze).transform(tokenize_pan(pan_hmac_key(cfg)))
        writer = bronze.write.format("delta").mode("append")
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
        writer.save(spec.location)
    finally:
        landing.unpersist()
    return n


def files_to_bronze(spark: SparkSession, cfg: Config, folder: Path) -> dict[str, int]:
    """Append every topic folder under ``folder`` to its bronze table; returns rows per table."""
    catalog = Catalog(cfg)
    landed = {}
    for topic_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        table = f"bronze.{topic_dir.name}"
        append_landing(spark, cfg, topic_dir.name, spark.read.schema(LANDING_SCHEMA).json(str(topic_dir)))
        landed[table] = spark.read.format("delta").load(catalog.spec(table).location).where(F.col("partition") == -1).count()
    return landed
