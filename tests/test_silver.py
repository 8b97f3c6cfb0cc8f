"""Silver transforms and the silver foreachBatch function on small inline bronze rows."""
import datetime as dt
import json
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StructField, StructType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from lakehouse.catalog import Catalog
from lakehouse.config import ConfigError, load_config
from lakehouse.commits import app_id
from lakehouse.pipeline import PipelineQualityError, Settings, SilverBatch
from lakehouse.quality import predicate, validate
from lakehouse.schemas.expectations import SUITES, rule_name
from lakehouse.schemas.tables import QUARANTINE
from lakehouse.silver import add_rule_failures, classify_copies, parse_bronze, to_quarantine, to_silver

KAFKA_TS = dt.datetime(2026, 3, 1, 12, 0, 0)
TOKEN = "a" * 64


def tx(event_id="t1", **over):
    event = {"event_id": event_id, "event_time": "2026-03-01T11:59:00.000Z", "card_token": TOKEN, "card_last4": "1111",
             "customer_id": "c1", "merchant_id": "m1", "merchant_country": "FR", "mcc": "5411", "amount": "12.50",
             "currency": "EUR", "channel": "card_present", "terminal_id": "t-1", "lat": 48.8, "lon": 2.3, "device_id": None}
    event.update(over)
    return {k: v for k, v in event.items() if v != "<drop>"}


def _bytes(p):
    if p is None or isinstance(p, bytes):
        return p
    return (p if isinstance(p, str) else json.dumps(p)).encode()


def bronze(spark, payloads, partition=0):
    rows = [(None, _bytes(p), "transactions", partition, i, KAFKA_TS) for i, p in enumerate(payloads)]
    return spark.createDataFrame(rows, "key binary, payload binary, topic string, partition int, offset long, kafka_timestamp timestamp")


def reasons_of(spark, payloads, partition=0):
    df = bronze(spark, payloads, partition).transform(parse_bronze("transactions", 3600, 300)).transform(add_rule_failures("transactions"))
    return df.select("kafka_offset", "event_id", "reasons", "unknown_fields")


def test_every_reason_a_row_has_is_named(spark):
    payloads = [
        tx("ok"),
        '{"event_id":"broken","amount":',
        tx("missing", amount="<drop>"),
        tx("mistyped", amount="n/a"),
        tx("negative", amount="-3.00"),
        tx("channel", channel="pigeon"),
        tx("late", event_time="2026-03-01T09:00:00.000Z"),
        tx("future", event_time="2026-03-01T13:00:00.000Z"),
        tx("extra", x_schema_v2="v2"),
        tx("badlat", lat="north"),
        tx(12345),
        tx({"a": 1}),
        tx("fullwidth", amount="１２３.４５"),
        tx("arabic", amount="١٢٣"),
        tx("exponent", amount="1e3"),
        tx("spaces", amount=" 5.00 "),
        tx("year10000", event_time="+10000-01-01T00:00:00Z"),
        tx("year1500", event_time="1500-01-01T00:00:00Z"),
        b'{"event_id":"\xff\xfe"}',
        tx("huge", merchant_id="m" * 70000),
        tx("oversized", merchant_id="m" * 2000),
        tx("infinite", lat=1e400),
        '{"event_id":"dup","event_id":"dup2"}',
        '[1,2,3]',
        tx("numeric_amount", amount=12.5),
        tx("null_terminal", terminal_id=None),
        tx("object_terminal", terminal_id={"id": "t"}),
        tx("defaults", merchant_country="<drop>", mcc=None, currency="<drop>"),
        tx("extras", extras={"billing_zip": "75001", "risk": 3}),
        tx("text_extras", extras="zip=75001"),
    ]
    nulls = [f"not_be_null:{c}" for c in ("event_id", "event_time", "card_token", "card_last4", "customer_id", "merchant_id",
                                          "merchant_country", "mcc", "amount", "currency", "channel")]
    expected = spark.createDataFrame([
        (0, "ok", [], []),
        (1, None, ["malformed_json", *nulls], []),
        (2, "missing", ["missing_field:amount", "not_be_null:amount"], []),
        (3, "mistyped", ["mistyped_field:amount", "not_be_null:amount"], []),
        (4, "negative", ["be_between:amount"], []),
        (5, "channel", ["be_in_set:channel"], []),
        (6, "late", ["late_event"], []),
        (7, "future", ["event_time_in_future"], []),
        (8, "extra", [], ["x_schema_v2"]),
        (9, "badlat", ["mistyped_field:lat"], []),
        (10, None, ["mistyped_field:event_id", "not_be_null:event_id"], []),
        (11, None, ["mistyped_field:event_id", "not_be_null:event_id"], []),
        (12, "fullwidth", ["mistyped_field:amount", "not_be_null:amount"], []),
        (13, "arabic", ["mistyped_field:amount", "not_be_null:amount"], []),
        (14, "exponent", ["mistyped_field:amount", "not_be_null:amount"], []),
        (15, "spaces", ["mistyped_field:amount", "not_be_null:amount"], []),
        (16, "year10000", ["event_time_out_of_range", "not_be_null:event_time"], []),
        (17, "year1500", ["event_time_out_of_range", "not_be_null:event_time"], []),
        (18, None, ["invalid_utf8", *nulls], []),
        (19, None, ["payload_too_large", *nulls], []),
        (20, "oversized", ["oversized_field:merchant_id", "not_be_null:merchant_id"], []),
        (21, None, ["malformed_json", *nulls], []),  # 1e400 is no JSON number Spark can hold
        (22, None, ["malformed_json", *nulls], []),  # duplicate member names are ambiguous
        (23, None, ["malformed_json", *nulls], []),  # not an object
        (24, "numeric_amount", [], []),
        (25, "null_terminal", [], []),
        (26, "object_terminal", ["mistyped_field:terminal_id"], []),
        (27, "defaults", [], []),      # left out or null: the documented defaults
        (28, "extras", [], []),
        (29, "text_extras", ["mistyped_field:extras"], []),
    ], "kafka_offset long, event_id string, reasons array<string>, unknown_fields array<string>")
    assertDataFrameEqual(reasons_of(spark, payloads), expected)


