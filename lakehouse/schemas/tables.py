"""Schemas of the Delta tables, by the schema name that ``conf/base/catalog.yaml`` gives."""
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.schemas import events

# Bronze keeps every record as received, key and value as bytes (card numbers tokenized in place
# before the write), plus where it came from.
BRONZE = StructType([
    StructField("key", BinaryType(), True),
    StructField("payload", BinaryType(), True),
    StructField("topic", StringType(), False),
    StructField("partition", IntegerType(), False),
    StructField("offset", LongType(), False),
    StructField("kafka_timestamp", TimestampType(), False),
    StructField("ingest_time", TimestampType(), False),
    StructField("ingest_date", DateType(), False),
])

QUARANTINE = StructType([
    StructField("source_table", StringType(), False),
    StructField("batch_id", LongType(), False),
    StructField("reasons", ArrayType(StringType(), True), False),
    StructField("payload", StringType(), True),
    StructField("topic", StringType(), True),
    StructField("partition", IntegerType(), True),
    StructField("offset", LongType(), True),
    StructField("quarantined_at", TimestampType(), False),
])

DQ_RESULTS = StructType([
    StructField("run_time", TimestampType(), False),
    StructField("table", StringType(), False),
    StructField("batch_id", LongType(), False),
    StructField("suite", StringType(), False),
    StructField("expectation", StringType(), False),
    StructField("success", StringType(), False),
    StructField("unexpected_count", LongType(), True),
    StructField("element_count", LongType(), True),
    StructField("details", MapType(StringType(), StringType()), True),
])

STREAM_METRICS = StructType([
    StructField("query_name", StringType(), False),
    StructField("run_id", StringType(), False),
    StructField("batch_id", LongType(), False),
    StructField("timestamp", TimestampType(), False),
    StructField("num_input_rows", LongType(), True),
    StructField("input_rows_per_second", DoubleType(), True),
    StructField("processed_rows_per_second", DoubleType(), True),
    StructField("batch_duration_ms", LongType(), True),
    StructField("rows_dropped_by_watermark", LongType(), True),
    StructField("metrics", MapType(StringType(), DoubleType()), True),
])

# One row per model version, monitoring run and check (jobs/monitor.py).
MODEL_MONITOR = StructType([
    StructField("run_time", TimestampType(), False),
    StructField("use_case", StringType(), False),
    StructField("model_name", StringType(), False),
    StructField("model_version", StringType(), False),
    StructField("reference_start", TimestampType(), True),   # the champion's training period
    StructField("reference_end", TimestampType(), True),
    StructField("window_start", TimestampType(), True),      # the recent window judged
    StructField("window_end", TimestampType(), True),
    StructField("check", StringType(), False),               # feature_psi, feature_ks, prediction_psi, precision, ..., retrain, promotion
    StructField("feature", StringType(), True),
    StructField("value", DoubleType(), True),
    StructField("threshold", DoubleType(), True),
    StructField("status", StringType(), False),              # ok | drifting | degraded | skipped; retrain: promoted | kept | skipped
    StructField("verdict", StringType(), False),             # the model's: ok | drifting | degraded (unchecked: retrained unasked)
    StructField("rows", LongType(), True),
    StructField("details", MapType(StringType(), StringType()), True),
])

# Ground truth from the generators: kept apart from every feature table.
TRUTH_FRAUD = StructType([
    StructField("event_id", StringType(), False),
    StructField("customer_id", StringType(), False),
    StructField("scenario", StringType(), False),
    StructField("fraud_probability", DoubleType(), False),
    StructField("is_fraud", BooleanType(), False),
    StructField("run_id", StringType(), False),
])

TRUTH_TRADING = StructType([
    StructField("event_id", StringType(), False),
    StructField("symbol", StringType(), False),
    StructField("p_down", DoubleType(), False),
    StructField("p_flat", DoubleType(), False),
    StructField("p_up", DoubleType(), False),
    StructField("label", StringType(), False),
    StructField("next_return", DoubleType(), False),
    StructField("run_id", StringType(), False),
])

TRUTH_LOAN_PD = StructType([
    StructField("event_id", StringType(), False),
    StructField("customer_id", StringType(), False),
    StructField("true_pd", DoubleType(), False),
    StructField("defaulted", BooleanType(), False),
    StructField("run_id", StringType(), False),
])

# Where each silver row came from, and when it became readable in silver.
def _scores(keep: list[StructField], outputs: list[StructField]) -> StructType:
    """A score table: the event's id and time, the use case's kept columns, where the row came
    from (``silver_time`` null for a row the decision path decided), the model's outputs, the
    version, when it was scored and (decision path) the Kafka -> decision latency."""
    fields = [StructField("event_id", StringType()), StructField("event_time", TimestampType()), *keep,
              StructField("kafka_timestamp", TimestampType()), StructField("silver_time", TimestampType()), *outputs,
              StructField("model_name", StringType()), StructField("model_version", StringType()),
              StructField("scored_at", TimestampType()), StructField("decision_latency_ms", DoubleType())]
    return StructType([StructField(f.name, f.dataType, True) for f in fields])


# The score tables, written by the lakehouse scorer (ml/scoring.py) and by the decision paths'
# landing (serving/decision.py) alike. Kept columns are typed as the use case's gold view holds
# them; top_features is the alert's top contributions as JSON text.
FRAUD_SCORES = _scores(
    [StructField("card_token", StringType()), StructField("customer_id", StringType()), StructField("amount", events.AMOUNT)],
    [StructField("score", DoubleType()), StructField("decision", StringType()), StructField("threshold", DoubleType()),
     StructField("top_features", StringType())])
TRADING_SIGNALS = _scores(
    [StructField("symbol", StringType())],
    [*(StructField(f"p_{c}", DoubleType()) for c in events.TRADING_CLASSES), StructField("signal", StringType())])
LOAN_PD_SCORES = _scores(
    [StructField("customer_id", StringType()), StructField("loan_amount", DoubleType())],
    [StructField("pd", DoubleType())])


PROVENANCE = [
    StructField("kafka_partition", IntegerType(), False),
    StructField("kafka_offset", LongType(), False),
    StructField("kafka_timestamp", TimestampType(), False),
    StructField("silver_time", TimestampType(), False),
]


def with_provenance(schema: StructType) -> StructType:
    return StructType(list(schema.fields) + PROVENANCE)


SCHEMAS: dict[str, StructType] = {
    "truth_fraud": TRUTH_FRAUD,
    "truth_trading": TRUTH_TRADING,
    "truth_loan_pd": TRUTH_LOAN_PD,
    "bronze": BRONZE,
    "quarantine": QUARANTINE,
    "dq_results": DQ_RESULTS,
    "stream_metrics": STREAM_METRICS,
    "model_monitor": MODEL_MONITOR,
    "fraud_scores": FRAUD_SCORES,
    "trading_signals": TRADING_SIGNALS,
    "loan_pd_scores": LOAN_PD_SCORES,
    "silver_transactions": with_provenance(events.SILVER_TRANSACTIONS),
    "tx_labels": with_provenance(events.TX_LABEL_MESSAGE),
    "market_ticks": with_provenance(events.MARKET_TICK_MESSAGE),
    "user_events": with_provenance(events.USER_EVENT_MESSAGE),
    "bureau_updates": with_provenance(events.BUREAU_UPDATE_MESSAGE),
    "loan_applications": with_provenance(events.LOAN_APPLICATION_MESSAGE),
}
