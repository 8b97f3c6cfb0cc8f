"""The JVM parse (``finlake.ParsePayload``) against the expression parse: equal DataFrames, row
for row, on the hostile corpus and on every field of every stream given every kind of value."""
import datetime as dt
import json

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.bronze import tokenize_pan
from lakehouse.generators.hostile import hostile_corpus
from lakehouse.schemas.events import SILVER_FIELDS
from lakehouse.security import pan_hmac_key
from lakehouse.silver import add_rule_failures, jvm_parse_spec, parse_bronze

KAFKA_TS = dt.datetime(2026, 3, 1, 12, 0, 0)
T = "2026-03-01T11:59:00.000Z"
BASE = {
    "transactions": {"event_id": "t1", "event_time": T, "card_token": "a" * 64, "card_last4": "1111", "customer_id": "c1",
                     "merchant_id": "m1", "merchant_country": "FR", "mcc": "5411", "amount": "12.50", "currency": "EUR",
                     "channel": "card_present", "terminal_id": "t-1", "lat": 48.8, "lon": 2.3, "device_id": None},
    "tx_labels": {"event_id": "t1", "is_fraud": True, "labelled_at": T},
    "market_ticks": {"event_id": "k1", "event_time": T, "symbol": "ACME", "price": 101.25, "size": 300, "bid": 101.2,
                     "ask": 101.3, "bid_size": 5, "ask_size": 7, "venue": "XNAS"},
    "user_events": {"event_id": "u1", "event_time": T, "customer_id": "c1", "event_type": "login", "device_id": "d1",
                    "ip_country": "FR", "session_id": None},
    "bureau_updates": {"event_id": "b1", "event_time": T, "customer_id": "c1", "credit_score": 700, "utilisation": 0.3,
                       "delinquencies": 0, "inquiries_6m": 1, "annual_income": 52000, "debt_to_income": 0.2},
    "loan_applications": {"event_id": "l1", "event_time": T, "customer_id": "c1", "loan_amount": "15000.00", "term_months": 36,
                          "purpose": "car"},
}
DROP = object()
# Raw JSON texts for a member's value: every JSON type, the boundaries of each cast and rule.
VALUES = [
    DROP, "null", "true", "false", '"true"', '"false"', '"yes"', "0", "-0", "7", "-7", "2147483647", "2147483648",
    "9223372036854775807", "9223372036854775808", "99999999999999999999999", '"007"', '" 7"', '"7\\n"', '"7\\u2028"',
    "0.01", "0.005", "-0.0", "12.50", "100.0", "0.00000001", "1e3", "1E-7", "1e400", "-1e400", "1.5e308",
    "1.2345678901234567890123456789012345678901", "123456789012345678901.5", '"1.005"', '"99999999999999999.995"',
    '"9999999999999999.99"', '"1e3"', '"1E999"', '"١٢٣"', '"１２"', '" 5.00 "', '"12.50\\n"', '"-"', '"."', '""',
    '"NaN"', '"Infinity"', '"x"', '"\\ud800x"', '"\\u0000"', '"\U0001F4B3"', "[1, 2]", "[]", '{"a": 1}', "{}",
    '{"z": 1.50, "b": [1, 2.50, "x", null, true], "c": null, "d": 1e10, "e": {"y": "q"}, "f": -0}',
    '"2026-03-01T11:59:00Z"', '"2026-03-01 11:59:00"', '"2026-03-01"', '"2026"', '"2026-13-01"', '" 2026-03-01 "',
    '"2026-03-01T11:59:00.123456789+02:00"', '"+10000-01-01T00:00:00Z"', '"0001-01-01T00:00:00Z"',
    '"1677-09-21T23:59:59.999999Z"', '"1677-09-22T00:00:00Z"', '"2262-04-10T23:59:59.999999Z"', '"2262-04-11T00:00:00Z"',
    '"yesterday"', '"x' + "y" * 1100 + '"',
]


def _member(stream, name, raw):
    base = {k: json.dumps(v) for k, v in BASE[stream].items() if k != name}
    if raw is not DROP:
        base[name] = raw
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in base.items()) + "}"


