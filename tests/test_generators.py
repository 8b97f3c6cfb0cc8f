"""The generators: determinism, valid PANs, fractions within tolerance, delayed labels,
learnable planted signals, and truth that agrees with the events."""
import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from lakehouse.generators.credit import true_pd
from lakehouse.generators.market import label_of
from lakehouse.generators.noise import KINDS, NoiseConfig, NoiseInjector
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.generators.world import build_world, luhn_valid
from lakehouse.schemas.events import MESSAGE_SCHEMAS


def take(cfg: GeneratorConfig, n: int):
    return list(itertools.islice(generate(cfg), n))


def events_of(emitted, topic):
    return [e.event for e in emitted if e.topic == topic]


def ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_same_seed_same_events_and_other_seed_other_events():
    a = [(e.topic, e.key, e.event) for e in take(GeneratorConfig(seed=5), 4000)]
    b = [(e.topic, e.key, e.event) for e in take(GeneratorConfig(seed=5), 4000)]
    c = [(e.topic, e.key, e.event) for e in take(GeneratorConfig(seed=6), 4000)]
    assert a == b
    assert a != c
    assert {t for t, _, _ in a} >= {"transactions", "market_ticks", "user_events", "bureau_updates", "truth.fraud"}


def test_every_pan_is_luhn_valid_and_unique_per_card():
    world = build_world(3)
    pans = [card.pan for c in world.customers for card in c.cards]
    assert all(luhn_valid(p) and len(p) == 16 for p in pans)
    assert len(set(pans)) == len(pans)
    txs = events_of(take(GeneratorConfig(seed=3, streams=("transactions",)), 20000), "transactions")
    assert len(txs) > 5000 and all(luhn_valid(t["card_pan"]) for t in txs)
    assert not luhn_valid("4111111111111112")


def test_messages_match_their_schemas():
    emitted = take(GeneratorConfig(seed=4, label_delay_s=1.0), 20000)
    for topic, schema in MESSAGE_SCHEMAS.items():
        events = events_of(emitted, topic)
        assert events, topic
        # Every field in schema order; the generator has nothing for a source's extras.
        assert all(list(e) == [f for f in schema.fieldNames() if f != "extras"] for e in events), topic
    tx = events_of(emitted, "transactions")[0]
    assert tx["event_time"].endswith("Z") and len(tx["event_time"]) == 24 and tx["amount"].count(".") == 1


@pytest.mark.parametrize("target", [0.005, 0.02])
def test_fraud_rate_within_tolerance(target):
    # A low event-time rate keeps multi-minute scenarios short against the window.
    cfg = GeneratorConfig(seed=8, rate=4.0, streams=("transactions",), fraud_rate=target)
    truth = events_of(take(cfg, 160000), "truth.fraud")
    rate = sum(t["is_fraud"] for t in truth) / len(truth)
    assert abs(rate - target) < 0.3 * target, rate
    scenarios = Counter(t["scenario"] for t in truth if t["is_fraud"])
    assert set(scenarios) >= {"card_testing", "compromised_terminal", "account_takeover", "impossible_travel", "high_amount"}


def test_labels_arrive_after_their_transactions_and_match_truth():
    emitted = take(GeneratorConfig(seed=9, rate=50.0, label_delay_s=20.0), 30000)
    position = {}
    for i, e in enumerate(emitted):
        if e.topic == "transactions":
            position[e.event["event_id"]] = (i, ts(e.event["event_time"]))
    truth = {t["event_id"]: t["is_fraud"] for t in events_of(emitted, "truth.fraud")}
    labels = [(i, e.event) for i, e in enumerate(emitted) if e.topic == "tx_labels"]
    assert len(labels) > 1000
    for i, label in labels:
        tx_index, tx_time = position[label["event_id"]]
        assert i > tx_index and ts(label["labelled_at"]) > tx_time
        assert label["is_fraud"] == truth[label["event_id"]]
    assert set(position) <= set(truth)  # every transaction has its truth


