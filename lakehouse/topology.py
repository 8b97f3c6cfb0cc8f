"""finlake's topology, declared once: the event streams and their tables, the gold feature views,
the use cases and which of them have a real-time decision path.

The pipeline, the decision jobs, training, scoring, the demo, the benchmarks and the generators
read these names from here. Where each table lives (location, checkpoint, format) is the
catalog's business (``conf/base/catalog.yaml``); ``tests/test_topology.py`` checks that the two
agree, so a stream or a use case added here without its tables fails in CI, not in a job.
"""
from __future__ import annotations

from dataclasses import dataclass

from lakehouse.schemas.events import SILVER_FIELDS

# The event streams, in the order jobs list them. Each one's Kafka topic is its name (the
# catalog's ``source: kafka:<stream>`` of its bronze table); a deployment may prefix topic names
# (``kafka.topic_prefix``).
STREAMS: tuple[str, ...] = tuple(SILVER_FIELDS)

# The per-stream tables of the medallion, by layer.
STREAM_LAYERS: tuple[str, ...] = ("bronze", "silver", "quarantine")


def stream_table(layer: str, stream: str) -> str:
    """The catalog name of ``stream``'s table in ``layer`` (``bronze.transactions``)."""
    if layer not in STREAM_LAYERS:
        raise ValueError(f"unknown stream layer '{layer}' (known: {', '.join(STREAM_LAYERS)})")
    if stream not in STREAMS:
        raise ValueError(f"unknown stream '{stream}' (known: {', '.join(STREAMS)})")
    return f"{layer}.{stream}"


@dataclass(frozen=True)
class GoldView:
    """A point-in-time feature table: one row per event of its driving stream, with windows
    over its own history and over the other streams it reads."""
    table: str
    driver: str
    reads: tuple[str, ...] = ()

    @property
    def streams(self) -> tuple[str, ...]:
        return (self.driver, *self.reads)


GOLD_VIEWS: dict[str, GoldView] = {v.table: v for v in (
    GoldView("gold.card_features", "transactions", ("user_events", "tx_labels")),
    GoldView("gold.market_features", "market_ticks"),
    GoldView("gold.borrower_features", "loan_applications", ("bureau_updates",)),
)}


@dataclass(frozen=True)
class DecisionPath:
    """A use case decided in real time: one streaming query reads ``streams`` from Kafka, keeps
    per-key state, scores and writes ``decisions_topic`` (and ``alerts_topic``); ``table`` is
    where the landing query keeps the decisions. ``state`` names its per-key state, the JVM
    class ``finlake.<state>`` (``lakehouse/jvm``; it declares its key column); ``risk``: merchant
    and terminal risk (``lakehouse.risk``, served) are among its features; ``amount``: the column
    an expected-loss threshold weighs (None: the threshold alone)."""
    use_case: str
    streams: tuple[str, ...]
    decisions_topic: str
    alerts_topic: str | None
    table: str
    state: str
    risk: bool = False
    amount: str | None = None


@dataclass(frozen=True)
class UseCase:
    """A model: trained on ``features`` (a gold view), its scores land in ``scores``, the rows it
    may score pass the ``gate`` suite first, and a score row keeps the ``keep`` columns.
    ``decision`` is its real-time path; a use case without one is scored by the lakehouse's
    scoring query over gold."""
    name: str
    features: str
    scores: str
    gate: str
    keep: tuple[str, ...]
    decision: DecisionPath | None = None


USE_CASES: dict[str, UseCase] = {u.name: u for u in (
    UseCase("fraud", "gold.card_features", "gold.fraud_scores", "score_fraud", ("card_token", "customer_id", "amount"),
            DecisionPath("fraud", ("transactions", "user_events"), "fraud_decisions", "fraud_alerts", "gold.fraud_scores",
                         state="FraudState", risk=True, amount="amount")),
    UseCase("trading", "gold.market_features", "gold.trading_signals", "score_trading", ("symbol",),
            DecisionPath("trading", ("market_ticks",), "trading_signals", None, "gold.trading_signals", state="MarketState")),
    UseCase("loan_pd", "gold.borrower_features", "gold.loan_pd_scores", "score_loan_pd", ("customer_id", "loan_amount")),
)}

DECISION_PATHS: dict[str, DecisionPath] = {n: u.decision for n, u in USE_CASES.items() if u.decision is not None}
# Use cases the lakehouse scores from gold (no real-time path).
LAKEHOUSE_SCORED: tuple[str, ...] = tuple(n for n, u in USE_CASES.items() if u.decision is None)


def gold_views_for(streams) -> list[str]:
    """The gold views driven by any of ``streams``."""
    return [t for t, v in GOLD_VIEWS.items() if v.driver in set(streams)]


def names(kind: str, text: str, known) -> list[str]:
    """A comma-separated selection (or ``all``) of ``known`` names; ValueError naming the first
    unknown one. The one parser of every job's ``--stream`` / ``--use-case`` argument."""
    known = list(known)
    picked = known if text.strip() == "all" else [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in picked if n not in known]
    if bad or not picked:
        raise ValueError(f"unknown {kind} '{bad[0] if bad else text}' (known: {', '.join(known)}, all)")
    return picked


def describe() -> list[str]:
    """The topology as lines of text, for ``finlake topology`` and the docs."""
    lines = ["streams (Kafka topic -> bronze -> silver | quarantine):"]
    lines += [f"  {s}: {', '.join(stream_table(layer, s) for layer in STREAM_LAYERS)}" for s in STREAMS]
    lines.append("gold feature views (driving stream + the streams its windows read):")
    lines += [f"  {t}: {v.driver}" + (f" + {', '.join(v.reads)}" if v.reads else "") for t, v in GOLD_VIEWS.items()]
    lines.append("use cases (features -> scores; gate suite; real-time path):")
    for u in USE_CASES.values():
        path = (f"decides from {', '.join(u.decision.streams)} -> topic {u.decision.decisions_topic}"
                + (f", alerts {u.decision.alerts_topic}" if u.decision.alerts_topic else "")) if u.decision else "scored from gold"
        lines.append(f"  {u.name}: {u.features} -> {u.scores}; gate {u.gate}; {path}")
    return lines
