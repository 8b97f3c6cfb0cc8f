"""Gold feature transforms on small inline rows: window arithmetic and point-in-time correctness."""
import datetime as dt
import re
from decimal import Decimal

import pytest

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.gold import (CARD_FEATURES, add_customer_features, add_risk_features, add_user_event_features, add_velocity_features,
                            borrower_features, card_features, market_features)

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def at(seconds):
    return T0 + dt.timedelta(seconds=seconds)


def txs(spark, rows):
    """rows: (event_id, seconds, card, amount, merchant, country, channel, lat, lon)"""
    data = [(e, at(s), c, "cust-" + c, m, co, "5411", Decimal(a), ch, lat, lon, at(s), at(s))
            for e, s, c, a, m, co, ch, lat, lon in rows]
    return spark.createDataFrame(data, "event_id string, event_time timestamp, card_token string, customer_id string, "
                                       "merchant_id string, merchant_country string, mcc string, amount decimal(18,2), channel string, "
                                       "lat double, lon double, kafka_timestamp timestamp, silver_time timestamp")


ROWS = [
    ("t1", 0, "A", "10.00", "m1", "FR", "card_present", 48.0, 2.0),
    ("t2", 300, "A", "20.00", "m2", "FR", "card_present", 48.0, 2.0),
    ("t3", 900, "A", "30.00", "m2", "DE", "ecommerce", None, None),
    ("t4", 4000, "A", "100.00", "m3", "FR", "card_present", 49.0, 2.0),
    ("u1", 100, "B", "5.00", "m9", "GB", "atm", 51.5, -0.1),
]


def test_velocity_windows(spark):
    got = add_velocity_features(txs(spark, ROWS)).select(
        "event_id", "tx_count_10m", "amount_sum_10m", "tx_count_1h", "amount_max_1h", "tx_count_24h", "amount_mean_24h",
        "distinct_merchants_24h", "distinct_countries_24h", "seconds_since_prev_tx", "amount_vs_card_mean")
    expected = spark.createDataFrame([
        ("t1", 1, 10.0, 1, 10.0, 1, 10.0, 1, 1, None, None),
        ("t2", 2, 30.0, 2, 20.0, 2, 15.0, 2, 1, 300.0, 2.0),
        ("t3", 2, 50.0, 3, 30.0, 3, 20.0, 2, 2, 600.0, 2.0),
        ("t4", 1, 100.0, 2, 100.0, 4, 40.0, 3, 2, 3100.0, 5.0),
        ("u1", 1, 5.0, 1, 5.0, 1, 5.0, 1, 1, None, None),
    ], "event_id string, tx_count_10m long, amount_sum_10m double, tx_count_1h long, amount_max_1h double, tx_count_24h long, "
       "amount_mean_24h double, distinct_merchants_24h int, distinct_countries_24h int, seconds_since_prev_tx double, amount_vs_card_mean double")
    assertDataFrameEqual(got, expected)


def test_distances_use_previous_location_and_card_present_home(spark):
    got = {r.event_id: r for r in add_velocity_features(txs(spark, ROWS)).select("event_id", "km_from_prev_tx", "km_from_home").collect()}
    assert got["t1"].km_from_prev_tx is None and got["t1"].km_from_home is None
    assert got["t2"].km_from_prev_tx == 0.0 and got["t2"].km_from_home == 0.0
    assert got["t3"].km_from_prev_tx is None  # an ecommerce purchase has no place
    assert abs(got["t4"].km_from_prev_tx - 111.19) < 0.1 and abs(got["t4"].km_from_home - 111.19) < 0.1


LABELS = "event_id string, is_fraud boolean, labelled_at timestamp"
NO_USER_EVENTS = "customer_id string, event_time timestamp, event_type string, ip_country string"


