"""Gold: point-in-time feature tables from pure transforms shared by streaming and batch.

Every feature of a row is computed from events at or before that row's own event time
(window frames end at the current row), so a training set built from gold never sees the
future. The streaming job calls the same transforms on each micro-batch together with the
recent silver history the windows need.
"""
from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.config import ConfigError

MS = {"10m": 600_000, "1h": 3_600_000, "24h": 86_400_000}
DAYS_MS = {"1d": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}   # customer spending and risk windows
HOME_LOOKBACK_MS = 30 * 86_400_000
# Merchant and terminal risk are features *as of the start of the row's hour* S: the entity's
# transaction count over [S - w, S) for w in 1/7/30 days, and the fraud share among its
# transactions *labelled* in [S - w, S) (label time, not event time), so with labels a week late
# the windows read the week before last, as a fraud analyst would, and no delay is configured.
# Serving reads one snapshot per (entity, hour) computed by the same transform (lakehouse.risk:
# ServedRisk serves them to the decision plans).
RISK_SNAPSHOT_MS = 3_600_000
# A label counts in a risk window only if it came at most this long after its transaction, so the
# history a row's risk needs is bounded: transactions from 30 days + this lag before its hour.
RISK_LABEL_LAG_MS = DAYS_MS["30d"]
RISK_HISTORY_MS = DAYS_MS["30d"] + RISK_LABEL_LAG_MS + RISK_SNAPSHOT_MS
RISK_ENTITIES = {"merchant": "merchant_id", "terminal": "terminal_id"}
RISKY_USER_EVENTS = ("password_reset", "device_change", "payee_add")

# Feature groups: what a use case may switch off in config (ml.features.<use case>.drop_groups),
# for data that cannot fill a group (no user events, one country, no ATM channel).
CARD_FEATURE_GROUPS = {
    "velocity": [*[f"tx_count_{w}" for w in MS], *[f"amount_sum_{w}" for w in MS], *[f"amount_mean_{w}" for w in MS],
                 *[f"amount_max_{w}" for w in MS]],
    "diversity": ["distinct_merchants_24h", "distinct_countries_24h"],
    "timing": ["seconds_since_prev_tx"],
    "geo": ["km_from_prev_tx", "km_from_home"],
    "amount_history": ["amount_vs_card_mean", "amount_zscore"],
    "user_events": ["risky_user_events_1h", "risky_user_events_24h", "device_changes_24h", "distinct_ip_countries_24h"],
    "channel": ["is_ecommerce", "is_atm"],
    "customer_days": [*[f"customer_tx_count_{w}" for w in DAYS_MS], *[f"customer_amount_mean_{w}" for w in DAYS_MS],
                      "amount_vs_customer_mean_30d"],
    "time_of_day": ["hour_of_day", "is_night", "is_weekend"],
    "device": ["device_tx_count_30d", "seconds_since_device_first_seen"],
}
# Label-derived groups: not per-card state but per-entity snapshots (see RISK_SNAPSHOT_MS).
RISK_FEATURE_GROUPS = {
    f"{prefix}_risk": [*[f"{prefix}_tx_count_{w}" for w in DAYS_MS], *[f"{prefix}_fraud_share_{w}" for w in DAYS_MS]]
    for prefix in RISK_ENTITIES
}
CARD_STATE_FEATURES = [f for g in CARD_FEATURE_GROUPS.values() for f in g]   # what the decision path's state computes
CARD_FEATURE_GROUPS = {**CARD_FEATURE_GROUPS, **RISK_FEATURE_GROUPS}
MARKET_FEATURE_GROUPS = {
    "price": ["mid"],
    "returns": ["ret_1", "ret_5", "ret_20"],
    "volatility": ["realised_vol_20", "realised_vol_100"],
    "microstructure": ["spread_bps", "imbalance", "imbalance_mean_5", "imbalance_mean_20"],
}
BORROWER_FEATURE_GROUPS = {
    "bureau": ["credit_score", "utilisation", "delinquencies", "inquiries_6m", "annual_income", "debt_to_income"],
    "snapshot_age": ["snapshot_age_s"],
    "loan": ["loan_to_income", "loan_amount", "term_months"],
}
CARD_FEATURES = [f for g in CARD_FEATURE_GROUPS.values() for f in g]
MARKET_FEATURES = [f for g in MARKET_FEATURE_GROUPS.values() for f in g]
BORROWER_FEATURES = [f for g in BORROWER_FEATURE_GROUPS.values() for f in g]