def test_backfilled_rows_are_not_late(spark):
    got = reasons_of(spark, [tx("old", event_time="2025-01-01T00:00:00.000Z")], partition=-1)
    assert got.first()["reasons"] == []


def test_valid_rows_are_typed_for_silver(spark):
    payloads = [tx("ok"), tx("own", merchant_country=None, mcc="<drop>", currency="<drop>", extras={"billing_zip": "75001", "risk": 3})]
    parsed = bronze(spark, payloads).transform(parse_bronze("transactions", 3600, 300))
    silver = parsed.transform(to_silver("transactions", silver_time=F.lit(KAFKA_TS)))
    expected = spark.createDataFrame([(
        "ok", dt.datetime(2026, 3, 1, 11, 59), TOKEN, "1111", "c1", "m1", "FR", "5411", Decimal("12.50"), "EUR",
        "card_present", "t-1", 48.8, 2.3, None, None, 0, 0, KAFKA_TS, KAFKA_TS), (
        "own", dt.datetime(2026, 3, 1, 11, 59), TOKEN, "1111", "c1", "m1", "ZZ", "0000", Decimal("12.50"), "XXX",
        "card_present", "t-1", 48.8, 2.3, None, {"billing_zip": "75001", "risk": "3"}, 0, 1, KAFKA_TS, KAFKA_TS)],
        Catalog(load_config("local")).spec("silver.transactions").schema)
    assertSchemaEqual(silver.schema, expected.schema, ignoreNullable=True)
    assertDataFrameEqual(silver, expected)


def test_copies_are_first_duplicate_or_conflicting(spark):
    from lakehouse.silver import content_hash

    parsed = bronze(spark, [tx("a"), tx("a"), tx("b"), tx("b", amount="99.00"), tx("c"), tx("d"), tx("e")]) \
        .transform(parse_bronze("transactions", 3600, 300))
    # Silver already holds c (same content), d (another event time: a conflict) and nothing of e.
    held = bronze(spark, [tx("c"), tx("d", event_time="2026-03-01T11:00:00.000Z")]).transform(parse_bronze("transactions", 3600, 300))
    existing = held.select("event_id", content_hash("transactions").alias("content_hash"))
    got = parsed.transform(classify_copies("transactions", existing)).select("kafka_offset", "event_id", "copy")
    assertDataFrameEqual(got, spark.createDataFrame([
        (0, "a", None), (1, "a", "duplicate"), (2, "b", None), (3, "b", "conflicting_duplicate"),
        (4, "c", "duplicate"), (5, "d", "conflicting_duplicate"), (6, "e", None)], "kafka_offset long, event_id string, copy string"))


