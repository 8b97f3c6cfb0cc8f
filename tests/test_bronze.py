"""The bronze transforms on small inline rows, compared as whole DataFrames."""
import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
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
        ("card:４１１１ １１１１ １１１１ １１１１", '{"event_id":"i"}'),  # full-width digits in the key
    ]
    df = spark.createDataFrame([(k.encode(), v.encode() if v else None) for k, v in rows], "key binary, payload binary")
    member = f'"card_token":"{tok(PAN)}","card_last4":"1111"'
    expected = [
        ("c1", '{"event_id":"a",' + member + ',"amount":"1.00"}'),
        ("c2", '{"event_id":"b",' + member + '}'),
        ("c3", '{"event_id":"c",' + member + '}'),
        ("c4", '{"event_id":"d",' + member + ',"amount":'),
        ("c5", '{"event_id":"e","amount":"2.00"}'),
        ("c6", '{"event_id":"f","card_token":null,"card_last4":null}'),
        (tok(PAN), '{"event_id":"g"}'),
        ("c8", None),
        # too few digits for a card: the token is taken all the same, and silver is told
        ("c9", '{"event_id":"h","card_token":"' + tok("41111111111") + '","card_last4":"1111","card_pan_rejected":true'),
        ("card:" + tok(PAN), '{"event_id":"i"}'),
    ]
    assertDataFrameEqual(df.transform(tokenize_pan(KEY)),
                         spark.createDataFrame([(k.encode(), v.encode() if v else None) for k, v in expected], "key binary, payload binary"))


AMEX, MC = "378282246310005", "5500000000000004"


@pytest.mark.parametrize("raw, clean", [
    # Member names only a JSON parser reads as card_pan, and other places a PAN hides.
    ('{"card\\u005fpan":"4111111111111111"}', '{"card_token":"T4111111111111111","card_last4":"1111"}'),
    ('{"CARD_PAN":"4111111111111111"}', '{"CARD_PAN":"T4111111111111111"}'),
    ('{"card_pan ":"4111 1111 1111 1111"}', '{"card_pan ":"T4111111111111111"}'),
    # a card_pan that is not a string or an integer: replaced whole, and marked for silver
    ('{"card_pan":{"number":"4111-1111-1111-1111"}}', '{"card_token":"T4111111111111111","card_last4":"1111","card_pan_rejected":true}'),
    ('{"card_pan":["378282246310005"]}', '{"card_token":"T378282246310005","card_last4":"0005","card_pan_rejected":true}'),
    ('{"merchant_id":"m-5500000000000004-x"}', '{"merchant_id":"m-T5500000000000004-x"}'),
    ('{"note":"paid with 5500 0000 0000 0004 today"}', '{"note":"paid with T5500000000000004 today"}'),
    ('{"n":5500000000000004}', '{"n":"T5500000000000004"}'),  # a bare number becomes a JSON string
    ('4111111111111111', '"T4111111111111111"'),  # the whole message
    ('{"p":"\\u00341\\u00311111111111111"}', '{"p":"T4111111111111111"}'),  # digits as JSON escapes
    ('{"a":"x4111111111111111y"}', '{"a":"xT4111111111111111y"}'),
    # Not card numbers: Luhn fails, too short or long, our own tokens, dates.
    ('{"a":"4111111111111112","b":"411111111111","c":"41111111111111111111"}', None),
    ('{"t":"' + "4" * 62 + 'ab","when":"2026-01-01T00:00:00.000Z"}', None),
    ('{"event_id":"tx-990086-0-000100007"}', None),  # an id whose dashed digits pass Luhn: not laid out as a card
    ('\xff\xfe{"a":"378282246310005"}', '\xff\xfe{"a":"T378282246310005"}'),  # bytes around it kept
    # Separators and digits only a JSON parser or a Unicode reader sees.
    ('{"d":"4111\\u00201111\\u00201111\\u00201111","t":"4111\\u002d1111\\u002d1111\\u002d1111",'
     '"n":"4111\\u00001111\\u00001111\\u00001111","z":"4111\u200b1111\u200b1111\u200b1111"}',
     '{"d":"T4111111111111111","t":"T4111111111111111","n":"T4111111111111111","z":"T4111111111111111"}'),
    ('{"m":"m-４１１１１１１１１１１１１１１１","a":"٤١١١ ١١١١ ١١١١ ١١١١"}', '{"m":"m-T4111111111111111","a":"T4111111111111111"}'),
    ('{"5500000000000004":1,"k":"\\ud83d\\udcb3 5500000000000004 \\"ok\\" \\u00e9\\n"}',
     '{"T5500000000000004":1,"k":"\U0001F4B3 T5500000000000004 \\"ok\\" \u00e9\\n"}'),  # a text with a card is written back validly escaped
    # Numbers and texts whose digits pass Luhn but are no card number stay byte for byte:
    # fractions, integer parts, mantissas (5500000000000004 passes Luhn), 20 digits, Luhn failures.
    ('{"lon":-60.5500000000000004,"x":"-29.5500000000000004","e":5500000000000004e3,"f":"5500000000000004.25",'
     '"g":"1.5e5500000000000004","w":55000000000000041234,"id":4111111111111112, "s": [ 1.0E-7 ]}', None),
])
def test_every_card_number_is_tokenized_wherever_it_stands(spark, raw, clean):
    def render(text):
        out = text.encode("latin-1") if text.startswith("\xff") else text.encode()
        for pan in (PAN, AMEX, MC):
            out = out.replace(f"T{pan}".encode(), tok(pan).encode())
        return out

    df = spark.createDataFrame([(render(raw),)], "payload binary").withColumn("key", F.lit(None).cast("binary"))
    got = bytes(df.transform(tokenize_pan(KEY)).first()["payload"])
    assert got == render(clean if clean is not None else raw)