def _ts_ms(col: str = "event_time"):
    return (F.col(col).cast("double") * 1000).cast("long")


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between two points given as columns."""
    p1, p2 = F.radians(lat1), F.radians(lat2)
    a = F.sin((p2 - p1) / 2) ** 2 + F.cos(p1) * F.cos(p2) * F.sin(F.radians(lon2 - lon1) / 2) ** 2
    return F.lit(2 * 6371.0) * F.asin(F.sqrt(a))


def add_velocity_features(tx: DataFrame) -> DataFrame:
    """Per card: counts and amount sum/mean/max over 10 min, 1 h, 24 h; distinct merchants and
    countries in 24 h; time and distance since the previous transaction; distance from the
    card's home (mean card-present location over the previous 30 days); amount against the
    card's own history."""
    df = tx.withColumn("_ts", _ts_ms()).withColumn("_amt", F.col("amount").cast("double"))
    by_card = Window.partitionBy("card_token").orderBy("_ts")
    cols = []
    for name, span in MS.items():
        w = by_card.rangeBetween(-span, 0)
        cols += [F.count("*").over(w).alias(f"tx_count_{name}"), F.sum("_amt").over(w).alias(f"amount_sum_{name}"),
                 F.avg("_amt").over(w).alias(f"amount_mean_{name}"), F.max("_amt").over(w).alias(f"amount_max_{name}")]
    day = by_card.rangeBetween(-MS["24h"], 0)
    ordered = Window.partitionBy("card_token").orderBy("_ts", "event_id")
    before = ordered.rowsBetween(Window.unboundedPreceding, -1)
    history = by_card.rangeBetween(-HOME_LOOKBACK_MS, -1)
    present = F.col("channel") != "ecommerce"
    df = df.select(
        "*", *cols,
        F.size(F.collect_set("merchant_id").over(day)).alias("distinct_merchants_24h"),
        F.size(F.collect_set("merchant_country").over(day)).alias("distinct_countries_24h"),
        ((F.col("_ts") - F.lag("_ts").over(ordered)) / 1000.0).alias("seconds_since_prev_tx"),
        F.last("lat", ignorenulls=True).over(before).alias("_prev_lat"),
        F.last("lon", ignorenulls=True).over(before).alias("_prev_lon"),
        F.avg(F.when(present, F.col("lat"))).over(history).alias("_home_lat"),
        F.avg(F.when(present, F.col("lon"))).over(history).alias("_home_lon"),
        F.avg("_amt").over(history).alias("_hist_mean"),
        F.stddev("_amt").over(history).alias("_hist_sd"),
    )
    return (df
            .withColumn("km_from_prev_tx", haversine_km(F.col("_prev_lat"), F.col("_prev_lon"), F.col("lat"), F.col("lon")))
            .withColumn("km_from_home", haversine_km(F.col("_home_lat"), F.col("_home_lon"), F.col("lat"), F.col("lon")))
            .withColumn("amount_vs_card_mean", F.try_divide(F.col("_amt"), F.col("_hist_mean")))   # null over a zero mean
            .withColumn("amount_zscore", F.when(F.col("_hist_sd") > 0, (F.col("_amt") - F.col("_hist_mean")) / F.col("_hist_sd")))
            .withColumn("is_ecommerce", (F.col("channel") == "ecommerce").cast("int"))
            .withColumn("is_atm", (F.col("channel") == "atm").cast("int"))
            .drop("_prev_lat", "_prev_lon", "_home_lat", "_home_lon", "_hist_mean", "_hist_sd", "_amt"))


