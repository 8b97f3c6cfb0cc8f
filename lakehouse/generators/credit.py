"""Credit-bureau updates and loan applications whose true probability of default is a known
non-linear function of the borrower's latest bureau attributes; the outcome is drawn from it."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator

from lakehouse.generators.base import Emitted, iso_ms
from lakehouse.generators.world import World

PURPOSES = ("debt_consolidation", "home_improvement", "car", "education", "medical", "business")


@dataclass
class CreditConfig:
    update_rate: float = 5.0         # bureau updates per simulated second
    application_rate: float = 1.0    # loan applications per simulated second


def true_pd(credit_score: int, utilisation: float, delinquencies: int, inquiries_6m: int, annual_income: float,
            debt_to_income: float, loan_amount: float, term_months: int) -> float:
    """The probability of default the generator draws outcomes from (non-linear, with interactions)."""
    z = (-3.9
         + 3.2 * ((680 - credit_score) / 100) ** 2 * (1 if credit_score < 680 else -0.25)
         + 2.2 * max(0.0, utilisation - 0.6) ** 1.5
         + 0.55 * math.log1p(delinquencies) * (1.0 + 0.8 * debt_to_income)
         + 0.12 * inquiries_6m
         + 3.0 * max(0.0, debt_to_income - 0.35)
         + 0.35 * math.log(max(loan_amount, 100.0) / max(annual_income, 1000.0) * 10)
         + 0.006 * (term_months - 36))
    return 1.0 / (1.0 + math.exp(-z))


class CreditActivity:
    """``bureau_updates`` (keyed by customer), ``loan_applications`` and ``truth.loan_pd``."""

    def __init__(self, world: World, cfg: CreditConfig, seed: int, start: float, shard: int = 0):
        self.world, self.cfg = world, cfg
        self.rng = random.Random(f"credit-{seed}-{shard}")
        self.t = start
        self.prefix = f"{seed}-{shard}"
        self.n_upd = self.n_app = 0
        self.state: dict[str, dict] = {}

    def _profile(self, cid: str) -> dict:
        st = self.state.get(cid)
        if st is None:
            rng = self.rng
            income = math.exp(rng.gauss(10.8, 0.5))
            st = {"credit_score": int(min(850, max(300, rng.gauss(690, 70)))), "utilisation": min(1.2, max(0.0, rng.betavariate(2, 4) * 1.2)),
                  "delinquencies": min(10, int(rng.expovariate(1.6))), "inquiries_6m": min(12, int(rng.expovariate(0.7))),
                  "annual_income": income, "debt_to_income": min(1.2, max(0.0, rng.gauss(0.3, 0.12)))}
            self._round(st)
            self.state[cid] = st
        return st

    def _evolve(self, st: dict) -> None:
        rng = self.rng
        st["utilisation"] = min(1.2, max(0.0, st["utilisation"] + rng.gauss(0, 0.05)))
        if rng.random() < 0.05:
            st["delinquencies"] = min(10, st["delinquencies"] + 1)
        st["inquiries_6m"] = max(0, min(12, st["inquiries_6m"] + rng.choice((-1, 0, 0, 1))))
        st["debt_to_income"] = min(1.2, max(0.0, st["debt_to_income"] + rng.gauss(0, 0.02)))
        st["annual_income"] *= math.exp(rng.gauss(0.0, 0.01))
        drift = -25 * (st["utilisation"] - 0.3) - 15 * (st["delinquencies"] > 0) + rng.gauss(0, 8)
        st["credit_score"] = int(min(850, max(300, st["credit_score"] + drift * 0.2)))
        self._round(st)

    @staticmethod
    def _round(st: dict) -> None:
        # Keep the state exactly as the bureau reports it, so the true PD is a function of
        # what a consumer of ``bureau_updates`` can see.
        st["utilisation"] = round(st["utilisation"], 4)
        st["debt_to_income"] = round(st["debt_to_income"], 4)
        st["annual_income"] = float(f"{st['annual_income']:.2f}")

    def _update(self, cust_id: str, seq: int) -> Emitted:
        st = self._profile(cust_id)
        self._evolve(st)
        self.n_upd += 1
        return Emitted(self.t, seq, "bureau_updates", cust_id, {
            "event_id": f"bu-{self.prefix}-{self.n_upd:09d}", "event_time": iso_ms(self.t), "customer_id": cust_id,
            "credit_score": st["credit_score"], "utilisation": st["utilisation"],
            "delinquencies": st["delinquencies"], "inquiries_6m": st["inquiries_6m"],
            "annual_income": f"{st['annual_income']:.2f}", "debt_to_income": st["debt_to_income"]})

    def __iter__(self) -> Iterator[Emitted]:
        rng, cfg = self.rng, self.cfg
        total = cfg.update_rate + cfg.application_rate
        customers = self.world.customers
        seq = 0
        while True:
            self.t += rng.expovariate(total)
            cust = rng.choice(customers).customer_id
            seq += 1
            if cust not in self.state or rng.random() < cfg.update_rate / total:
                # A borrower's first appearance is always a bureau update, so every application
                # has a bureau snapshot at or before it.
                yield self._update(cust, seq)
                continue
            st = self.state[cust]
            self.n_app += 1
            amount = round(math.exp(rng.gauss(9.3, 0.7)), -2)
            term = rng.choice((12, 24, 36, 48, 60))
            pd = true_pd(st["credit_score"], st["utilisation"], st["delinquencies"], st["inquiries_6m"],
                         st["annual_income"], st["debt_to_income"], amount, term)
            event_id = f"la-{self.prefix}-{self.n_app:09d}"
            yield Emitted(self.t, seq, "truth.loan_pd", None, {
                "event_id": event_id, "customer_id": cust, "true_pd": pd, "defaulted": rng.random() < pd})
            seq += 1
            yield Emitted(self.t, seq, "loan_applications", cust, {
                "event_id": event_id, "event_time": iso_ms(self.t), "customer_id": cust,
                "loan_amount": f"{amount:.2f}", "term_months": term, "purpose": rng.choice(PURPOSES)})