def test_noise_fractions_and_what_each_kind_does():
    cfg = GeneratorConfig(seed=10, streams=("transactions", "market_ticks", "user_events", "bureau_updates"))
    clean = [e for e in take(cfg, 80000) if not e.is_truth]
    noise = NoiseConfig.parse("all=0.02,late_by_s=3600")
    msgs = list(NoiseInjector(noise, 10).apply(iter(clean)))
    n = len(clean)
    counts = Counter(m.noise for m in msgs)
    for kind in KINDS:
        assert abs(counts[kind] / n - 0.02) < 0.004, (kind, counts[kind] / n)
    assert counts["duplicate_copy"] == counts["duplicate"]
    assert len(msgs) == n + counts["duplicate"]
    original = {e.event["event_id"]: e for e in clean}
    order = {m.event_id: i for i, m in enumerate(msgs) if m.noise != "duplicate_copy"}
    for i, m in enumerate(msgs):
        if m.noise == "malformed":
            with pytest.raises(json.JSONDecodeError):
                json.loads(m.value)
            continue
        body = json.loads(m.value)
        src = original[m.event_id].event
        if m.noise == "missing_field":
            assert len(body) == len(src) - 1 and set(body) < set(src)
        elif m.noise == "mistyped":
            changed = [k for k in src if body.get(k) != src[k]]
            assert len(changed) == 1 and body[changed[0]] in ("n/a", "not-a-time", "maybe")
        elif m.noise == "late":
            assert ts(src["event_time"]) - ts(body["event_time"]) == pytest.approx(3600, abs=0.01)
        elif m.noise == "unknown_field":
            assert set(body) - set(src) == {"x_schema_v2"}
        elif m.noise == "duplicate_copy":
            assert i > order[m.event_id] and m.value == json.dumps(src, separators=(",", ":")).encode()
        else:
            assert body == src
    ooo = [m for m in msgs if m.noise == "out_of_order"]
    later_sent_earlier = sum(1 for m in ooo if any(msgs[j].at > m.at for j in range(max(0, order[m.event_id] - 3), order[m.event_id])))
    assert later_sent_earlier > 0.9 * len(ooo)


def test_bad_noise_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown noise kind 'malformd'"):
        NoiseConfig.parse("malformd=0.1")
    with pytest.raises(ValueError, match="add up to at most 1"):
        NoiseConfig.parse("all=0.2")


def test_trading_signal_is_learnable_and_truth_matches_ticks():
    emitted = take(GeneratorConfig(seed=12, streams=("market_ticks",)), 120000)
    ticks = {e.event["event_id"]: e.event for e in emitted if e.topic == "market_ticks"}
    truth = [t for t in events_of(emitted, "truth.trading")]
    by_symbol = {}
    for e in emitted:
        if e.topic == "market_ticks":
            by_symbol.setdefault(e.event["symbol"], []).append(e.event)
    nxt = {}
    for seq in by_symbol.values():
        for a, b in zip(seq, seq[1:]):
            nxt[a["event_id"]] = b
    for t in truth:
        assert t["label"] == label_of(t["next_return"], 2e-4)
        assert math.isclose(t["p_down"] + t["p_flat"] + t["p_up"], 1.0, abs_tol=1e-9)
        a, b = ticks[t["event_id"]], nxt[t["event_id"]]
        observed = math.log(((b["bid"] + b["ask"]) / 2) / ((a["bid"] + a["ask"]) / 2))
        assert abs(observed - t["next_return"]) < 2e-4  # prices are rounded to the tick size
    x = np.array([[(ticks[t["event_id"]]["bid_size"] - ticks[t["event_id"]]["ask_size"]) /
                   (ticks[t["event_id"]]["bid_size"] + ticks[t["event_id"]]["ask_size"])] for t in truth])
    y = np.array([t["label"] for t in truth])
    cut = int(len(y) * 0.7)
    model = LogisticRegression(max_iter=500).fit(x[:cut], y[:cut])
    prior = np.tile([np.mean(y[:cut] == c) for c in model.classes_], (len(y) - cut, 1))
    model_loss = log_loss(y[cut:], model.predict_proba(x[cut:]), labels=model.classes_)
    prior_loss = log_loss(y[cut:], prior, labels=model.classes_)
    assert model_loss < prior_loss - 0.005, (model_loss, prior_loss)


def test_loan_pd_truth_follows_the_bureau_stream_and_is_learnable():
    emitted = take(GeneratorConfig(seed=13, streams=("bureau_updates", "loan_applications"), n_customers=800), 60000)
    latest, rows = {}, []
    truth = {t["event_id"]: t for t in events_of(emitted, "truth.loan_pd")}
    for e in emitted:
        if e.topic == "bureau_updates":
            latest[e.event["customer_id"]] = e.event
        elif e.topic == "loan_applications":
            b = latest[e.event["customer_id"]]
            app = e.event
            expected = true_pd(b["credit_score"], b["utilisation"], b["delinquencies"], b["inquiries_6m"],
                               float(b["annual_income"]), b["debt_to_income"], float(app["loan_amount"]), app["term_months"])
            t = truth[app["event_id"]]
            assert t["true_pd"] == expected
            rows.append(([b["credit_score"], b["utilisation"], b["delinquencies"], b["inquiries_6m"],
                          math.log(float(b["annual_income"])), b["debt_to_income"], math.log(float(app["loan_amount"]))],
                         t["defaulted"], t["true_pd"]))
    assert len(rows) > 1500
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    cut = int(len(y) * 0.7)
    model = LogisticRegression(max_iter=2000).fit((x[:cut] - x[:cut].mean(0)) / x[:cut].std(0), y[:cut])
    auc = roc_auc_score(y[cut:], model.predict_proba((x[cut:] - x[:cut].mean(0)) / x[:cut].std(0))[:, 1])
    ceiling = roc_auc_score(y[cut:], [r[2] for r in rows[cut:]])
    assert 0.65 < auc <= ceiling + 0.02, (auc, ceiling)