def add_customer_features(tx: DataFrame) -> DataFrame:
    """Per customer (every card of theirs): transaction count and mean amount over 1, 7 and 30
    days, the amount against the customer's mean over the previous 30 days; and the time of day
    (UTC hour, night 00-06, weekend). The device the transaction came from (its ``device_id``,
    null for most card-present payments): how many of the customer's transactions in the last
    30 days came from it (this one included: 1 for a device never seen), and the seconds since
    the first of them (0 for a new device); both null without a device."""
    if "device_id" not in tx.columns:
        tx = tx.withColumn("device_id", F.lit(None).cast("string"))
    df = tx.withColumn("_ts", _ts_ms()).withColumn("_amt", F.col("amount").cast("double"))
    by_customer = Window.partitionBy("customer_id").orderBy("_ts")
    cols = []
    for name, span in DAYS_MS.items():
        w = by_customer.rangeBetween(-span, 0)
        cols += [F.count("*").over(w).alias(f"customer_tx_count_{name}"), F.avg("_amt").over(w).alias(f"customer_amount_mean_{name}")]
    device = Window.partitionBy("customer_id", "device_id").orderBy("_ts").rangeBetween(-DAYS_MS["30d"], 0)
    known = F.col("device_id").isNotNull()
    cols += [F.when(known, F.count("*").over(device)).alias("device_tx_count_30d"),
             F.when(known, (F.col("_ts") - F.min("_ts").over(device)) / 1000.0).alias("seconds_since_device_first_seen")]
    hour = F.pmod(F.floor(F.col("_ts") / MS["1h"]), 24)
    weekday = F.pmod(F.floor(F.col("_ts") / MS["24h"]) + 3, 7)   # 1970-01-01 was a Thursday; Monday is 0
    return (df.select("*", *cols, F.avg("_amt").over(by_customer.rangeBetween(-DAYS_MS["30d"], -1)).alias("_cust_mean"))
            .withColumn("amount_vs_customer_mean_30d", F.try_divide(F.col("_amt"), F.col("_cust_mean")))
            .withColumn("hour_of_day", hour)
            .withColumn("is_night", (hour < 6).cast("int"))
            .withColumn("is_weekend", (weekday >= 5).cast("int"))
            .drop("_cust_mean", "_amt", "_ts"))


def first_labels(labels: DataFrame) -> DataFrame:
    """(event_id, _label_ms, _fraud_ms): when each transaction was first labelled, and first
    labelled fraud (null if never). A later label that reverses a fraud is not subtracted from
    the risk features (they count frauds reported)."""
    return labels.groupBy("event_id").agg(
        F.min(_ts_ms("labelled_at")).alias("_label_ms"),
        F.min(F.when(F.col("is_fraud"), _ts_ms("labelled_at"))).alias("_fraud_ms"))


def entity_risk(transactions: DataFrame, labels: DataFrame, column: str, prefix: str):
    """A transform of anchors (``_key``, ``_asof`` in epoch ms) adding, per anchor and window w of
    DAYS_MS: the entity's transaction count over ``[asof - w, asof)`` by event time, and the share
    of fraud among its transactions whose first label came in ``[asof - w, asof)`` (null when none
    did). Labels later than RISK_LABEL_LAG_MS after their transaction count nowhere; a label timed
    before its transaction counts at the transaction's time.

    One running sum per entity over +1/-1 steps: a transaction enters its count at its event time
    and leaves w later; its label enters the labelled count at the label time and leaves w later,
    and a fraud label the same for the fraud count. An anchor sorts before the steps at its own
    instant, so a step counts only strictly before it."""
    lag = F.lit(RISK_LABEL_LAG_MS)
    tx = (transactions.where(F.col(column).isNotNull())
          .select(F.col(column).cast("string").alias("_key"), "event_id", _ts_ms().alias("_e"))
          .join(first_labels(labels), "event_id", "left")
          .withColumn("_l", F.when(F.col("_label_ms") <= F.col("_e") + lag, F.greatest("_label_ms", "_e")))
          .withColumn("_f", F.when(F.col("_fraud_ms") <= F.col("_e") + lag, F.greatest("_fraud_ms", "_e"))))
    names = list(DAYS_MS)

    def step(t, values: dict):
        """A step at time ``t`` adding ``values[(counter, w)]`` (counters n, m, k; 0 if absent)."""
        return F.struct(t.alias("_t"), *[F.lit(values.get((c, w), 0)).alias(f"_{c}{w}") for c in "nmk" for w in names])

    steps = [step(F.col("_e"), {("n", w): 1 for w in names})]
    steps += [step(F.col("_e") + span, {("n", w): -1}) for w, span in DAYS_MS.items()]
    steps.append(step(F.col("_l"), {("m", w): 1 for w in names}))
    steps += [step(F.col("_l") + span, {("m", w): -1}) for w, span in DAYS_MS.items()]
    steps.append(step(F.col("_f"), {("k", w): 1 for w in names}))
    steps += [step(F.col("_f") + span, {("k", w): -1}) for w, span in DAYS_MS.items()]
    counters = [f"_{c}{w}" for c in "nmk" for w in names]
    deltas = (tx.select("_key", F.explode(F.array(*steps)).alias("s")).select("_key", "s.*")
              .where(F.col("_t").isNotNull()).withColumn("_anchor", F.lit(0)))

    def transform(anchors: DataFrame) -> DataFrame:
        a = anchors.select("_key", F.col("_asof").alias("_t"), *[F.lit(0).alias(c) for c in counters], F.lit(1).alias("_anchor"))
        order = Window.partitionBy("_key").orderBy("_t", F.desc("_anchor")).rowsBetween(Window.unboundedPreceding, 0)
        summed = deltas.unionByName(a).select(
            "_key", "_t", "_anchor", *[F.sum(c).over(order).alias(c) for c in counters]).where(F.col("_anchor") == 1)
        out = [F.col(f"_n{w}").alias(f"{prefix}_tx_count_{w}") for w in names]
        out += [F.when(F.col(f"_m{w}") > 0, F.least(F.col(f"_k{w}") / F.col(f"_m{w}"), F.lit(1.0))).alias(f"{prefix}_fraud_share_{w}")
                for w in names]
        return summed.select("_key", F.col("_t").alias("_asof"), *out).dropDuplicates(["_key", "_asof"])

    return transform