def test_features_never_see_the_future(spark):
    """Every feature of a row, the label-derived ones included, is the same computed over all
    events and labels as over only those that existed at the row's time."""
    rows = [*ROWS, ("t5", 7300, "A", "40.00", "m2", "FR", "card_present", 48.0, 2.0)]
    labels = [("t1", True, at(600)), ("t2", False, at(700)), ("t3", True, at(3500)), ("t4", True, at(4100)),
              ("u1", True, at(7500)), ("t5", True, at(7400))]
    def features(upto):
        tx = txs(spark, [r for r in rows if r[1] <= upto])
        lab = spark.createDataFrame([r for r in labels if r[2] <= at(upto)], LABELS)
        return card_features(tx, spark.createDataFrame([], NO_USER_EVENTS), lab).drop("silver_time")
    full = features(10_000)
    for upto in (300, 4000, 7300):
        ids = [r[0] for r in rows if r[1] <= upto]
        assertDataFrameEqual(full.where(F.col("event_id").isin(ids)), features(upto))
    # Not vacuous: t5's hour (14:00) knows t3's fraud on m2, labelled before it began.
    t5 = full.where("event_id = 't5'").first()
    assert (t5.merchant_tx_count_1d, t5.merchant_fraud_share_1d) == (2.0, 0.5) and len(full.columns) >= len(CARD_FEATURES)


def test_customer_windows_span_cards_and_days(spark):
    rows = [("c1", -8 * 86400, "A", "10.00"), ("c2", -2 * 86400, "A", "20.00"), ("c3", -3600, "B", "30.00"),
            ("c4", 0, "A", "60.00")]
    tx = txs(spark, [(e, s, c, a, "m1", "FR", "card_present", 48.0, 2.0) for e, s, c, a in rows])
    tx = tx.withColumn("customer_id", F.lit("cust-1"))   # two cards, one customer
    got = add_customer_features(tx).select("event_id", "customer_tx_count_1d", "customer_tx_count_7d", "customer_tx_count_30d",
                                           "customer_amount_mean_7d", "amount_vs_customer_mean_30d", "hour_of_day", "is_night",
                                           "is_weekend")
    # T0 is Sunday 2026-03-01 12:00 UTC; c1 falls on Saturday 21 February 12:00, c3 at 11:00.
    assertDataFrameEqual(got, spark.createDataFrame([
        ("c1", 1, 1, 1, 10.0, None, 12, 0, 1),
        ("c2", 1, 2, 2, 15.0, 2.0, 12, 0, 0),
        ("c3", 1, 2, 3, 25.0, 2.0, 11, 0, 1),
        ("c4", 2, 3, 4, 110 / 3, 3.0, 12, 0, 1),
    ], "event_id string, customer_tx_count_1d long, customer_tx_count_7d long, customer_tx_count_30d long, "
       "customer_amount_mean_7d double, amount_vs_customer_mean_30d double, hour_of_day long, is_night int, is_weekend int"))


def test_device_features_count_the_customers_transactions_from_that_device_over_30_days(spark):
    """Per customer and device, over [t - 30 d, t] (this row too, every card of the customer): the
    count, and the seconds since the first; null for a row without a device. Another customer's
    use of the same device, and a use 31 days earlier, do not count."""
    rows = [("d1", -33 * 86400, "A", "d-home"), ("d2", -2 * 86400, "A", "d-home"), ("d3", -3600, "B", "d-home"),
            ("d4", -600, "A", None), ("d5", -60, "A", "d-new"), ("d6", 0, "B", "d-new"), ("d7", -30, "X", "d-new")]
    tx = txs(spark, [(e, s, c, "10.00", "m1", "FR", "ecommerce", None, None) for e, s, c, _ in rows])
    tx = (tx.join(spark.createDataFrame([(e, d) for e, _, _, d in rows], "event_id string, device_id string"), "event_id")
          .withColumn("customer_id", F.when(F.col("card_token") == "X", "cust-2").otherwise("cust-1")))   # cards A and B: one customer
    got = add_customer_features(tx).select("event_id", "device_tx_count_30d", "seconds_since_device_first_seen")
    assertDataFrameEqual(got, spark.createDataFrame([
        ("d1", 1, 0.0), ("d2", 1, 0.0), ("d3", 2, 2 * 86400 - 3600.0), ("d4", None, None), ("d5", 1, 0.0), ("d6", 2, 60.0),
        ("d7", 1, 0.0),
    ], "event_id string, device_tx_count_30d long, seconds_since_device_first_seen double"))


