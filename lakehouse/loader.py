"""Outside history into finlake: files shaped by another source -> finlake's messages.

A mapping (YAML, see ``conf/mappings/``) says which source column, or Spark SQL expression,
fills each message field of one stream, how source values translate (channel names, say), the
constant for a field the source lacks, which other source columns to keep (silver's ``extras``
map) and, for transactions, where the fraud label and its time come from. The messages go to
Kafka with their event time as the record timestamp (``load_to_kafka``, after raising topic
retention so the broker keeps the replay), or straight into bronze through the backfill's
transforms (``load_to_bronze``). Either way they meet exactly the parsing, rules, quarantine and
features that live messages meet.

Card columns: a value of 13-19 digits (spaces or dashes between groups allowed) is taken as the
card number (bronze tokenizes it); any other card or account id becomes a stable 16-digit
surrogate first, so the token still identifies the card and ``card_last4`` keeps its format.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.backfill import append_landing
from lakehouse.kafka.clients import client_config, ensure_topics, replay_retention, topic_name
from lakehouse.schemas.events import EVENT_TIME_FIELD, FIELD_DEFAULTS, MESSAGE_KEY, MESSAGE_SCHEMAS

FORMATS = ("csv", "parquet", "json")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class MappingError(ValueError):
    """A mapping that cannot describe its source: one line naming what is wrong."""


def duration_seconds(text: str | int | float) -> float:
    """``"7d"``, ``"36h"``, ``"90m"``, ``"30s"`` or a number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise MappingError(f"'{text}' is not a duration (e.g. 7d, 36h, 90m, 30s)")
    return float(m.group(1)) * _SECONDS[m.group(2)]