def risk_asof(col: str = "event_time"):
    """The snapshot time of a row's risk features: the start of its hour, in epoch ms."""
    return F.floor(_ts_ms(col) / RISK_SNAPSHOT_MS) * RISK_SNAPSHOT_MS


def add_risk_features(labels: DataFrame, history: DataFrame | None = None):
    """Merchant and terminal risk of each transaction as of the start of its hour (see
    ``entity_risk``), from ``history`` (default: the transactions themselves) and the labels."""

    def transform(tx: DataFrame) -> DataFrame:
        hist = tx if history is None else history
        out = tx.withColumn("_asof", risk_asof())
        for prefix, column in RISK_ENTITIES.items():
            anchors = out.where(F.col(column).isNotNull()).select(F.col(column).cast("string").alias("_key"), "_asof").distinct()
            risk = anchors.transform(entity_risk(hist, labels, column, prefix)).withColumnRenamed("_key", column)
            out = out.join(risk, [column, "_asof"], "left")
        return out.drop("_asof")

    return transform


def entity_history(batch: DataFrame):
    """A transform of transactions keeping those at any of ``batch``'s merchants or terminals:
    the history the merchant and terminal risk of ``batch``'s rows count."""

    def transform(history: DataFrame) -> DataFrame:
        merchants = batch.select("merchant_id").distinct()
        terminals = batch.where(F.col("terminal_id").isNotNull()).select("terminal_id").distinct()
        return (history.join(F.broadcast(merchants), "merchant_id", "left_semi")
                .unionByName(history.join(F.broadcast(terminals), "terminal_id", "left_semi"))
                .dropDuplicates(["event_id"]))

    return transform


def add_user_event_features(user_events: DataFrame):
    """Per customer, recent user-event anomalies at or before each transaction: risky events
    (password reset, device change, new payee) in 1 h and 24 h, device changes and distinct
    login countries in 24 h."""

    def transform(tx: DataFrame) -> DataFrame:
        events = user_events.select(
            "customer_id", _ts_ms().alias("_ts"), F.lit(None).cast("string").alias("_tx"),
            F.col("event_type").isin(*RISKY_USER_EVENTS).cast("int").alias("_risky"),
            (F.col("event_type") == "device_change").cast("int").alias("_device"),
            F.col("ip_country").alias("_country"))
        anchors = tx.select("customer_id", _ts_ms().alias("_ts"), F.col("event_id").alias("_tx"),
                            F.lit(0).alias("_risky"), F.lit(0).alias("_device"), F.lit(None).cast("string").alias("_country"))
        by_customer = Window.partitionBy("customer_id").orderBy("_ts")
        hour, day = by_customer.rangeBetween(-MS["1h"], 0), by_customer.rangeBetween(-MS["24h"], 0)
        counted = events.unionByName(anchors).select(
            "_tx",
            F.sum("_risky").over(hour).alias("risky_user_events_1h"),
            F.sum("_risky").over(day).alias("risky_user_events_24h"),
            F.sum("_device").over(day).alias("device_changes_24h"),
            F.size(F.collect_set("_country").over(day)).alias("distinct_ip_countries_24h"),
        ).where(F.col("_tx").isNotNull())
        return tx.join(counted.withColumnRenamed("_tx", "event_id"), "event_id", "left")

    return transform


CARD_KEEP = ["event_id", "event_time", "card_token", "customer_id", "merchant_id", "terminal_id", "mcc", "amount", "channel",
             "kafka_timestamp", "silver_time"]