def test_quarantine_rows_carry_payload_batch_and_reasons(spark):
    parsed = bronze(spark, ['{"event_id":"x"']).transform(parse_bronze("transactions", 3600, 300))
    q = parsed.transform(to_quarantine("silver.transactions", 7, "batch_failure_rate_exceeded"))
    assertSchemaEqual(q.schema, QUARANTINE, ignoreNullable=True)
    row = q.first()
    assert (row.batch_id, row.payload, row.reasons, row.partition, row.offset) == (
        7, '{"event_id":"x"', ["malformed_json", "batch_failure_rate_exceeded"], 0, 0)
    # Undecodable bytes: bronze keeps them; quarantine's text marks them and stays valid UTF-8.
    bad = bronze(spark, [b'{"event_id":"\xff"}']).transform(parse_bronze("transactions", 3600, 300)).transform(to_quarantine("silver.transactions", 1))
    assert [(r.payload, r.reasons) for r in bad.collect()] == [('{"event_id":"\ufffd"}', ["invalid_utf8"])]


@pytest.mark.parametrize("stream", sorted(SUITES))
def test_great_expectations_and_row_predicates_agree(spark, stream):
    from lakehouse.schemas.events import SILVER_FIELDS

    from pyspark.sql.types import StructField, StructType

    schema = StructType([StructField(f.name, f.dataType, True) for f in SILVER_FIELDS[stream].fields])
    # Each rule broken by some rows; nulls everywhere in one row.
    bad = {"expect_column_values_to_be_between": -1_000_000_000, "expect_column_values_to_be_in_set": "zzz",
           "expect_column_values_to_match_regex": "!!"}
    rows = [{f.name: None for f in schema.fields}]
    for e in SUITES[stream]:
        if e["type"] in bad:
            value = bad[e["type"]]
            if e["type"] == "expect_column_values_to_be_in_set" and isinstance(e["value_set"][0], int):
                value = 7
            rows.append({"_col": e["column"], "_val": value})
        if e["type"] == "expect_column_values_to_be_between":
            # Boundaries pass on both engines (0.01 as a decimal amount once failed on pandas).
            for edge in (e.get("min_value"), e.get("max_value")):
                if edge is not None:
                    rows.append({"_col": e["column"], "_val": edge})
    # One frame, built as text and cast to the declared types (one job, not one per row).
    text = [tuple(str(r["_val"]) if f.name == r.get("_col") else None for f in schema.fields) for r in rows]
    df = spark.createDataFrame(text, ", ".join(f"`{f.name}` string" for f in schema.fields)) \
        .select(*[F.lit(None).cast(f.dataType).alias(f.name) if isinstance(f.dataType, MapType) else F.col(f.name).cast(f.dataType)
                  for f in schema.fields]).cache()
    flagged = {rule_name(e): df.where(predicate(e)).count() for e in SUITES[stream]}
    for rows in (None, df.count()):  # Great Expectations' Spark engine, then its pandas engine
        results = {r["expectation"]: r["unexpected_count"] for r in validate(df, stream, rows)}
        assert results == flagged, rows
    assert all(v >= 1 for k, v in flagged.items() if k.startswith("not_be_null"))


@pytest.fixture
def fresh_cfg(tmp_path, overrides):
    return load_config("local", overrides + ["pipeline.min_rows_for_failure_rate=4"], home=tmp_path)


def _read(spark, cfg, table):
    return spark.read.format("delta").load(Catalog(cfg).spec(table).location)


