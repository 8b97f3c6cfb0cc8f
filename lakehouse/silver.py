"""Silver: typed, validated and deduplicated rows from bronze, and quarantine for the rest.

Pure transforms shared by the streaming query, backfills, the decision path and tests. A row
is quarantined with every reason that applies: structural ones found while parsing and every
value rule of the stream's expectation suite it breaks. Parsing handles any bytes: nothing a
producer sends can fail the batch.

Structural reasons:
- ``invalid_utf8`` (the bytes are kept in bronze), ``payload_too_large`` (over the configured
  size), ``malformed_json`` (not one JSON object; duplicate member names count as malformed);
- ``missing_field:<f>`` (a field with a default in ``FIELD_DEFAULTS`` takes it instead);
  ``mistyped_field:<f>`` when the JSON type is not the declared one: an
  id or any string field must be a JSON string (``12345`` or ``{"a":1}`` is not coerced), an
  amount must be written in ASCII decimal digits (``"1e3"``, ``" 5.00 "``, full-width or Arabic
  digits are refused), numbers must be finite; ``oversized_field:<f>`` over the field limit;
- ``event_time_out_of_range`` / ``timestamp_out_of_range:<f>``: a time outside what pandas and
  Arrow hold (1677-09-22 .. 2262-04-11), so no later step can choke on it;
- ``invalid_card_pan``: the producer's ``card_pan`` was not 12-19 digits (separators aside),
  as bronze's tokenizer marked it (``PAN_REJECTED_MEMBER``; the token is still taken);
- ``late_event`` and ``event_time_in_future`` from the event time against the Kafka timestamp.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (ArrayType, BooleanType, DecimalType, DoubleType, IntegerType, LongType, MapType,
                               StringType, StructField, StructType, TimestampType)

from lakehouse.quality import rule_failures
from lakehouse.schemas.expectations import DEFAULT_MIN_AMOUNT
from lakehouse.schemas.events import EVENT_TIME_FIELD, FIELD_DEFAULTS, INVALID_CARD_PAN, PAN_REJECTED_MEMBER, SILVER_FIELDS
from lakehouse.schemas.tables import QUARANTINE, SCHEMAS

# The instants pandas (datetime64[ns]) can hold; Arrow and Python's datetime hold more.
MIN_TIME = dt.datetime(1677, 9, 22, tzinfo=dt.timezone.utc)
MAX_TIME = dt.datetime(2262, 4, 11, tzinfo=dt.timezone.utc)
DEFAULT_MAX_PAYLOAD_BYTES = 65536
DEFAULT_MAX_FIELD_CHARS = 1024

_INTEGER_TYPES = "^(BIGINT|INT|SMALLINT|TINYINT)$"
_EXACT_TYPES = "^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL.*)$"
_NUMBER_TYPES = "^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL.*|DOUBLE|FLOAT)$"
_ASCII_INTEGER = "^-?[0-9]{1,19}$"
_ASCII_DECIMAL = "^-?[0-9]{1,20}([.][0-9]{1,20})?$"
_ASCII_NUMBER = "^-?[0-9]{1,20}([.][0-9]{1,20})?([eE][-+]?[0-9]{1,3})?$"


def silver_schema(stream: str):
    return SCHEMAS["silver_transactions" if stream == "transactions" else stream]


def _typed(kind: Column, text: Column, data_type, member: Column | None = None) -> tuple[Column, Column]:
    """(typed value, JSON-type-is-acceptable) of one member from its JSON type and its text (a
    map from the member's variant itself: a JSON object whose values are read as text)."""
    if isinstance(data_type, MapType):
        return F.try_variant_get(member, "$", "map<string,string>"), kind.startswith("OBJECT")
    if isinstance(data_type, StringType):
        return text, kind == "STRING"
    if isinstance(data_type, TimestampType):
        return F.try_to_timestamp(text), kind == "STRING"
    if isinstance(data_type, BooleanType):
        ok = (kind == "BOOLEAN") | ((kind == "STRING") & text.isin("true", "false"))
        return text.try_cast(data_type), ok
    if isinstance(data_type, DecimalType):
        ok = (kind.rlike(_EXACT_TYPES) | (kind == "STRING")) & text.rlike(_ASCII_DECIMAL)
        return text.try_cast(data_type), ok
    if isinstance(data_type, (IntegerType, LongType)):
        ok = (kind.rlike(_INTEGER_TYPES) | (kind == "STRING")) & text.rlike(_ASCII_INTEGER)
        return text.try_cast(data_type), ok
    if isinstance(data_type, DoubleType):
        number = text.try_cast(data_type)
        finite = ~F.isnan(number) & (F.abs(number) < F.lit(float("inf")))
        ok = (kind.rlike(_NUMBER_TYPES) | ((kind == "STRING") & text.rlike(_ASCII_NUMBER))) & finite
        return number, ok
    raise TypeError(f"no parse rule for {data_type}")


PARSERS = ("jvm", "expressions")


def _spec_type(data_type) -> str:
    if isinstance(data_type, DecimalType):
        return f"decimal({data_type.precision},{data_type.scale})"
    names = {StringType: "string", TimestampType: "timestamp", BooleanType: "boolean", IntegerType: "int",
             LongType: "bigint", DoubleType: "double", MapType: "map"}
    for cls, name in names.items():
        if isinstance(data_type, cls):
            return name
    raise TypeError(f"no parse rule for {data_type}")


def jvm_parse_spec(stream: str, max_payload_bytes: int, max_field_chars: int, zone: str) -> str:
    """The stream's fields as ``finlake.ParsePayload`` reads them (see its Javadoc): pure."""
    defaults = FIELD_DEFAULTS.get(stream, {})
    lines = [f"{int(max_payload_bytes)}\t{int(max_field_chars)}\t{zone}"]
    for f in SILVER_FIELDS[stream].fields:
        if f.name in defaults and not isinstance(f.dataType, StringType):
            raise TypeError(f"{stream}.{f.name}: only string fields take a default")
        required = not f.nullable and f.name not in defaults
        lines.append("\t".join([f.name, _spec_type(f.dataType), "1" if required else "0",
                                 "1" if f.name == EVENT_TIME_FIELD[stream] else "0", defaults.get(f.name, "")]))
    return "\n".join(lines)


def jvm_parse_type(stream: str) -> StructType:
    """What ``finlake_parse_<stream>`` returns: the typed fields, ``reasons``, ``unknown_fields``."""
    return StructType([StructField(f.name, f.dataType, True) for f in SILVER_FIELDS[stream].fields]
                      + [StructField("reasons", ArrayType(StringType(), False), False),
                         StructField("unknown_fields", ArrayType(StringType(), False), False)])


def _jvm_parse_function(spark, stream: str, max_payload_bytes: int, max_field_chars: int) -> tuple[str, str]:
    """(name, spec) of the stream's JVM parse for these limits and the session's time zone."""
    spec = jvm_parse_spec(stream, max_payload_bytes, max_field_chars, spark.conf.get("spark.sql.session.timeZone"))
    return f"finlake_parse_{stream}_{hashlib.sha256(spec.encode()).hexdigest()[:8]}", spec


def _ensure_registered(spark, stream: str, name: str, spec: str) -> None:
    """Register the function in ``spark`` unless it has it. A streaming query runs its batches
    in a clone of the session taken at its start, and a restarted query in a new clone, so this
    is checked for each DataFrame (one catalog lookup)."""
    if not spark._jsparkSession.catalog().functionExists(name):
        spark.sparkContext._jvm.finlake.ParsePayload.register(spark._jsparkSession, name, spec, jvm_parse_type(stream).json())


def parse_bronze(stream: str, allowed_lateness_s: float, max_clock_skew_s: float,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
                 parser: str = "jvm"):
    """Bronze rows (binary or string payload) -> typed columns of the stream plus ``reasons``
    (structural problems), ``unknown_fields`` and the bronze provenance. A field with a
    structural problem is null in the typed columns. Backfilled rows (partition -1) skip the
    lateness check: their event time is history by design.

    ``parser``: ``jvm`` (default) parses each payload in one pass of ``finlake.ParsePayload``;
    ``expressions`` with Spark SQL expressions (variant parse, then each member's JSON type and
    text). Both give the same rows and reasons: a test parses the hostile corpora both ways."""
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {PARSERS}, not {parser!r}")
    fields = SILVER_FIELDS[stream].fields
    time_field = EVENT_TIME_FIELD[stream]
    defaults = FIELD_DEFAULTS.get(stream, {})
    built: list = []

    def transform(df: DataFrame) -> DataFrame:
        # The expressions name columns only, so they are built once per transform and reused for
        # every DataFrame it is applied to: a streaming job keeps one transform and saves the
        # hundreds of JVM round trips of rebuilding them every micro-batch.
        if parser == "jvm":
            if not built:
                name, spec = _jvm_parse_function(df.sparkSession, stream, max_payload_bytes, max_field_chars)
                built.append((name, spec, *jvm_columns(name)))
            name, spec, parsed, final = built[0]
            _ensure_registered(df.sparkSession, stream, name, spec)
            return df.select("*", parsed).select(*final[0]).withColumn("reasons", final[1])
        if not built:
            built.append(columns())
        first, second, final = built[0]
        return df.select("*", *first).select("*", *second).select(*final[0]).withColumn("reasons", final[1])

    tokenized = any(f.name == "card_token" for f in fields)

    def provenance(reasons: Column, unknown: Column):
        if tokenized:   # the tokenizer's mark is a reason, not an unknown field
            reasons = F.concat(reasons, F.array(F.when(F.array_contains(unknown, PAN_REJECTED_MEMBER), F.lit(INVALID_CARD_PAN))))
            unknown = F.array_remove(unknown, PAN_REJECTED_MEMBER)
        out = [
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("kafka_timestamp"),
            F.col("payload"), F.col("topic"),
            reasons.alias("reasons"),
            unknown.alias("unknown_fields"),
        ]
        lag = F.col("kafka_timestamp").cast("double") - F.col(time_field).cast("double")
        late = F.when((F.col("kafka_partition") >= 0) & (lag > allowed_lateness_s), F.lit("late_event"))
        future = F.when(-lag > max_clock_skew_s, F.lit("event_time_in_future"))
        return out, F.filter(F.concat("reasons", F.array(late, future)), lambda x: x.isNotNull())

    def jvm_columns(name: str):
        parsed = F.call_function(name, F.col("payload").cast("binary")).alias("_p")
        out, reasons = provenance(F.col("_p.reasons"), F.col("_p.unknown_fields"))
        return parsed, ([*[F.col(f"_p.{f.name}").alias(f.name) for f in fields], *out], reasons)

    def columns():
        text = F.col("payload").cast("string")
        utf8 = F.is_valid_utf8(text)
        too_large = F.octet_length(F.col("payload")) > max_payload_bytes
        members = F.try_variant_get(F.try_parse_json(F.when(utf8 & ~too_large, text)), "$", "map<string,variant>")
        first = [members.alias("_m"), utf8.alias("_utf8"), too_large.alias("_large")]
        # Each member's JSON type and text once, so the checks below read columns, not variants.
        second = [*[F.schema_of_variant(F.col("_m").getItem(f.name)).alias(f"_k_{f.name}") for f in fields],
                  *[F.try_variant_get(F.col("_m").getItem(f.name), "$", "string").alias(f"_s_{f.name}") for f in fields]]
        problems = [
            F.when(F.col("payload").isNull() | ~F.col("_utf8"), F.lit("invalid_utf8")),
            F.when(F.col("_utf8") & F.col("_large"), F.lit("payload_too_large")),
            F.when(F.col("_utf8") & ~F.col("_large") & F.col("_m").isNull(), F.lit("malformed_json")),
        ]
        typed = []
        for f in fields:
            kind, text_value = F.col(f"_k_{f.name}"), F.col(f"_s_{f.name}")
            present = kind.isNotNull() & (kind != "VOID")
            cast, ok = _typed(kind, text_value, f.dataType, F.col("_m").getItem(f.name))
            bad_type = present & ~F.coalesce(ok & cast.isNotNull(), F.lit(False))
            problems.append(F.when(bad_type, F.lit(f"mistyped_field:{f.name}")))
            if not f.nullable and f.name not in defaults:
                problems.append(F.when(F.col("_m").isNotNull() & ~present, F.lit(f"missing_field:{f.name}")))
            keep = present & ~bad_type
            if isinstance(f.dataType, StringType):
                big = keep & (F.length(cast) > max_field_chars)
                problems.append(F.when(big, F.lit(f"oversized_field:{f.name}")))
                keep = keep & ~big
            if isinstance(f.dataType, TimestampType):
                outside = keep & ((cast < F.lit(MIN_TIME)) | (cast >= F.lit(MAX_TIME)))
                reason = "event_time_out_of_range" if f.name == time_field else f"timestamp_out_of_range:{f.name}"
                problems.append(F.when(outside, F.lit(reason)))
                keep = keep & ~outside
            value = F.when(keep, cast).cast(f.dataType)
            if f.name in defaults:   # left out or null: the documented default (a mistyped value stays null)
                value = F.when(F.col("_m").isNotNull() & ~present, F.lit(defaults[f.name])).otherwise(value)
            typed.append(value.alias(f.name))
        known = F.array(*[F.lit(f.name) for f in fields])
        out, reasons = provenance(F.filter(F.array(*problems), lambda x: x.isNotNull()),
                                  F.coalesce(F.array_except(F.map_keys("_m"), known), F.array().cast("array<string>")))
        return first, second, ([*typed, *out], reasons)

    return transform


def add_rule_failures(stream: str, min_amount: float = DEFAULT_MIN_AMOUNT):
    """Append the names of every expectation-suite rule the row breaks to ``reasons``."""

    built: list = []

    def transform(df: DataFrame) -> DataFrame:
        if not built:   # built once, reused for every DataFrame (see parse_bronze)
            built.append(F.concat("reasons", rule_failures(stream, min_amount)))
        return df.withColumn("reasons", built[0])

    return transform


def content_hash(stream: str) -> Column:
    """A hash of everything the event says (its typed fields): equal events, equal hash."""
    return F.xxhash64(*[F.array_sort(F.map_entries(f.name)) if isinstance(f.dataType, MapType) else F.col(f.name)
                        for f in SILVER_FIELDS[stream].fields])


def near_in_time(time_column: str, first, last, horizon_s: float) -> Column:
    """Rows whose ``time_column`` lies within ``horizon_s`` seconds of [``first``, ``last``]:
    the part of silver deduplication searches (``pipeline.dedup_horizon_s``)."""
    near = dt.timedelta(seconds=horizon_s)
    return (F.col(time_column) >= F.lit(first - near)) & (F.col(time_column) <= F.lit(last + near))


def classify_copies(stream: str, existing: DataFrame | None = None):
    """Mark each valid row as the first copy of its ``event_id`` (``copy`` null), a
    ``duplicate`` (same content as the first copy: dropped and counted) or a
    ``conflicting_duplicate`` (same id, different content: quarantined). The first copy is the
    earliest by Kafka position; ``existing`` (``event_id``, ``content_hash`` of rows already in
    silver) makes every copy of an id silver holds a later one."""

    def transform(df: DataFrame) -> DataFrame:
        w = Window.partitionBy("event_id").orderBy("kafka_timestamp", "kafka_partition", "kafka_offset")
        ranked = df.withColumn("_h", content_hash(stream)).withColumn("_n", F.row_number().over(w)) \
                   .withColumn("_h0", F.first("_h").over(w))
        if existing is not None:
            ranked = (ranked.join(existing.select("event_id", F.col("content_hash").alias("_hs")), "event_id", "left")
                      .withColumn("_h0", F.coalesce("_hs", "_h0"))
                      .withColumn("_n", F.when(F.col("_hs").isNotNull(), F.col("_n") + 1).otherwise(F.col("_n"))).drop("_hs"))
        copy = (F.when(F.col("_n") == 1, F.lit(None).cast("string"))
                .when(F.col("_h") == F.col("_h0"), F.lit("duplicate")).otherwise(F.lit("conflicting_duplicate")))
        return ranked.withColumn("copy", copy).drop("_h", "_n", "_h0")

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
        # Bronze keeps the exact bytes; quarantine's payload is text a person and any Delta
        # reader can read (undecodable bytes shown as U+FFFD, the row marked invalid_utf8).
        payload = F.make_valid_utf8(F.col("payload").cast("string"))
        out = df.select(
            F.lit(source_table).alias("source_table"), F.lit(batch_id).cast("long").alias("batch_id"),
            reasons.alias("reasons"), payload.alias("payload"), "topic", F.col("kafka_partition").alias("partition"),
            F.col("kafka_offset").alias("offset"), F.current_timestamp().alias("quarantined_at"))
        return out.select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE.fields])

    return transform