def card_features(transactions: DataFrame, user_events: DataFrame, labels: DataFrame | None,
                  risk_history: DataFrame | None = None) -> DataFrame:
    """gold.card_features: one row per transaction with its identifiers, amount and features.
    ``labels`` (silver.tx_labels) feed the merchant and terminal risk, counted over
    ``risk_history`` (default: the given transactions). With ``labels`` None the risk columns
    are left for the caller to add (``lakehouse.risk.RiskSnapshots``)."""
    if "terminal_id" not in transactions.columns:
        transactions = transactions.withColumn("terminal_id", F.lit(None).cast("string"))
    feats = (add_velocity_features(transactions).transform(add_customer_features)
             .transform(add_user_event_features(user_events)))
    if labels is None:
        return feats.select(*CARD_KEEP, *[F.col(c).cast("double") for c in CARD_STATE_FEATURES])
    feats = feats.transform(add_risk_features(labels, transactions if risk_history is None else risk_history))
    return feats.select(*CARD_KEEP, *[F.col(c).cast("double") for c in CARD_FEATURES])


# The user's own columns as features (``features.transactions`` in the config): values a producer
# or the loader kept in silver.transactions.extras, typed here. Row-local, so gold, the decision
# path and training compute them with the one expression below.
DECLARED_SETTING = "features.transactions"
DECLARED_GROUP = "declared"
_SILVER_COORDINATES = ("lat", "lon")


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()


def declared_spec(spec) -> dict[str, tuple]:
    """The declared features of a spec ``{numeric: [extras key, ...], categorical: {extras key:
    [value, ...]}, distances: {name: [[lat, lon], [lat, lon]]}}``, checked, by feature name:
    ``x_<key>`` -> ("numeric", key), the extra as a number (null when absent or not a number);
    ``x_<key>_is_<value>`` -> ("category", key, value), 1 when the extra is that text, 0 when it
    is another, null when absent (one indicator per listed value; an unlisted value is 0 in every
    one); ``km_<name>`` -> ("km", lat1, lon1, lat2, lon2), the great-circle distance between two
    points, each a pair of extras keys or silver's own ``lat``/``lon``. A malformed spec raises
    ConfigError (a ValueError) naming the setting."""
    spec = spec or {}
    if not isinstance(spec, dict) or set(spec) - {"numeric", "categorical", "distances"}:
        raise ConfigError(f"{DECLARED_SETTING}: expected numeric, categorical and distances, got {spec!r}")
    numeric, categorical, distances = spec.get("numeric") or [], spec.get("categorical") or {}, spec.get("distances") or {}
    if not isinstance(numeric, list):
        raise ConfigError(f"{DECLARED_SETTING}.numeric: expected a list of extras keys, got {numeric!r}")
    if not isinstance(categorical, dict):
        raise ConfigError(f"{DECLARED_SETTING}.categorical: expected extras key: [value, ...], got {categorical!r}")
    for key, values in categorical.items():
        # Extras are text: a value YAML read as a number or a boolean (01, yes) would never match.
        if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
            raise ConfigError(f"{DECLARED_SETTING}.categorical.{key}: expected a list of values as quoted text, got {values!r}")
    if not isinstance(distances, dict):
        raise ConfigError(f"{DECLARED_SETTING}.distances: expected name: [[lat, lon], [lat, lon]], got {distances!r}")
    empty = [k for k in [*numeric, *categorical, *distances, *[v for vs in categorical.values() for v in vs]] if not _slug(k)]
    if empty:
        raise ConfigError(f"{DECLARED_SETTING}: '{empty[0]}' gives no feature name (letters or digits needed)")
    out: dict[str, tuple] = {f"x_{_slug(key)}": ("numeric", str(key)) for key in numeric}
    for key, values in categorical.items():
        out.update({f"x_{_slug(key)}_is_{_slug(v)}": ("category", str(key), v) for v in values})
    for name, points in distances.items():
        if not (isinstance(points, list) and len(points) == 2 and all(isinstance(p, list) and len(p) == 2 for p in points)):
            raise ConfigError(f"{DECLARED_SETTING}.distances.{name}: expected [[lat, lon], [lat, lon]], got {points!r}")
        out[f"km_{_slug(name)}"] = ("km", *[str(c) for p in points for c in p])
    clash = [n for n in out if n in CARD_FEATURES or n in CARD_KEEP]
    if clash or len(out) != len(numeric) + sum(len(v) for v in categorical.values()) + len(distances):
        raise ConfigError(f"{DECLARED_SETTING}: feature names clash: {', '.join(clash) or 'two declarations give one name'}")
    return out