def test_silver_batch_routes_dedups_and_is_idempotent(spark, fresh_cfg):
    Catalog(fresh_cfg).register(spark, ["silver.transactions", "quarantine.transactions", "ops.dq_results"])
    ckpt = str(fresh_cfg.home / "ckpt")
    fn = SilverBatch(fresh_cfg, "transactions", ckpt)
    batch0 = bronze(spark, [tx("a"), tx("b"), tx("a"), '{"oops', tx("c", amount="n/a")])
    fn(batch0, 0)
    fn(batch0, 0)  # a replay of the same batch writes nothing twice
    fn(bronze(spark, [tx("b"), tx("d"), tx("e"), tx("f")]), 1)  # b is already in silver
    fn(bronze(spark, [tx("d", event_time="2026-03-01T11:58:00.000Z")]), 2)  # alone: a replay of d with another time
    assertDataFrameEqual(_read(spark, fresh_cfg, "silver.transactions").select("event_id"),
                         spark.createDataFrame([("a",), ("b",), ("d",), ("e",), ("f",)], "event_id string"))
    q = _read(spark, fresh_cfg, "quarantine.transactions").select("batch_id", "reasons")
    assert sorted((r.batch_id, r.reasons[0]) for r in q.collect()) == [(0, "malformed_json"), (0, "mistyped_field:amount"),
                                                                        (2, "conflicting_duplicate")]
    dq = _read(spark, fresh_cfg, "ops.dq_results").where("suite = 'finlake.pipeline'").select("batch_id", "expectation", "unexpected_count")
    got = {(r.batch_id, r.expectation): r.unexpected_count for r in dq.collect()}
    assert {k: v for k, v in got.items() if k[1] in ("rows", "quarantined", "duplicates_dropped")} == {
        (0, "rows"): 5, (0, "quarantined"): 2, (0, "duplicates_dropped"): 1,
        (1, "rows"): 4, (1, "quarantined"): 0, (1, "duplicates_dropped"): 1,
        (2, "rows"): 1, (2, "quarantined"): 1, (2, "duplicates_dropped"): 0}
    assert app_id(ckpt, "x") == fn.app and app_id(str(fresh_cfg.home / "other"), "x") != fn.app


def test_a_batch_reports_every_reason_its_quarantine_holds(spark, fresh_cfg):
    """The quarantine metrics' reasons (tallied apart from the counts' aggregation) are exactly
    the reasons in the quarantine rows the batch wrote, repeats included; a clean batch has none."""
    Catalog(fresh_cfg).register(spark, ["silver.transactions", "quarantine.transactions", "ops.dq_results"])
    fn = SilverBatch(fresh_cfg, "transactions", str(fresh_cfg.home / "ckpt"))
    batch = bronze(spark, [*[tx(f"a{i}") for i in range(7)], '{"oops', '{"again', tx("b", amount="n/a", channel="pigeon"), tx("c", channel="pigeon"),
                           tx("d", mcc="54x1", currency="euro")])
    staged = fn.stage(batch, 0)
    try:
        table, rows, reasons, checked = staged.observed
    finally:
        staged.release()
    quarantined = _read(spark, fresh_cfg, "quarantine.transactions").select(F.explode("reasons").alias("reason"))
    assertDataFrameEqual(spark.createDataFrame([(r,) for r in reasons], "reason string"), quarantined)
    assert (table, rows, checked) == ("silver.transactions", 5, 12) and len(reasons) >= 7
    clean = fn.stage(bronze(spark, [tx("e"), tx("f")]), 1)
    try:
        assert clean.observed == ("silver.transactions", 0, [], 2)
    finally:
        clean.release()


def test_dedup_searches_silver_within_its_horizon_of_event_time(spark, tmp_path, overrides):
    cfg = load_config("local", overrides + ["pipeline.dedup_horizon_s=600"], home=tmp_path)
    Catalog(cfg).register(spark, ["silver.transactions", "quarantine.transactions", "ops.dq_results"])
    fn = SilverBatch(cfg, "transactions", str(tmp_path / "ckpt"))
    fn(bronze(spark, [tx("a"), tx("b"), tx("c")]), 0)   # each at 11:59
    fn(bronze(spark, [tx("a"),                                                          # exact replay: found
                      tx("b", amount="13.50", event_time="2026-03-01T11:52:00.000Z")]), 1)   # other content, 7 min away: found
    # Alone in its batch, a replay with other content 14 minutes from its first copy is beyond
    # the horizon: it lands beside it (the documented bound).
    fn(bronze(spark, [tx("c", amount="1.00", event_time="2026-03-01T11:45:00.000Z")]), 2)
    amounts = _read(spark, cfg, "silver.transactions").select("event_id", F.col("amount").cast("string").alias("amount"))
    assertDataFrameEqual(amounts, spark.createDataFrame([("a", "12.50"), ("b", "12.50"), ("c", "12.50"), ("c", "1.00")],
                                                        "event_id string, amount string"))
    q = _read(spark, cfg, "quarantine.transactions").select(F.get_json_object("payload", "$.event_id").alias("event_id"), "reasons")
    assertDataFrameEqual(q, spark.createDataFrame([("b", ["conflicting_duplicate"])], "event_id string, reasons array<string>"))
    with pytest.raises(ConfigError, match="pipeline.dedup_horizon_s must be a number of seconds >= 0"):
        Settings.from_config(load_config("local", overrides + ["pipeline.dedup_horizon_s=-1"], home=tmp_path / "bad"))


