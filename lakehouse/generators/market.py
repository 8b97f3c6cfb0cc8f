"""Market ticks with volatility clustering (GARCH(1,1)) and an order-flow imbalance that
carries a weak, real signal about the next tick's return.

For tick t of a symbol: imbalance ``i_t`` (AR(1), in [-1, 1]) shows in ``bid_size``/``ask_size``;
the next mid-price return is ``r = beta * i_t * sigma_t + sigma_t * eps``. The trading label of
tick t is the class of that return against ``threshold_bps``; its true class probabilities
follow from the normal law and go to ``truth.trading`` once the next tick exists.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterator

from lakehouse.generators.base import Emitted, iso_ms

SYMBOLS = {"AAPL": 190.0, "MSFT": 410.0, "NVDA": 120.0, "JPM": 200.0, "XOM": 110.0, "EURUSD": 1.08}
VENUES = ("XNAS", "XNYS", "BATS", "IEX")
CLASSES = ("down", "flat", "up")
_N = NormalDist()


@dataclass
class MarketConfig:
    tick_rate: float = 50.0          # ticks per simulated second, all symbols together
    threshold_bps: float = 2.0       # |return| above this is up/down, else flat
    beta: float = 1.0                # strength of the imbalance signal (in units of sigma)
    imbalance_phi: float = 0.7       # persistence of order-flow imbalance
    garch_omega: float = 2e-10
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    base_vol_bps: float = 2.5        # typical per-tick volatility


def true_class_probabilities(mu: float, sigma: float, threshold: float) -> tuple[float, float, float]:
    """P(down), P(flat), P(up) of a normal return with mean mu and sd sigma."""
    p_down = _N.cdf((-threshold - mu) / sigma)
    p_up = 1.0 - _N.cdf((threshold - mu) / sigma)
    return p_down, max(0.0, 1.0 - p_down - p_up), p_up


def label_of(ret: float, threshold: float) -> str:
    return "up" if ret > threshold else "down" if ret < -threshold else "flat"


class MarketTicks:
    """Ticks (topic ``market_ticks``, keyed by symbol) and ``truth.trading`` records."""

    def __init__(self, cfg: MarketConfig, seed: int, start: float, shard: int = 0, symbols: dict[str, float] | None = None):
        self.cfg = cfg
        self.rng = random.Random(f"market-{seed}-{shard}")
        self.t = start
        self.prefix = f"{seed}-{shard}"
        self.n = 0
        sym = symbols or SYMBOLS
        base_var = (cfg.base_vol_bps / 1e4) ** 2
        self.state = {s: {"mid": p, "var": base_var, "imb": 0.0, "pending": None} for s, p in sym.items()}
        self.omega = base_var * (1 - cfg.garch_alpha - cfg.garch_beta)

    def __iter__(self) -> Iterator[Emitted]:
        rng, cfg = self.rng, self.cfg
        symbols = list(self.state)
        threshold = cfg.threshold_bps / 1e4
        seq = 0
        while True:
            self.t += rng.expovariate(cfg.tick_rate)
            symbol = rng.choice(symbols)
            st = self.state[symbol]
            # The previous tick of this symbol gets its label now that its next return is known.
            sigma = math.sqrt(st["var"])
            if st["pending"] is not None:
                prev_id, mu, prev_sigma = st["pending"]
                ret = mu + prev_sigma * rng.gauss(0, 1)
                st["mid"] *= math.exp(ret)
                st["var"] = self.omega + cfg.garch_alpha * ret * ret + cfg.garch_beta * st["var"]
                sigma = math.sqrt(st["var"])
                p_down, p_flat, p_up = true_class_probabilities(mu, prev_sigma, threshold)
                seq += 1
                yield Emitted(self.t, seq, "truth.trading", None, {
                    "event_id": prev_id, "symbol": symbol, "p_down": p_down, "p_flat": p_flat, "p_up": p_up,
                    "label": label_of(ret, threshold), "next_return": ret})
            st["imb"] = cfg.imbalance_phi * st["imb"] + math.sqrt(1 - cfg.imbalance_phi ** 2) * rng.gauss(0, 0.6)
            imb = math.tanh(st["imb"])
            mid = st["mid"]
            half_spread = mid * max(0.5e-4, sigma * rng.uniform(0.8, 1.2))
            depth = math.exp(rng.gauss(7, 0.5))
            bid_size = max(1, int(depth * (1 + imb) / 2))
            ask_size = max(1, int(depth * (1 - imb) / 2))
            side = 1 if rng.random() < 0.5 + 0.3 * imb else -1
            decimals = 5 if mid < 10 else 2
            self.n += 1
            event_id = f"mt-{self.prefix}-{self.n:09d}"
            seq += 1
            yield Emitted(self.t, seq, "market_ticks", symbol, {
                "event_id": event_id, "event_time": iso_ms(self.t), "symbol": symbol,
                "price": round(mid + side * half_spread, decimals), "size": int(math.exp(rng.gauss(4, 1))) + 1,
                "bid": round(mid - half_spread, decimals), "ask": round(mid + half_spread, decimals),
                "bid_size": bid_size, "ask_size": ask_size, "venue": rng.choice(VENUES)})
            # The observable imbalance (from the sizes) drives the next return's mean.
            observed = (bid_size - ask_size) / (bid_size + ask_size)
            st["pending"] = (event_id, cfg.beta * observed * sigma, sigma)