def test_fraud_is_learnable_from_event_fields():
    emitted = take(GeneratorConfig(seed=14, rate=20.0, streams=("transactions",), fraud_rate=0.02), 120000)
    truth = {t["event_id"]: t for t in events_of(emitted, "truth.fraud")}
    world = build_world(14)
    home_device = {c.customer_id: c.device_id for c in world.customers}
    txs = events_of(emitted, "transactions")
    x = np.array([[math.log(float(t["amount"])), t["channel"] == "ecommerce", float(t["amount"]) < 5,
                   t["device_id"] is not None and t["device_id"] != home_device[t["customer_id"]],
                   t["mcc"] in ("5732", "5944", "5967")] for t in txs], dtype=float)
    y = np.array([truth[t["event_id"]]["is_fraud"] for t in txs])
    cut = int(len(y) * 0.7)
    model = LogisticRegression(max_iter=1000).fit(x[:cut], y[:cut])
    auc = roc_auc_score(y[cut:], model.predict_proba(x[cut:])[:, 1])
    ceiling = roc_auc_score(y[cut:], [truth[t["event_id"]]["fraud_probability"] for t in txs[cut:]])
    assert 0.75 < auc < ceiling, (auc, ceiling)


def test_drift_doubles_amounts_and_adds_atm_cashouts_only_from_drift_at():
    """The same seed with and without drift: identical before ``drift_at``; after it every
    amount is doubled, and (with atm_cashout) a new fraud scenario appears, only at ATMs."""
    base = dict(seed=12, rate=40.0, streams=("transactions",), fraud_rate=0.05, start=0.0)
    cut = 60.0
    plain = take(GeneratorConfig(**base), 12000)
    amounts = take(GeneratorConfig(**base, drift=("amounts",), drift_at=cut), 12000)
    before = [(e.event["event_id"], e.event["amount"]) for e in plain if e.topic == "transactions"]
    moved = {e.event["event_id"]: e.event["amount"] for e in amounts if e.topic == "transactions"}
    times = {e.event["event_id"]: ts(e.event["event_time"]) for e in plain if e.topic == "transactions"}
    early = [(i, a) for i, a in before if times[i] < cut]
    assert len(early) > 1000 and all(moved[i] == a for i, a in early)
    late = [(i, float(a)) for i, a in before if times[i] >= cut]
    assert len(late) > 1000
    assert all(abs(float(moved[i]) - 2 * a) <= 0.011 for i, a in late if a >= 0.01)

    mixed = take(GeneratorConfig(**base, drift=("atm_cashout",), drift_at=cut), 12000)
    truth = {e.event["event_id"]: e.event for e in mixed if e.topic == "truth.fraud"}
    txs = {e.event["event_id"]: e.event for e in mixed if e.topic == "transactions"}
    cashouts = [i for i, t in truth.items() if t["scenario"] == "atm_cashout"]
    assert len(cashouts) > 20
    assert all(txs[i]["channel"] == "atm" and ts(txs[i]["event_time"]) >= cut for i in cashouts)
    assert not [t for t in truth.values() if t["scenario"] == "atm_cashout" and ts(txs[t["event_id"]]["event_time"]) < cut]
    with pytest.raises(ValueError, match="unknown drift 'prices'"):
        GeneratorConfig(drift=("prices",)).validate()


def test_world_seed_keeps_the_cards_and_changes_the_event_ids():
    a = events_of(take(GeneratorConfig(seed=30, streams=("transactions",)), 3000), "transactions")
    b = events_of(take(GeneratorConfig(seed=31, world_seed=30, streams=("transactions",)), 3000), "transactions")
    assert {e["card_pan"] for e in b} <= {c.pan for cust in build_world(30, 2000, 800).customers for c in cust.cards}
    assert not {e["event_id"] for e in a} & {e["event_id"] for e in b}