def payloads(stream):
    out = [_member(stream, f.name, raw) for f in SILVER_FIELDS[stream].fields for raw in VALUES]
    base = _member(stream, "event_id", json.dumps("x1"))
    out += [base[:-1] + ', "unknown_b": 1, "Unknown_a": [1], "é": null}', base[:-1] + ', "event_id": "dup"}',
            base + " trailing", base + "\n", " " + base, "[" + base + "]", "null", "42", '"text"', "", "{", "{}",
            '{"event_id": "only"}']
    return [p.encode() for p in out] + [None, b"\xff\xfe", base.encode()[:-2] + b'\xff"}', b"x" * 70000]


def bronze(spark, stream, payloads, partition=0):
    rows = [(None, p, stream, partition, i, KAFKA_TS) for i, p in enumerate(payloads)]
    return spark.createDataFrame(rows, "key binary, payload binary, topic string, partition int, offset long, kafka_timestamp timestamp")


def both(df, stream, **limits):
    out = []
    for parser in ("expressions", "jvm"):
        parse = parse_bronze(stream, 3600, 300, parser=parser, **limits)
        out.append(df.transform(parse).transform(add_rule_failures(stream)).orderBy("kafka_offset"))
    return out


@pytest.mark.parametrize("stream", sorted(SILVER_FIELDS))
def test_the_jvm_parse_equals_the_expression_parse_on_every_kind_of_value(spark, stream):
    df = bronze(spark, stream, payloads(stream)).cache()
    expected, actual = both(df, stream, max_field_chars=1024, max_payload_bytes=65536)
    assert expected.where(F.size("reasons") > 0).count() > len(VALUES)   # the cases do break rules
    assert expected.where(F.size("reasons") == 0).count() > 5
    assertDataFrameEqual(actual, expected, checkRowOrder=True)


def test_the_jvm_parse_equals_the_expression_parse_on_the_hostile_corpus(spark, cfg):
    corpus = hostile_corpus(1500, seed=11, now=dt.datetime(2026, 3, 1, 11, 55, tzinfo=dt.timezone.utc))
    for stream in ("transactions", "user_events"):
        values = [v for topic, _, v in corpus.messages if topic == stream]
        df = bronze(spark, stream, values)
        if stream == "transactions":   # silver sees the tokenized payload
            df = df.transform(tokenize_pan(pan_hmac_key(cfg)))
        df = df.cache()
        expected, actual = both(df, stream)
        assert expected.where(F.size("reasons") == 0).count() > 0
        if stream == "transactions":
            assert expected.where(F.size("reasons") > 0).count() > 200
        assertDataFrameEqual(actual, expected, checkRowOrder=True)


def test_the_spec_names_each_field_once_with_its_type_and_default():
    spec = jvm_parse_spec("transactions", 100, 10, "UTC").split("\n")
    assert spec[0] == "100\t10\tUTC"
    assert spec[1:4] == ["event_id\tstring\t1\t0\t", "event_time\ttimestamp\t1\t1\t", "card_token\tstring\t1\t0\t"]
    assert "amount\tdecimal(18,2)\t1\t0\t" in spec and "merchant_country\tstring\t0\t0\tZZ" in spec
    assert "lat\tdouble\t0\t0\t" in spec and "extras\tmap\t0\t0\t" in spec and len(spec) == 1 + len(SILVER_FIELDS["transactions"].fields)


def test_an_unknown_parser_is_refused_in_one_line(tmp_path):
    from lakehouse.config import ConfigError, load_config
    from lakehouse.pipeline import Settings

    assert Settings.from_config(load_config("local", home=tmp_path)).parser == "jvm"
    with pytest.raises(ConfigError, match="pipeline.parser must be one of jvm, expressions, got 'fast'"):
        Settings.from_config(load_config("local", ["pipeline.parser=fast"], home=tmp_path))
    with pytest.raises(ValueError, match="parser must be one of"):
        parse_bronze("transactions", 1, 1, parser="fast")
