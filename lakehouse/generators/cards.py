"""Card transactions, the user events of the same customers, and delayed fraud labels.

Every transaction carries a known fraud probability ``p``, set by the situation it was made
in (normal spending, or a step of a fraud scenario); ``is_fraud`` is drawn from it. ``p`` is
the best any model could score, so the truth table gives each use case its ceiling.

Scenarios: card-testing bursts of small card-not-present amounts; a compromised terminal used
on several cards; account takeover preceded by user-event anomalies (password reset, new
device, new payee, foreign login); impossible travel; high-amount outliers.

Drift (``CardStreamConfig.drift`` from ``drift_at`` on), for proving that monitoring and
retraining notice a changed world: ``amounts`` multiplies every amount by ``DRIFT_AMOUNT_SCALE``
(prices moved); ``atm_cashout`` adds a fraud scenario the earlier data never had: a skimmed
card emptied at ATMs in its home city, a few withdrawals minutes apart, at amounts usual for
the card, so a model trained before it has seen ATM withdrawals only as legitimate.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator

from lakehouse.generators.base import Emitted, Scheduler, iso_ms
from lakehouse.generators.world import CITIES, HIGH_RISK_MCCS, MCCS, World

CHANNELS = ("card_present", "ecommerce", "atm")
USER_EVENT_TYPES = ("login", "page_view", "page_view", "page_view", "logout")

# scenario -> (relative weight, fraud probability of each of its transactions)
SCENARIOS = {
    "card_testing": (0.25, 0.92),
    "compromised_terminal": (0.20, 0.60),
    "account_takeover": (0.20, 0.95),
    "impossible_travel": (0.15, 0.85),
    "high_amount": (0.20, 0.70),
}
BASE_FRAUD_P = 0.0003  # background fraud among normal-looking transactions
DRIFTS = ("amounts", "atm_cashout")
DRIFT_AMOUNT_SCALE = 2.0
# atm_cashout, once drifted in: its share of the scenario starts, and its fraud probability
DRIFT_SCENARIO = ("atm_cashout", 1.0, 0.9)


@dataclass
class CardStreamConfig:
    tx_rate: float = 100.0            # transactions per simulated second
    user_event_rate: float = 20.0     # background user events per simulated second
    fraud_rate: float = 0.005         # target share of fraudulent transactions
    label_delay_s: float = 300.0      # median delay of a label after its transaction
    label_delay_spread: float = 0.5   # lognormal sigma of that delay
    drift: tuple[str, ...] = ()       # kinds of DRIFTS switched on from drift_at
    drift_at: float = 0.0             # epoch seconds of event time


def _expected_per_scenario() -> tuple[float, float]:
    """(transactions, frauds) one scenario start adds on average."""
    mean_tx = {"card_testing": 5.5, "compromised_terminal": 4.5, "account_takeover": 2.0,
               "impossible_travel": 2.0, "high_amount": 1.0}
    # impossible travel: one normal home transaction, then the far one (fraud).
    frauds = {s: (1.0 if s == "impossible_travel" else mean_tx[s]) * p for s, (_, p) in SCENARIOS.items()}
    weights = {s: w for s, (w, _) in SCENARIOS.items()}
    total = sum(weights.values())
    k = sum(weights[s] * mean_tx[s] for s in SCENARIOS) / total
    f = sum(weights[s] * frauds[s] for s in SCENARIOS) / total
    f += sum(weights[s] for s in ("impossible_travel",)) / total * BASE_FRAUD_P
    return k, f


def scenario_start_probability(fraud_rate: float) -> float:
    """Chance that a transaction slot starts a scenario so that frauds/transactions ~ fraud_rate."""
    k, f = _expected_per_scenario()
    r, pb = fraud_rate, BASE_FRAUD_P
    if r <= pb:
        return 0.0
    return min(1.0, (r - pb) / (f - pb - r * k + r))


class CardActivity:
    """Transactions (topic ``transactions``), user events (``user_events``), labels
    (``tx_labels``) and ``truth.fraud`` records, in simulated-time order."""

    def __init__(self, world: World, cfg: CardStreamConfig, seed: int, start: float, shard: int = 0):
        self.world, self.cfg, self.shard = world, cfg, shard
        self.rng = random.Random(f"cards-{seed}-{shard}")
        self.t = start
        self.sched = Scheduler()
        self.n_tx = 0
        self.n_ue = 0
        self.start_p = scenario_start_probability(cfg.fraud_rate)
        self.prefix = f"{seed}-{shard}"
        self.last_pos: dict[str, tuple[float, float, float]] = {}

    # -- building blocks ---------------------------------------------------------------------
    def _customer(self):
        r = self.rng.random() * self.world.customer_cum_weights[-1]
        lo, hi = 0, len(self.world.customers) - 1
        cum = self.world.customer_cum_weights
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] < r:
                lo = mid + 1
            else:
                hi = mid
        return self.world.customers[lo]

    def _tx(self, at: float, cust, card, *, merchant_idx: int, channel: str, amount: float, p: float,
            scenario: str, device: str | None = None, terminal: str | None = None) -> None:
        rng = self.rng
        w = self.world
        m = w.merchants[merchant_idx]
        if channel != "ecommerce" and terminal is None and m.terminals:
            terminal = rng.choice(m.terminals)
        self.n_tx += 1
        if "amounts" in self.cfg.drift and at >= self.cfg.drift_at:
            amount *= DRIFT_AMOUNT_SCALE
        event_id = f"tx-{self.prefix}-{self.n_tx:09d}"
        lat, lon = (m.lat, m.lon) if channel != "ecommerce" else (None, None)
        event = {
            "event_id": event_id, "event_time": iso_ms(at), "card_pan": card.pan, "customer_id": cust.customer_id,
            "merchant_id": m.merchant_id, "merchant_country": CITIES[m.city][1], "mcc": m.mcc, "amount": f"{max(0.01, amount):.2f}",
            "currency": w.currency(m.city), "channel": channel,
            "terminal_id": terminal if channel != "ecommerce" else None,
            "lat": round(lat, 5) if lat is not None else None, "lon": round(lon, 5) if lon is not None else None,
            "device_id": (device or cust.device_id) if channel == "ecommerce" else None,
        }
        is_fraud = rng.random() < p
        # Truth first, so every transaction a producer sends already has its truth recorded.
        self.sched.push(at, "truth.fraud", None, {"event_id": event_id, "customer_id": cust.customer_id,
                                                 "scenario": scenario, "fraud_probability": p, "is_fraud": is_fraud})
        self.sched.push(at, "transactions", card.card_id, event)
        delay = self.cfg.label_delay_s * math.exp(rng.gauss(0, self.cfg.label_delay_spread))
        labelled = at + max(0.001, delay)
        self.sched.push(labelled, "tx_labels", event_id, {"event_id": event_id, "is_fraud": is_fraud, "labelled_at": iso_ms(labelled)})

    def _user_event(self, at: float, cust, event_type: str, device: str | None = None, country: str | None = None) -> None:
        self.n_ue += 1
        self.sched.push(at, "user_events", cust.customer_id, {
            "event_id": f"ue-{self.prefix}-{self.n_ue:09d}", "event_time": iso_ms(at), "customer_id": cust.customer_id,
            "event_type": event_type, "device_id": device or cust.device_id,
            "ip_country": country or CITIES[cust.city][1], "session_id": f"s-{self.rng.randrange(16**8):08x}"})

    def _local_merchant(self, cust) -> int:
        rng = self.rng
        local = self.world.merchants_by_city[cust.city]
        favourites = [i for i in local[:40] if self.world.merchants[i].mcc in cust.favourite_mccs]
        pool = favourites if favourites and rng.random() < 0.7 else local
        return rng.choice(pool)

    def _normal_amount(self, cust, mcc: str) -> float:
        return math.exp(self.rng.gauss(cust.amount_mu + MCCS[mcc][1], cust.amount_sigma))

    # -- transactions ------------------------------------------------------------------------
    def _normal(self, at: float) -> None:
        rng, w = self.rng, self.world
        cust = self._customer()
        card = rng.choice(cust.cards)
        channel = rng.choices(CHANNELS, cust.channel_weights)[0]
        if channel == "ecommerce":
            midx = rng.choice(w.online_merchants)
        elif channel == "atm":
            local = [i for i in w.merchants_by_city[cust.city][:60] if w.merchants[i].mcc == "6011"]
            midx = rng.choice(local) if local else self._local_merchant(cust)
        else:
            midx = self._local_merchant(cust)
        amount = self._normal_amount(cust, w.merchants[midx].mcc)
        self._tx(at, cust, card, merchant_idx=midx, channel=channel, amount=amount, p=BASE_FRAUD_P, scenario="none")

    def _scenario(self, at: float) -> None:
        rng, w = self.rng, self.world
        scenarios = dict(SCENARIOS)
        if "atm_cashout" in self.cfg.drift and at >= self.cfg.drift_at:
            scenarios[DRIFT_SCENARIO[0]] = DRIFT_SCENARIO[1:]
        names = list(scenarios)
        name = rng.choices(names, [scenarios[n][0] for n in names])[0]
        p = scenarios[name][1]
        cust = self._customer()
        card = rng.choice(cust.cards)
        if name == "card_testing":
            device = f"dev-x{rng.randrange(16**6):06x}"
            t = at
            for _ in range(rng.randint(3, 8)):
                self._tx(t, cust, card, merchant_idx=rng.choice(w.online_merchants), channel="ecommerce",
                         amount=rng.uniform(0.5, 5.0), p=p, scenario=name, device=device)
                t += rng.uniform(5, 60)
        elif name == "compromised_terminal":
            local = w.merchants_by_city[cust.city]
            midx = rng.choice(local)
            terminal = rng.choice(w.merchants[midx].terminals)
            t = at
            for _ in range(rng.randint(3, 6)):
                victim = self._customer()
                self._tx(t, victim, rng.choice(victim.cards), merchant_idx=midx, channel="card_present",
                         amount=self._normal_amount(victim, w.merchants[midx].mcc) * rng.uniform(1.5, 4), p=p,
                         scenario=name, terminal=terminal)
                t += rng.uniform(60, 900)
        elif name == "account_takeover":
            device = f"dev-x{rng.randrange(16**6):06x}"
            foreign = rng.choice([c[1] for c in CITIES if c[1] != CITIES[cust.city][1]])
            t = at
            for step in ("login", "password_reset", "device_change", "payee_add"):
                self._user_event(t, cust, step, device=device, country=foreign)
                t += rng.uniform(30, 240)
            for _ in range(rng.randint(1, 3)):
                t += rng.uniform(60, 900)
                midx = rng.choice([i for i in w.online_merchants if w.merchants[i].mcc in HIGH_RISK_MCCS] or w.online_merchants)
                self._tx(t, cust, card, merchant_idx=midx, channel="ecommerce",
                         amount=math.exp(cust.amount_mu) * rng.uniform(4, 12), p=p, scenario=name, device=device)
        elif name == "impossible_travel":
            home = self._local_merchant(cust)
            self._tx(at, cust, card, merchant_idx=home, channel="card_present",
                     amount=self._normal_amount(cust, w.merchants[home].mcc), p=BASE_FRAUD_P, scenario="none")
            far_cities = [c for c in range(len(CITIES)) if c != cust.city and
                          abs(CITIES[c][3] - CITIES[cust.city][3]) + abs(CITIES[c][4] - CITIES[cust.city][4]) > 15]
            far = rng.choice(far_cities)
            midx = rng.choice(w.merchants_by_city[far])
            self._tx(at + rng.uniform(300, 2400), cust, card, merchant_idx=midx, channel="card_present",
                     amount=self._normal_amount(cust, w.merchants[midx].mcc) * rng.uniform(1, 3), p=p, scenario=name)
        elif name == "atm_cashout":
            atms = [i for i in w.merchants_by_city[cust.city] if w.merchants[i].mcc == "6011"] or w.merchants_by_city[cust.city]
            t = at
            for _ in range(rng.randint(2, 4)):
                midx = rng.choice(atms)
                self._tx(t, cust, card, merchant_idx=midx, channel="atm",
                         amount=self._normal_amount(cust, "6011") * rng.uniform(1.0, 2.0), p=p, scenario=name)
                t += rng.uniform(120, 1200)
        else:  # high_amount
            midx = rng.choice([i for i in w.merchants_by_city[cust.city] if w.merchants[i].mcc in HIGH_RISK_MCCS]
                              or w.merchants_by_city[cust.city])
            self._tx(at, cust, card, merchant_idx=midx, channel="card_present",
                     amount=math.exp(cust.amount_mu) * rng.uniform(15, 40), p=p, scenario=name)

    def __iter__(self) -> Iterator[Emitted]:
        rng, cfg = self.rng, self.cfg
        total_rate = cfg.tx_rate + cfg.user_event_rate
        next_arrival = self.t + rng.expovariate(total_rate)
        while True:
            # Emit everything scheduled before the next fresh arrival, then make that arrival.
            while self.sched.peek_time() <= next_arrival:
                yield self.sched.pop()
            at = next_arrival
            if rng.random() < cfg.user_event_rate / total_rate:
                cust = self._customer()
                self._user_event(at, cust, rng.choice(USER_EVENT_TYPES))
            elif rng.random() < self.start_p:
                self._scenario(at)
            else:
                self._normal(at)
            next_arrival = at + rng.expovariate(total_rate)