@dataclass(frozen=True)
class LabelMapping:
    """Where a transaction's fraud label comes from (a column of the same rows) and when it
    became known: a ``labelled_at`` column, or the event time plus ``delay``."""

    is_fraud: str
    labelled_at: str | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class SourceMapping:
    """How one source's rows become one stream's messages."""

    stream: str
    format: str = "csv"
    options: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    extras: tuple[str, ...] = ()
    time_format: str | None = None
    labels: LabelMapping | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str = "mapping") -> "SourceMapping":
        known = {"stream", "format", "options", "columns", "values", "defaults", "extras", "time_format", "labels",
                 "description"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MappingError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
        stream = d.get("stream")
        if stream not in MESSAGE_SCHEMAS:
            raise MappingError(f"{where}: stream must be one of {', '.join(MESSAGE_SCHEMAS)}, got '{stream}'")
        fmt = d.get("format", "csv")
        if fmt not in FORMATS:
            raise MappingError(f"{where}: format must be one of {', '.join(FORMATS)}, got '{fmt}'")
        fields = {f.name for f in MESSAGE_SCHEMAS[stream].fields} - {"extras"}
        for key in ("columns", "values", "defaults"):
            bad = sorted(set(d.get(key) or {}) - fields)
            if bad:
                raise MappingError(f"{where}: {key} names '{bad[0]}', which is no field of {stream} "
                                   f"(fields: {', '.join(sorted(fields))})")
        labels = None
        if d.get("labels"):
            if stream != "transactions":
                raise MappingError(f"{where}: labels belong to a transactions mapping, not {stream}")
            lab = d["labels"]
            if not lab.get("is_fraud"):
                raise MappingError(f"{where}: labels needs is_fraud (the source column with the 0/1 label)")
            if bool(lab.get("labelled_at")) == ("delay" in lab):
                raise MappingError(f"{where}: labels needs exactly one of labelled_at (a column) or delay (e.g. 7d)")
            labels = LabelMapping(str(lab["is_fraud"]), lab.get("labelled_at"), duration_seconds(lab.get("delay", 0)))
        m = cls(stream, fmt, {str(k): str(v) for k, v in (d.get("options") or {}).items()},
                {k: str(v) for k, v in (d.get("columns") or {}).items()},
                {k: {str(a): str(b) for a, b in v.items()} for k, v in (d.get("values") or {}).items()},
                dict(d.get("defaults") or {}), tuple(str(c) for c in d.get("extras") or ()), d.get("time_format"), labels)
        missing = m.unfilled()
        if missing:
            raise MappingError(f"{where}: required {stream} fields with no column and no default: {', '.join(missing)}")
        return m

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SourceMapping":
        p = Path(path)
        if not p.is_file():
            raise MappingError(f"mapping file {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise MappingError(f"{p}: a mapping is a YAML object")
        return cls.from_dict(data, str(p))

    def unfilled(self) -> list[str]:
        """Required message fields that neither a column, a default of the mapping, nor a
        documented field default fills."""
        built_in = FIELD_DEFAULTS.get(self.stream, {})
        return [f.name for f in MESSAGE_SCHEMAS[self.stream].fields
                if not f.nullable and f.name not in self.columns and f.name not in self.defaults and f.name not in built_in]


def read_source(spark: SparkSession, mapping: SourceMapping, paths: list[str]) -> DataFrame:
    """The source files as one DataFrame (CSV read as text; the mapping casts)."""
    reader = spark.read.options(**{**({"header": "true"} if mapping.format == "csv" else {}), **mapping.options})
    return getattr(reader, mapping.format)(*paths)


def _source(df: DataFrame, ref: str) -> Column:
    """A source column by name (any characters), else a Spark SQL expression over the columns."""
    return F.col(f"`{ref}`") if ref in df.columns else F.expr(ref)


def _timestamp(c: Column, time_format: str | None) -> Column:
    return F.to_timestamp(c.cast("string"), time_format) if time_format else c.cast("timestamp")


def _card_number(c: Column) -> Column:
    text = F.trim(c.cast("string"))
    digits = F.regexp_replace(text, "[ -]", "")          # 4111 1111 1111 1111, 4111-1111-...
    surrogate = F.lpad(F.pmod(F.xxhash64(text), F.lit(10 ** 16)).cast("string"), 16, "0")
    return F.when(digits.rlike("^[0-9]{13,19}$"), digits).when(text.isNotNull(), surrogate)


def _translated(c: Column, table: dict[str, str]) -> Column:
    """A source value through the mapping's value table; a value it does not name passes as it
    is (and meets the stream's rules, which quarantine it with its reason)."""
    if not table:
        return c
    lookup = F.create_map(*[F.lit(x) for kv in table.items() for x in kv])
    return F.coalesce(lookup[c.cast("string")], c.cast("string"))


def to_messages(mapping: SourceMapping):
    """Source rows -> ``key``, ``value`` (the message as JSON; null fields left out), ``event_time``.

    Fields are cast to the message schema's types; extras are kept as text."""
    schema = MESSAGE_SCHEMAS[mapping.stream]
    time_field = EVENT_TIME_FIELD[mapping.stream]

    def transform(df: DataFrame) -> DataFrame:
        missing = [c for c in mapping.extras if c not in df.columns]
        if missing:
            raise MappingError(f"extras name source columns that do not exist: {', '.join(missing)} "
                               f"(columns: {', '.join(df.columns)})")
        cols = []
        for f in schema.fields:
            if f.name == "extras":
                continue
            if f.name in mapping.columns:
                c = _source(df, mapping.columns[f.name])
            elif f.name in mapping.defaults:
                c = F.lit(mapping.defaults[f.name])
            else:
                continue            # optional, or silver's documented default
            c = _translated(c, mapping.values.get(f.name, {}))
            if f.name == time_field:
                c = _timestamp(c, mapping.time_format)
            elif f.name == "card_pan":
                c = _card_number(c)
            else:
                c = c.cast(f.dataType)
            cols.append(c.alias(f.name))
        if mapping.extras:
            kept = F.create_map(*[x for c in mapping.extras for x in (F.lit(c), F.col(f"`{c}`").cast("string"))])
            cols.append(F.map_filter(kept, lambda _k, v: v.isNotNull()).alias("extras"))
        msg = df.select(*cols)
        return msg.select(F.col(MESSAGE_KEY[mapping.stream]).cast("string").alias("key"),
                          F.to_json(F.struct(*msg.columns)).alias("value"), F.col(time_field).alias("event_time"))

    return transform


def to_label_messages(mapping: SourceMapping, loaded_at: dt.datetime):
    """Source transaction rows -> their ``tx_labels`` messages (rows with a label only). A
    label is never dated after ``loaded_at``: one that would be is not known yet in the world
    being replayed, so it is given the load time."""
    lab = mapping.labels
    tx_time = EVENT_TIME_FIELD["transactions"]

    def transform(df: DataFrame) -> DataFrame:
        event_id = _source(df, mapping.columns["event_id"]).cast("string")
        label = _source(df, lab.is_fraud)
        is_fraud = F.when(label.cast("string").isin("1", "true", "True", "TRUE", "1.0"), True) \
            .when(label.cast("string").isin("0", "false", "False", "FALSE", "0.0"), False)
        if lab.labelled_at:
            at = _timestamp(_source(df, lab.labelled_at), mapping.time_format)
        else:
            at = _timestamp(_source(df, mapping.columns[tx_time]), mapping.time_format) + F.make_dt_interval(secs=F.lit(lab.delay_s))
        at = F.least(at, F.lit(loaded_at))
        msg = df.select(event_id.alias("event_id"), is_fraud.alias("is_fraud"), at.alias("labelled_at")).where(F.col("is_fraud").isNotNull())
        return msg.select(F.col("event_id").alias("key"), F.to_json(F.struct("event_id", "is_fraud", "labelled_at")).alias("value"),
                          F.col("labelled_at").alias("event_time"))

    return transform


def messages(spark: SparkSession, mapping: SourceMapping, paths: list[str],
             loaded_at: dt.datetime | None = None) -> dict[str, DataFrame]:
    """Topic -> its messages from the source files (``transactions`` and, with a label
    mapping, ``tx_labels``)."""
    source = read_source(spark, mapping, paths)
    out = {mapping.stream: source.transform(to_messages(mapping))}
    if mapping.labels is not None:
        at = loaded_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        out["tx_labels"] = source.transform(to_label_messages(mapping, at))
    return out


def load_to_kafka(cfg, topics: dict[str, DataFrame], kafka_time: str = "event") -> dict:
    """Send every message to its topic (record timestamp = the event time with ``kafka_time``
    ``event``, the send time with ``now``), after raising topic retention for the oldest one.
    Returns per-topic counts, the retention changes and failures."""
    ensure_topics(cfg)
    retention = {}
    if kafka_time == "event":
        oldest = [df.select(F.min("event_time").cast("double")).first()[0] for df in topics.values()]
        oldest = [o for o in oldest if o is not None]
        if oldest:
            retention = replay_retention(cfg, list(topics), min(oldest))
    producer = Producer(client_config(cfg, **{"linger.ms": "20", "compression.type": "lz4", "enable.idempotence": "true"}))
    failed: list[str] = []

    def report(err, _msg):
        if err is not None:
            failed.append(str(err))

    sent = {}
    for topic, df in topics.items():
        name, n = topic_name(cfg, topic), 0
        rows = df.select("key", "value", (F.col("event_time").cast("double") * 1000).cast("long").alias("ts"))
        for row in rows.toLocalIterator():
            kwargs = {"timestamp": int(row.ts)} if kafka_time == "event" and row.ts is not None else {}
            while True:
                try:
                    producer.produce(name, value=row.value.encode(), key=None if row.key is None else row.key.encode(),
                                     on_delivery=report, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.5)
            n += 1
            if n % 10000 == 0:
                producer.poll(0)
        sent[topic] = n
    remaining = producer.flush(120)
    if remaining:
        failed.append(f"{remaining} messages not delivered within 120 s")
    return {"per_topic": sent, "retention_ms": retention, "failed": len(failed), "errors": failed[:3]}


def load_to_bronze(spark: SparkSession, cfg, topics: dict[str, DataFrame]) -> dict:
    """Append the messages to the bronze tables directly, through the backfill's transforms
    (the PAN tokenized on the way, no lateness check). Returns rows per topic."""
    landed = {}
    for topic, df in topics.items():
        landing = df.select("key", "value", F.col("event_time").cast("double").alias("timestamp"))
        landed[topic] = append_landing(spark, cfg, topic, landing)
    return landed
