"""Message schemas of the Kafka topics (what producers send) and the typed silver tables.

Read with these explicit schemas, never by inference. A transaction message carries the clear
PAN; nothing downstream of the bronze tokenizer does: silver has ``card_token`` and
``card_last4`` in its place.
"""
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

AMOUNT = DecimalType(18, 2)
# The trading signal's classes, in the model's class order (its score table's p_<class> columns).
TRADING_CLASSES = ("down", "flat", "up")

# Fields a source maps that finlake has no column for: kept, as text, in every silver table's
# ``extras`` map (a JSON object of strings in the message), never silently dropped.
EXTRAS = StructField("extras", MapType(StringType(), StringType()), True)

TRANSACTION_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_time", TimestampType(), False),
    StructField("card_pan", StringType(), False),
    StructField("customer_id", StringType(), False),
    StructField("merchant_id", StringType(), False),
    StructField("merchant_country", StringType(), False),   # default ZZ (FIELD_DEFAULTS)
    StructField("mcc", StringType(), False),                # default 0000
    StructField("amount", AMOUNT, False),
    StructField("currency", StringType(), False),           # default XXX
    StructField("channel", StringType(), False),
    StructField("terminal_id", StringType(), True),
    StructField("lat", DoubleType(), True),
    StructField("lon", DoubleType(), True),
    StructField("device_id", StringType(), True),
    EXTRAS,
])

TX_LABEL_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("is_fraud", BooleanType(), False),
    StructField("labelled_at", TimestampType(), False),
    EXTRAS,
])

MARKET_TICK_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_time", TimestampType(), False),
    StructField("symbol", StringType(), False),
    StructField("price", DoubleType(), False),
    StructField("size", LongType(), False),
    StructField("bid", DoubleType(), False),
    StructField("ask", DoubleType(), False),
    StructField("bid_size", LongType(), False),
    StructField("ask_size", LongType(), False),
    StructField("venue", StringType(), False),
    EXTRAS,
])

USER_EVENT_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_time", TimestampType(), False),
    StructField("customer_id", StringType(), False),
    StructField("event_type", StringType(), False),
    StructField("device_id", StringType(), True),
    StructField("ip_country", StringType(), True),
    StructField("session_id", StringType(), True),
    EXTRAS,
])

BUREAU_UPDATE_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_time", TimestampType(), False),
    StructField("customer_id", StringType(), False),
    StructField("credit_score", IntegerType(), False),
    StructField("utilisation", DoubleType(), False),
    StructField("delinquencies", IntegerType(), False),
    StructField("inquiries_6m", IntegerType(), False),
    StructField("annual_income", AMOUNT, False),
    StructField("debt_to_income", DoubleType(), False),
    EXTRAS,
])

LOAN_APPLICATION_MESSAGE = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_time", TimestampType(), False),
    StructField("customer_id", StringType(), False),
    StructField("loan_amount", AMOUNT, False),
    StructField("term_months", IntegerType(), False),
    StructField("purpose", StringType(), False),
    EXTRAS,
])

# Silver transactions: the message with the PAN replaced by its keyed token and last four.
SILVER_TRANSACTIONS = StructType(
    [f for f in TRANSACTION_MESSAGE.fields if f.name != "card_pan"][:2]
    + [StructField("card_token", StringType(), False), StructField("card_last4", StringType(), False)]
    + [f for f in TRANSACTION_MESSAGE.fields if f.name != "card_pan"][2:]
)

# The member bronze's tokenizer (lakehouse/jvm: finlake.Pan.REJECTED) adds beside card_token
# when the card_pan value cannot be a card number (anything but 12-19 digits and separators):
# the token is still taken and nothing clear is kept, and silver quarantines the row as
# INVALID_CARD_PAN.
PAN_REJECTED_MEMBER = "card_pan_rejected"
INVALID_CARD_PAN = "invalid_card_pan"

# The fields silver expects in a bronze payload (after the PAN was tokenized).
SILVER_FIELDS = {
    "transactions": SILVER_TRANSACTIONS,
    "tx_labels": TX_LABEL_MESSAGE,
    "market_ticks": MARKET_TICK_MESSAGE,
    "user_events": USER_EVENT_MESSAGE,
    "bureau_updates": BUREAU_UPDATE_MESSAGE,
    "loan_applications": LOAN_APPLICATION_MESSAGE,
}
# The event-time field of each stream (labels are timed by when they were given).
EVENT_TIME_FIELD = {s: ("labelled_at" if s == "tx_labels" else "event_time") for s in SILVER_FIELDS}

# What silver writes for a required field a message leaves out or sends as null, instead of
# quarantining the row: fields that outside data rarely has. ZZ (an unassigned ISO 3166 code),
# 0000 (no merchant category) and XXX (ISO 4217's "no currency") say "not given" in the
# field's own format, so the rules and the features still read them.
FIELD_DEFAULTS = {
    "transactions": {"merchant_country": "ZZ", "mcc": "0000", "currency": "XXX"},
}

# The Kafka key of each topic's messages: what orders a key's events within one partition.
MESSAGE_KEY = {
    "transactions": "customer_id",
    "tx_labels": "event_id",
    "market_ticks": "symbol",
    "user_events": "customer_id",
    "bureau_updates": "customer_id",
    "loan_applications": "customer_id",
}

MESSAGE_SCHEMAS = {
    "transactions": TRANSACTION_MESSAGE,
    "tx_labels": TX_LABEL_MESSAGE,
    "market_ticks": MARKET_TICK_MESSAGE,
    "user_events": USER_EVENT_MESSAGE,
    "bureau_updates": BUREAU_UPDATE_MESSAGE,
    "loan_applications": LOAN_APPLICATION_MESSAGE,
}
