"""The whole generated world as one time-ordered stream: card activity (transactions, user
events, labels), market ticks and credit activity, in any mix, for one shard of a producer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from lakehouse.generators.base import Emitted, merge, parse_start
from lakehouse.generators.cards import DRIFTS, CardActivity, CardStreamConfig
from lakehouse.generators.credit import CreditActivity, CreditConfig
from lakehouse.generators.market import MarketConfig, MarketTicks
from lakehouse.generators.noise import NoiseConfig
from lakehouse.generators.world import build_world
from lakehouse.topology import STREAMS

DEFAULT_MIX = {"transactions": 0.55, "market_ticks": 0.25, "user_events": 0.12, "bureau_updates": 0.06,
               "loan_applications": 0.02}
TRUTH_TABLES = ("truth.fraud", "truth.trading", "truth.loan_pd")


@dataclass
class GeneratorConfig:
    seed: int = 42
    start: str | float | None = None       # ISO time, epoch seconds, "now", or None (2026-01-01)
    rate: float = 1000.0                    # messages per simulated second, all selected topics
    streams: tuple[str, ...] = STREAMS
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    fraud_rate: float = 0.005
    label_delay_s: float = 300.0
    threshold_bps: float = 2.0
    n_customers: int = 2000
    n_merchants: int = 800
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    # The customers, cards and merchants come from world_seed (default: seed), so a later run
    # with another seed continues the same world with new event ids.
    world_seed: int | None = None
    # Drift kinds (cards.DRIFTS) switched on from drift_at (ISO, epoch, "now"; default: start).
    drift: tuple[str, ...] = ()
    drift_at: str | float | None = None

    def validate(self) -> "GeneratorConfig":
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown:
            raise ValueError(f"unknown stream '{unknown[0]}' (known: {', '.join(STREAMS)})")
        bad = [s for s in self.mix if s not in DEFAULT_MIX]
        if bad:
            raise ValueError(f"unknown stream '{bad[0]}' in the mix (known: {', '.join(DEFAULT_MIX)})")
        bad_drift = [d for d in self.drift if d not in DRIFTS]
        if bad_drift:
            raise ValueError(f"unknown drift '{bad_drift[0]}' (known: {', '.join(DRIFTS)})")
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if not 0 <= self.fraud_rate < 0.5:
            raise ValueError(f"fraud_rate must be in [0, 0.5), got {self.fraud_rate}")
        return self

    def source_rates(self, shards: int = 1) -> dict[str, float]:
        """Per-shard generation rate of each source stream (labels follow transactions 1:1),
        chosen so that the selected topics together carry ``rate`` messages per second."""
        selected = set(self.streams)
        weights = {s: w for s, w in self.mix.items() if s in selected or (s == "transactions" and "tx_labels" in selected)}
        # A transaction brings a label too, when labels are selected.
        cost = {s: (2.0 if s == "transactions" and {"transactions", "tx_labels"} <= selected else 1.0) for s in weights}
        per_weight = sum(weights[s] * cost[s] for s in weights) or 1.0
        scale = self.rate / per_weight / shards
        return {s: weights.get(s, 0.0) * scale for s in DEFAULT_MIX}


def generate(cfg: GeneratorConfig, shard: int = 0, shards: int = 1) -> Iterator[Emitted]:
    """Messages of the selected topics plus every truth record, in simulated-time order."""
    cfg.validate()
    start = parse_start(cfg.start)
    rates = cfg.source_rates(shards)
    world = build_world(cfg.seed if cfg.world_seed is None else cfg.world_seed, cfg.n_customers, cfg.n_merchants)
    drift_at = start if cfg.drift_at is None else parse_start(cfg.drift_at)
    parts = []
    if rates["transactions"] > 0 or rates["user_events"] > 0:
        parts.append(iter(CardActivity(world, CardStreamConfig(
            tx_rate=rates["transactions"], user_event_rate=rates["user_events"], fraud_rate=cfg.fraud_rate,
            label_delay_s=cfg.label_delay_s, drift=tuple(cfg.drift), drift_at=drift_at), cfg.seed, start, shard)))
    if rates["market_ticks"] > 0:
        parts.append(iter(MarketTicks(MarketConfig(tick_rate=rates["market_ticks"], threshold_bps=cfg.threshold_bps),
                                      cfg.seed, start, shard)))
    if rates["bureau_updates"] > 0 or rates["loan_applications"] > 0:
        parts.append(iter(CreditActivity(world, CreditConfig(update_rate=max(rates["bureau_updates"], 1e-9),
                                                             application_rate=rates["loan_applications"]),
                                         cfg.seed, start, shard)))
    keep = set(cfg.streams)
    for e in merge(parts):
        if e.is_truth or e.topic in keep:
            yield e
