"""Bronze: every Kafka record as received, plus where it came from, with the PAN tokenized.

Pure transforms (DataFrame -> DataFrame) shared by the streaming job, backfills and tests.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.security import hmac_sha256_col

# A "card_pan" member whose value is a string (closed, or cut off by the end of a truncated
# payload), a number or null.
_PAN_MEMBER = r'"card_pan"\s*:\s*("(?:[^"\\]|\\.)*(?:"|$)|-?[0-9][0-9.eE+-]*|null)'
# A Kafka key that is a bare card number (12-19 digits, spaces or dashes allowed).
_PAN_LIKE = r"^[0-9][0-9 -]{10,21}[0-9]$"


def _digits(col: Column) -> Column:
    return F.regexp_replace(col, "[^0-9]", "")


def kafka_to_bronze(df: DataFrame) -> DataFrame:
    """Kafka source rows -> the bronze columns (payload still as received)."""
    now = F.current_timestamp()
    return df.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("payload"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        now.alias("ingest_time"),
        F.to_date(now).alias("ingest_date"),
    )


def tokenize_pan(key: bytes):
    """Replace ``card_pan`` in the payload by ``card_token`` (keyed HMAC-SHA256 of its digits)
    and ``card_last4``, and a PAN-like Kafka key by its token. Other members are untouched."""

    def transform(df: DataFrame) -> DataFrame:
        # Read the member with a regex, not a JSON parser, so a PAN inside malformed JSON is
        # found and replaced too.
        pan = _digits(F.regexp_extract("payload", _PAN_MEMBER, 1))
        token = hmac_sha256_col(key, pan)
        member = F.concat(F.lit('"card_token":"'), token, F.lit('","card_last4":"'), F.substring(pan, -4, 4), F.lit('"'))
        payload = F.when(F.length(pan) > 0, F.regexp_replace("payload", F.lit(_PAN_MEMBER), member)).otherwise(
            F.regexp_replace("payload", F.lit(_PAN_MEMBER), F.lit('"card_token":null,"card_last4":null'))
        )
        key_col = F.when(F.col("key").rlike(_PAN_LIKE), hmac_sha256_col(key, _digits(F.col("key")))).otherwise(F.col("key"))
        return df.withColumn("payload", payload).withColumn("key", key_col)

    return transform
