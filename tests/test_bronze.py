"""The bronze transforms on small inline rows, compared as whole DataFrames."""
import datetime as dt
import hashlib
import hmac

from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from lakehouse.bronze import kafka_to_bronze, tokenize_pan
from lakehouse.schemas.tables import BRONZE
from lakehouse.security import hmac_sha256_col

KEY = b"unit-test-key"
PAN = "4111111111111111"


def tok(pan: str) -> str:
    # An independent implementation: Python's hmac module.
    return hmac.new(KEY, pan.encode(), hashlib.sha256).hexdigest()


def test_spark_hmac_equals_python_hmac_for_short_and_long_keys(spark):
    from pyspark.sql import functions as F

    long_key = b"k" * 100  # longer than the SHA-256 block: hashed first, as RFC 2104 says
    df = spark.createDataFrame([("4111111111111111",), ("",), ("5500 0000 0000 0004",)], "m string")
    got = df.select("m", hmac_sha256_col(KEY, F.col("m")).alias("a"), hmac_sha256_col(long_key, F.col("m")).alias("b"))
    expected = [(m, hmac.new(KEY, m.encode(), hashlib.sha256).hexdigest(), hmac.new(long_key, m.encode(), hashlib.sha256).hexdigest())
                for m in ("4111111111111111", "", "5500 0000 0000 0004")]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "m string, a string, b string"))


def test_tokenize_pan_replaces_every_form_of_the_pan(spark):
    rows = [
        ("c1", '{"event_id":"a","card_pan":"4111111111111111","amount":"1.00"}'),
        ("c2", '{"event_id":"b","card_pan": "4111 1111 1111 1111"}'),
        ("c3", '{"event_id":"c","card_pan":4111111111111111}'),
        ("c4", '{"event_id":"d","card_pan":"4111111111111111","amount":'),  # malformed JSON
        ("c5", '{"event_id":"e","amount":"2.00"}'),
        ("c6", '{"event_id":"f","card_pan":null}'),
        ("4111-1111-1111-1111", '{"event_id":"g"}'),
        ("c8", None),
        ("c9", '{"event_id":"h","card_pan":"41111111111'),  # cut off inside the PAN
    ]
    df = spark.createDataFrame(rows, "key string, payload string")
    member = f'"card_token":"{tok(PAN)}","card_last4":"1111"'
    expected = spark.createDataFrame([
        ("c1", '{"event_id":"a",' + member + ',"amount":"1.00"}'),
        ("c2", '{"event_id":"b",' + member + '}'),
        ("c3", '{"event_id":"c",' + member + '}'),
        ("c4", '{"event_id":"d",' + member + ',"amount":'),
        ("c5", '{"event_id":"e","amount":"2.00"}'),
        ("c6", '{"event_id":"f","card_token":null,"card_last4":null}'),
        (tok(PAN), '{"event_id":"g"}'),
        ("c8", None),
        ("c9", '{"event_id":"h","card_token":"' + tok("41111111111") + '","card_last4":"1111"'),
    ], "key string, payload string")
    assertDataFrameEqual(df.transform(tokenize_pan(KEY)), expected)


def test_kafka_to_bronze_keeps_payload_and_provenance(spark):
    ts = dt.datetime(2026, 1, 1, 12, 0, 0)
    kafka_rows = spark.createDataFrame(
        [Row(key=b"k", value=b'{"x":1}', topic="t", partition=1, offset=7, timestamp=ts, timestampType=0)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int")
    out = kafka_to_bronze(kafka_rows)
    assertSchemaEqual(out.schema, BRONZE, ignoreNullable=True)
    assertDataFrameEqual(out.drop("ingest_time", "ingest_date"),
                         spark.createDataFrame([("k", '{"x":1}', "t", 1, 7, ts)],
                                               "key string, payload string, topic string, partition int, offset long, kafka_timestamp timestamp"))