def test_a_new_key_reaches_every_task_thread(spark):
    """Executor threads outlive jobs: after the key changes, every thread tokenizes with the new
    key (a thread that kept its old HMAC gave one card two tokens in one run)."""
    other = b"another-key"
    rows = spark.createDataFrame([(f'{{"card_pan":"{PAN}","i":{i}}}'.encode(),) for i in range(64)], "payload binary") \
        .withColumn("key", F.lit(None).cast("binary")).repartition(8)

    def tokens(key):
        return {bytes(r["payload"]).split(b'"card_token":"')[1][:64].decode() for r in rows.transform(tokenize_pan(key)).collect()}

    assert tokens(KEY) == {tok(PAN)}   # every task thread now holds a Mac for KEY
    assert tokens(other) == {hmac.new(other, PAN.encode(), hashlib.sha256).hexdigest()}
    assert tokens(KEY) == {tok(PAN)}


def test_tokenizer_handles_huge_and_hostile_input_in_bounded_time(spark):
    """A 2 MB run of digits, 100,000 separators and a 200,000-deep nesting: no stack overflow."""
    payloads = [b"1" * 2_000_000, b"1 " * 100_000, b"[" * 200_000, ('{"card_pan":"' + "4" * 50_000 + '"}').encode(),
                ((PAN + "-") * 10_000).encode()]
    df = spark.createDataFrame([(p,) for p in payloads], "payload binary").withColumn("key", F.lit(None).cast("binary"))
    out = [bytes(r["payload"]) for r in df.transform(tokenize_pan(KEY)).collect()]
    assert out[0] == payloads[0] and out[1] == payloads[1] and out[2] == payloads[2]
    assert out[3].startswith(b'{"card_token":"') and b"4444" * 10 not in out[3]
    assert out[4] == (('"' + tok(PAN) + '"-') * 10_000).encode()  # outside a JSON string: quoted


def test_the_key_never_appears_in_a_plan(spark, cfg):
    """explain(True) of the bronze transform shows no key material: not the key, its hex, or
    the HMAC pads (key XOR 0x36 / 0x5c) in any encoding."""
    import base64
    import contextlib
    import io

    from lakehouse.security import hmac_pads

    rows = spark.createDataFrame([(b"k", b'{"card_pan":"4111111111111111"}', "t", 0, 1, dt.datetime(2026, 1, 1), 0)],
                                 "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int")
    df = rows.transform(kafka_to_bronze).transform(tokenize_pan(KEY))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        df.explain(True)
    plan = buf.getvalue()
    ipad, opad = hmac_pads(KEY)
    forms = [KEY, ipad, opad]
    needles = [f.decode("latin-1") for f in forms] + [f.hex() for f in forms] + [f.hex().upper() for f in forms] + \
              [base64.b64encode(f).decode() for f in forms] + [str(list(f)) for f in forms]
    assert "finlake_tokenize_payload" in plan
    assert not [n for n in needles if n in plan]


def test_kafka_to_bronze_keeps_payload_and_provenance(spark):
    ts = dt.datetime(2026, 1, 1, 12, 0, 0)
    kafka_rows = spark.createDataFrame(
        [Row(key=b"k", value=b'{"x":1}', topic="t", partition=1, offset=7, timestamp=ts, timestampType=0)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int")
    out = kafka_to_bronze(kafka_rows)
    assertSchemaEqual(out.schema, BRONZE, ignoreNullable=True)
    assertDataFrameEqual(out.drop("ingest_time", "ingest_date"),
                         spark.createDataFrame([(b"k", b'{"x":1}', "t", 1, 7, ts)],
                                               "key binary, payload binary, topic string, partition int, offset long, kafka_timestamp timestamp"))


def test_only_numbers_a_payment_network_issues_are_card_numbers(spark):
    """Luhn-valid 13-19 digits that no network issues (epoch times from 1, ids from 0, 7, 9)
    stay as they are; UATP (1, 15 digits) and UnionPay / RuPay (81, 82) are tokenized."""
    kept = '{"us":1733419554123459,"ms":"1796497556714","ref":"7000000000000005","n":900000000000000001}'
    raw = '{"uatp":"100000000000009","up":810000000000000}'
    df = spark.createDataFrame([(kept.encode(),), (raw.encode(),)], "payload binary").withColumn("key", F.lit(None).cast("binary"))
    got = [bytes(r["payload"]).decode() for r in df.transform(tokenize_pan(KEY)).collect()]
    assert got == [kept, f'{{"uatp":"{tok("100000000000009")}","up":"{tok("810000000000000")}"}}']