def test_excess_failures_quarantine_whole_batch_or_stop(spark, fresh_cfg, tmp_path, overrides):
    Catalog(fresh_cfg).register(spark, ["silver.transactions", "quarantine.transactions", "ops.dq_results"])
    mostly_bad = [tx("good"), '{"x', '{"y', '{"z', tx("bad", channel="pigeon")]
    SilverBatch(fresh_cfg, "transactions", str(tmp_path / "c1"))(bronze(spark, mostly_bad), 0)
    assert _read(spark, fresh_cfg, "silver.transactions").count() == 0
    q = _read(spark, fresh_cfg, "quarantine.transactions")
    assert q.count() == 5 and q.where(F.array_contains("reasons", "batch_failure_rate_exceeded")).count() == 5

    stop = load_config("local", overrides + ["pipeline.min_rows_for_failure_rate=4", "pipeline.on_excess_failures=fail"], home=tmp_path / "h2")
    Catalog(stop).register(spark, ["silver.transactions", "quarantine.transactions", "ops.dq_results"])
    with pytest.raises(PipelineQualityError, match=r"silver.transactions batch 3: 4 of 5 rows failed validation, above pipeline.max_failure_rate=0.5"):
        SilverBatch(stop, "transactions", str(tmp_path / "c2"))(bronze(spark, mostly_bad), 3)


def test_concurrent_validations_of_different_suites_do_not_mix(spark):
    """foreachBatch functions of concurrent queries validate on their own threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.schemas.events import SILVER_FIELDS

    frames = {s: spark.createDataFrame([{f.name: None for f in SILVER_FIELDS[s].fields}],
                                       StructType([StructField(f.name, f.dataType, True) for f in SILVER_FIELDS[s].fields]))
              for s in ("transactions", "user_events", "bureau_updates")}
    expected = {s: validate(df, s) for s, df in frames.items()}
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda s: (s, validate(frames[s], s)), [*frames] * 2))
    assert all(results == expected[s] for s, results in got)


def test_a_card_pan_that_is_no_card_number_is_quarantined_and_zero_amounts_follow_the_setting(spark):
    """card_pan must be 12-19 digits once separators are removed (the token is taken either
    way, nothing clear kept); amounts from quality.min_amount (0.00 by default) up."""
    from lakehouse.bronze import tokenize_pan

    def card(event_id, pan, amount="12.50"):
        event = tx(event_id, card_token="<drop>", card_last4="<drop>", amount=amount)
        event["card_pan"] = pan
        return event

    payloads = [card("card", "4111 1111 1111 1111"), card("twelve", "123456789012"), card("long", "4" * 2000),
                card("short", "41111111111"), card("words", "4111 1111 1111 1111 exp 12/27"), card("object", {"n": "4111111111111111"}),
                card("zero", "4111111111111111", "0.00"), card("cent", "4111111111111111", "0.01"),
                card("minus", "4111111111111111", "-0.01")]
    rows = bronze(spark, payloads).withColumn("key", F.lit(None).cast("binary")).transform(tokenize_pan(b"silver-test-key"))

    def reasons(min_amount):
        parsed = rows.transform(parse_bronze("transactions", 3600, 300)).transform(add_rule_failures("transactions", min_amount))
        return parsed.select("event_id", "reasons", "unknown_fields")

    bad = ["invalid_card_pan"]
    expected = [("card", []), ("twelve", []), ("long", bad), ("short", bad), ("words", bad), ("object", bad),
                ("zero", []), ("cent", []), ("minus", ["be_between:amount"])]
    schema = "event_id string, reasons array<string>, unknown_fields array<string>"
    assertDataFrameEqual(reasons(0.0), spark.createDataFrame([(e, r, []) for e, r in expected], schema))
    stricter = [(e, ["be_between:amount"] if e == "zero" else r, []) for e, r in expected]
    assertDataFrameEqual(reasons(0.01), spark.createDataFrame(stricter, schema))
    assert "4444" * 10 not in " ".join(bytes(r["payload"]).decode() for r in rows.collect())
