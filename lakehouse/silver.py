"""Silver: typed, validated and deduplicated rows from bronze, and quarantine for the rest.

Pure transforms shared by the streaming query, backfills and tests. A row is quarantined with
every reason that applies: structural ones found while parsing (malformed JSON, a missing or
mistyped field, a late or future event) and every value rule of the stream's expectation
suite it breaks.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, TimestampType

from lakehouse.quality import rule_failures
from lakehouse.schemas.events import EVENT_TIME_FIELD, SILVER_FIELDS
from lakehouse.schemas.tables import QUARANTINE, SCHEMAS

_RAW = MapType(StringType(), StringType())


def silver_schema(stream: str):
    return SCHEMAS["silver_transactions" if stream == "transactions" else stream]


def parse_bronze(stream: str, allowed_lateness_s: float, max_clock_skew_s: float):
    """Bronze rows -> typed columns of the stream plus ``reasons`` (structural problems),
    ``unknown_fields`` and the bronze provenance. Backfilled rows (partition -1) skip the
    lateness check: their event time is history by design."""
    fields = SILVER_FIELDS[stream].fields
    time_field = EVENT_TIME_FIELD[stream]

    def transform(df: DataFrame) -> DataFrame:
        raw = F.from_json(F.col("payload"), _RAW)
        parsed = df.withColumn("_raw", raw)
        typed, problems = [], [F.when(F.col("_raw").isNull(), F.lit("malformed_json"))]
        for f in fields:
            value = F.col("_raw").getItem(f.name)
            if isinstance(f.dataType, TimestampType):
                cast = F.try_to_timestamp(value)
            else:
                cast = value.try_cast(f.dataType)
            typed.append(cast.alias(f.name))
            if not f.nullable:
                problems.append(F.when(F.col("_raw").isNotNull() & value.isNull(), F.lit(f"missing_field:{f.name}")))
            problems.append(F.when(value.isNotNull() & cast.isNull(), F.lit(f"mistyped_field:{f.name}")))
        known = F.array(*[F.lit(f.name) for f in fields])
        out = parsed.select(
            *typed,
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("kafka_timestamp"),
            F.col("payload"), F.col("topic"),
            F.filter(F.array(*problems), lambda x: x.isNotNull()).alias("reasons"),
            F.coalesce(F.array_except(F.map_keys("_raw"), known), F.array().cast("array<string>")).alias("unknown_fields"),
        )
        lag = F.col("kafka_timestamp").cast("double") - F.col(time_field).cast("double")
        late = F.when((F.col("kafka_partition") >= 0) & (lag > allowed_lateness_s), F.lit("late_event"))
        future = F.when(-lag > max_clock_skew_s, F.lit("event_time_in_future"))
        return out.withColumn("reasons", F.filter(F.concat("reasons", F.array(late, future)), lambda x: x.isNotNull()))

    return transform


def add_rule_failures(stream: str):
    """Append the names of every expectation-suite rule the row breaks to ``reasons``."""

    def transform(df: DataFrame) -> DataFrame:
        return df.withColumn("reasons", F.concat("reasons", rule_failures(stream)))

    return transform


def first_of_each_event(df: DataFrame) -> DataFrame:
    """One row per ``event_id``: the earliest by Kafka position (later copies are duplicates)."""
    w = Window.partitionBy("event_id").orderBy("kafka_timestamp", "kafka_partition", "kafka_offset")
    return df.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")


def not_in(existing_ids: DataFrame):
    """Rows whose ``event_id`` silver does not hold yet."""

    def transform(df: DataFrame) -> DataFrame:
        return df.join(existing_ids.select("event_id").distinct(), "event_id", "left_anti")

    return transform


def to_silver(stream: str, silver_time=None):
    """The silver table's columns, in its order."""
    schema = silver_schema(stream)

    def transform(df: DataFrame) -> DataFrame:
        stamped = df.withColumn("silver_time", silver_time if silver_time is not None else F.current_timestamp())
        return stamped.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])

    return transform


def to_quarantine(source_table: str, batch_id: int, extra_reason: str | None = None):
    """Failing rows -> ``quarantine.*`` rows with their bronze payload and every reason."""

    def transform(df: DataFrame) -> DataFrame:
        reasons = F.col("reasons") if extra_reason is None else F.concat("reasons", F.array(F.lit(extra_reason)))
        out = df.select(
            F.lit(source_table).alias("source_table"), F.lit(batch_id).cast("long").alias("batch_id"),
            reasons.alias("reasons"), "payload", "topic", F.col("kafka_partition").alias("partition"),
            F.col("kafka_offset").alias("offset"), F.current_timestamp().alias("quarantined_at"))
        return out.select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE.fields])

    return transform