def test_merchant_and_terminal_risk_count_frauds_by_when_they_were_labelled(spark):
    """As of the start of each row's hour S: the entity's transactions in [S - w, S) by event
    time, and the fraud share among its transactions first labelled in [S - w, S), here with a
    label delay of days (the generator's is minutes); a label more than 30 days after its
    transaction counts nowhere."""
    H, D = 3600, 86400
    rows = [  # event id, seconds from T0 (12:00), terminal, label given at (seconds), fraud
        ("d", -40 * D, "T1", -37 * D, True),   # labelled before every window
        ("c", -10 * D, "T1", -7 * D, False),   # labelled exactly S - 7 days for S = 12:00: inside
        ("a", -2 * D, None, -D, True),         # no terminal; labelled exactly S - 1 day
        ("e", -D, "T1", 2 * D, False),         # labelled after both hours
        ("b", -3 * H, "T1", 600, True),        # labelled at 12:10: unknown at 12:00, known at 13:00
        ("g", -50 * D, "T1", -25 * D, True),   # an old transaction labelled inside the 30 days
        ("h", -70 * D, "T1", -5 * D, True),    # labelled 65 days late: counts nowhere
        ("q1", 1800, "T1", 3 * D, False),
        ("q2", 5400, None, 4 * D, False),
    ]
    tx = txs(spark, [(e, s, "A", "5.00", "m1", "FR", "card_present", 48.0, 2.0) for e, s, _, _, _ in rows])
    tx = tx.join(spark.createDataFrame([(e, t) for e, _, t, _, _ in rows], "event_id string, terminal_id string"), "event_id")
    labels = spark.createDataFrame([(e, f, at(lt)) for e, _, _, lt, f in rows], LABELS)
    cols = [f"{p}_{m}_{w}" for p in ("merchant", "terminal") for m in ("tx_count", "fraud_share") for w in ("1d", "7d", "30d")]
    got = tx.transform(add_risk_features(labels)).where(F.col("event_id").isin("q1", "q2")).select("event_id", *cols)
    assertDataFrameEqual(got, spark.createDataFrame([
        ("q1", 2, 3, 4, 1.0, 1 / 2, 2 / 3, 2, 2, 3, None, 0.0, 1 / 2),
        ("q2", 2, 4, 5, 1.0, 1.0, 3 / 4, None, None, None, None, None, None),
    ], "event_id string, " + ", ".join(f"{c} {'long' if 'count' in c else 'double'}" for c in cols)))


def test_user_event_anomalies_at_or_before_the_transaction(spark):
    events = spark.createDataFrame([
        ("cust-A", at(-7200), "password_reset", "FR"),   # 2 h before t1: in 24 h, not in 1 h
        ("cust-A", at(-60), "device_change", "RU"),      # 1 min before t1
        ("cust-A", at(0), "payee_add", "RU"),            # same instant as t1: counts
        ("cust-A", at(200), "login", "FR"),              # after t1, before t2
        ("cust-A", at(5000), "password_reset", "FR"),    # after every transaction
    ], "customer_id string, event_time timestamp, event_type string, ip_country string")
    got = txs(spark, ROWS[:2]).transform(add_user_event_features(events)).select(
        "event_id", "risky_user_events_1h", "risky_user_events_24h", "device_changes_24h", "distinct_ip_countries_24h")
    assertDataFrameEqual(got, spark.createDataFrame([("t1", 2, 3, 1, 2), ("t2", 2, 3, 1, 2)],
                                                    "event_id string, risky_user_events_1h long, risky_user_events_24h long, "
                                                    "device_changes_24h long, distinct_ip_countries_24h int"))