def declared_features(spec) -> dict[str, Column]:
    """Feature name -> its column over a silver transaction row (``declared_spec``)."""

    def number(col: str) -> Column:
        return F.col(col).cast("double") if col in _SILVER_COORDINATES else F.col("extras").getItem(col).try_cast("double")

    def category(key: str, value: str) -> Column:
        text = F.col("extras").getItem(key)
        return F.when(text.isNotNull(), (text == F.lit(value)).cast("double"))

    def column(d: tuple) -> Column:
        if d[0] == "numeric":
            return number(d[1])
        if d[0] == "category":
            return category(d[1], d[2])
        return haversine_km(*[number(c) for c in d[1:]])

    return {name: column(d) for name, d in declared_spec(spec).items()}


MARKET_KEEP = ["event_id", "event_time", "symbol", "kafka_timestamp", "silver_time"]


def market_features(ticks: DataFrame) -> DataFrame:
    """gold.market_features: per tick, returns over 1/5/20 ticks, realised volatility over 20
    and 100 ticks, spread and order-flow imbalance (with its recent means)."""
    w = Window.partitionBy("symbol").orderBy("_ts", "event_id")
    df = ticks.withColumn("_ts", _ts_ms()).withColumn("mid", (F.col("bid") + F.col("ask")) / 2)
    df = df.withColumn("ret_1", F.log(F.col("mid") / F.lag("mid", 1).over(w)))
    df = df.select(
        "*",
        F.log(F.col("mid") / F.lag("mid", 5).over(w)).alias("ret_5"),
        F.log(F.col("mid") / F.lag("mid", 20).over(w)).alias("ret_20"),
        F.stddev("ret_1").over(w.rowsBetween(-19, 0)).alias("realised_vol_20"),
        F.stddev("ret_1").over(w.rowsBetween(-99, 0)).alias("realised_vol_100"),
        ((F.col("ask") - F.col("bid")) / F.col("mid") * 1e4).alias("spread_bps"),
        ((F.col("bid_size") - F.col("ask_size")) / (F.col("bid_size") + F.col("ask_size"))).alias("imbalance"),
    )
    df = df.select("*", F.avg("imbalance").over(w.rowsBetween(-4, 0)).alias("imbalance_mean_5"),
                   F.avg("imbalance").over(w.rowsBetween(-19, 0)).alias("imbalance_mean_20"))
    return df.select(*MARKET_KEEP, *[F.col(c).cast("double") for c in MARKET_FEATURES])


BORROWER_KEEP = ["event_id", "event_time", "customer_id", "purpose", "kafka_timestamp", "silver_time"]


def borrower_features(applications: DataFrame, bureau: DataFrame) -> DataFrame:
    """gold.borrower_features: per loan application, the borrower's latest bureau snapshot at
    or before the application, its age, and the loan against income."""
    attrs = ["credit_score", "utilisation", "delinquencies", "inquiries_6m", "annual_income", "debt_to_income"]
    snaps = bureau.select("customer_id", _ts_ms().alias("_ts"), F.lit(0).alias("_order"), F.lit(None).cast("string").alias("_app"),
                          _ts_ms().alias("_ts_snap"), *attrs)
    apps = applications.select("customer_id", _ts_ms().alias("_ts"), F.lit(1).alias("_order"), F.col("event_id").alias("_app"),
                               F.lit(None).cast("long").alias("_ts_snap"), *[F.lit(None).cast(bureau.schema[a].dataType).alias(a) for a in attrs])
    w = Window.partitionBy("customer_id").orderBy("_ts", "_order").rowsBetween(Window.unboundedPreceding, 0)
    asof = snaps.unionByName(apps, allowMissingColumns=True).select(
        "_app", "_ts", *[F.last(a, ignorenulls=True).over(w).alias(a) for a in attrs + ["_ts_snap"]]
    ).where(F.col("_app").isNotNull())
    joined = applications.join(asof.withColumnRenamed("_app", "event_id"), "event_id", "left")
    joined = joined.withColumn("snapshot_age_s", (F.col("_ts") - F.col("_ts_snap")) / 1000.0)
    joined = joined.withColumn("loan_to_income", F.col("loan_amount").cast("double") / F.col("annual_income").cast("double"))
    return joined.select(*BORROWER_KEEP, *[F.col(c).cast("double") for c in BORROWER_FEATURES])
