"""Bronze: every Kafka record exactly as received, plus where it came from, with card numbers
tokenized in place.

Key and value stay binary, so a replay is byte-faithful except for the tokens: a payload that
is not UTF-8 is kept as it came (silver quarantines it as ``invalid_utf8``). Tokenizing runs in
the JVM (``finlake_tokenize_payload`` / ``finlake_tokenize_key``, see ``lakehouse/jvm``):
linear in the input with bounded stack, and the HMAC key is set in the JVM, never in the plan.

Pure transforms (DataFrame -> DataFrame) shared by the streaming job, backfills and tests.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.jvm import set_pan_key


def kafka_to_bronze(df: DataFrame) -> DataFrame:
    """Kafka source rows -> the bronze columns (key and payload still as received)."""
    now = F.current_timestamp()
    return df.select(
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("payload"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        now.alias("ingest_time"),
        F.to_date(now).alias("ingest_date"),
    )


def tokenize_pan(key: bytes):
    """Replace the ``card_pan`` member by ``card_token`` (keyed HMAC-SHA256 of its digits) and
    ``card_last4``, and every other Luhn-valid 13-19 digit run anywhere in the payload or the
    Kafka key (any member name, nested, escaped, spaced or the whole message) by its token.
    Other bytes are untouched."""

    def transform(df: DataFrame) -> DataFrame:
        set_pan_key(df.sparkSession, key)
        return (df.withColumn("payload", F.call_function("finlake_tokenize_payload", F.col("payload")))
                .withColumn("key", F.call_function("finlake_tokenize_key", F.col("key"))))

    return transform