def test_market_features(spark):
    ticks = spark.createDataFrame([
        ("k1", at(0), "AAA", 99.0, 101.0, 300, 100),
        ("k2", at(1), "AAA", 100.0, 102.0, 100, 100),
        ("k3", at(2), "AAA", 98.0, 100.0, 100, 300),
    ], "event_id string, event_time timestamp, symbol string, bid double, ask double, bid_size long, ask_size long")
    ticks = ticks.withColumn("kafka_timestamp", F.col("event_time")).withColumn("silver_time", F.col("event_time"))
    got = {r.event_id: r for r in market_features(ticks).collect()}
    import math

    assert got["k1"].ret_1 is None and got["k1"].mid == 100.0 and got["k1"].imbalance == 0.5
    assert math.isclose(got["k2"].ret_1, math.log(101 / 100)) and math.isclose(got["k2"].spread_bps, 2 / 101 * 1e4)
    assert math.isclose(got["k3"].imbalance_mean_5, (0.5 + 0.0 - 0.5) / 3)
    assert got["k3"].ret_5 is None


def test_borrower_features_take_the_latest_snapshot_before_the_application(spark):
    bureau = spark.createDataFrame([
        ("b1", at(0), "c1", 700, 0.2, 0, 1, Decimal("50000.00"), 0.3),
        ("b2", at(100), "c1", 650, 0.5, 1, 2, Decimal("50000.00"), 0.4),
        ("b3", at(300), "c1", 500, 0.9, 3, 5, Decimal("40000.00"), 0.6),   # after the application
    ], "event_id string, event_time timestamp, customer_id string, credit_score int, utilisation double, delinquencies int, "
       "inquiries_6m int, annual_income decimal(18,2), debt_to_income double")
    apps = spark.createDataFrame([("a1", at(200), "c1", Decimal("10000.00"), 36, "car", at(200), at(200))],
                                 "event_id string, event_time timestamp, customer_id string, loan_amount decimal(18,2), "
                                 "term_months int, purpose string, kafka_timestamp timestamp, silver_time timestamp")
    got = borrower_features(apps, bureau).select("event_id", "credit_score", "utilisation", "snapshot_age_s", "loan_to_income")
    assertDataFrameEqual(got, spark.createDataFrame([("a1", 650.0, 0.5, 100.0, 0.2)],
                                                    "event_id string, credit_score double, utilisation double, snapshot_age_s double, loan_to_income double"))


def test_declared_features_are_named_from_the_spec_and_a_bad_spec_is_one_line():
    from lakehouse.gold import declared_spec

    assert declared_spec({"numeric": ["Risk Score", "AGE"], "distances": {"billing-to-terminal": [["B_LAT", "B_LON"], ["lat", "lon"]]}}) == {
        "x_risk_score": ("numeric", "Risk Score"), "x_age": ("numeric", "AGE"),
        "km_billing_to_terminal": ("km", "B_LAT", "B_LON", "lat", "lon")}
    assert declared_spec({"categorical": {"Card Tier": ["gold", "Platinum Plus"]}, "numeric": ["AGE"]}) == {
        "x_age": ("numeric", "AGE"), "x_card_tier_is_gold": ("category", "Card Tier", "gold"),
        "x_card_tier_is_platinum_plus": ("category", "Card Tier", "Platinum Plus")}
    assert declared_spec(None) == declared_spec({"numeric": [], "categorical": {}, "distances": {}}) == {}
    for bad, said in [({"numeric": "AGE"}, "numeric: expected a list"), ({"labels": ["X"]}, "expected numeric, categorical and distances"),
                      ({"categorical": ["TIER"]}, "categorical: expected extras key: [value, ...]"),
                      ({"categorical": {"TIER": []}}, "categorical.TIER: expected a list of values as quoted text"),
                      ({"categorical": {"ZIP": ["01", 2]}}, "categorical.ZIP: expected a list of values as quoted text"),
                      ({"categorical": {"TIER": ["a b", "a-b"]}}, "two declarations give one name"),
                      ({"categorical": {"TIER": ["?"]}}, "'?' gives no feature name"),
                      ({"distances": {"d": [["A", "B"]]}}, "distances.d: expected [[lat, lon], [lat, lon]]"),
                      ({"numeric": ["age", "AGE"]}, "two declarations give one name"), ({"numeric": ["--"]}, "gives no feature name")]:
        with pytest.raises(ValueError, match=re.escape(said)):
            declared_spec(bad)
