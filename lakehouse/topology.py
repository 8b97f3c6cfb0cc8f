"""finlake's topology, declared once: the event streams and their tables, the gold feature views,
the use cases and which of them have a real-time decision path.

The pipeline, the decision jobs, training, scoring, the demo, the benchmarks and the generators
read these names from here. Where each table lives (location, checkpoint, format) is the
catalog's business (``conf/base/catalog.yaml``); ``tests/test_topology.py`` checks that the two
agree, so a stream or a use case added here without its tables fails in CI, not in a job.
"""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Callable

from lakehouse.gold import (BORROWER_FEATURES, BORROWER_KEEP, CARD_FEATURES, CARD_KEEP, DECLARED_SETTING, MARKET_FEATURES,
                            MARKET_KEEP, borrower_features, card_features, market_features)
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
    over its own history and over the other streams it reads.

    ``transform`` (``lakehouse.gold``) computes it from the driver's rows, then the history of
    each stream of ``keyed_reads``; with ``risk_labels`` (the labels that merchant and terminal
    risk count) then those labels and the driver's history the risk counts, or None to leave the
    risk out, for a live batch to attach from hourly snapshots (``lakehouse.risk``) when
    ``risk_snapshots``. Its windows partition by ``key`` and reach back ``lookback`` (a config
    key and the seconds in one unit of it). A row keeps the ``keep`` columns, then the
    ``feature_columns``, then the user's own row-local features declared in the config setting
    ``declared`` (``lakehouse.gold.declared_features``)."""
    table: str
    driver: str
    reads: tuple[str, ...] = ()
    _: KW_ONLY
    transform: Callable
    key: str
    lookback: tuple[str, int]
    keep: tuple[str, ...]
    feature_columns: tuple[str, ...]
    risk_labels: str | None = None
    risk_snapshots: bool = False
    declared: str | None = None

    @property
    def streams(self) -> tuple[str, ...]:
        return (self.driver, *self.reads)

    @property
    def keyed_reads(self) -> tuple[str, ...]:
        """The streams whose history the windows read by ``key``, in ``transform``'s order."""
        return tuple(s for s in self.reads if s != self.risk_labels)


GOLD_VIEWS: dict[str, GoldView] = {v.table: v for v in (
    GoldView("gold.card_features", "transactions", ("user_events", "tx_labels"), transform=card_features,
             key="customer_id", lookback=("pipeline.card_history_days", 86_400), keep=tuple(CARD_KEEP),
             feature_columns=tuple(CARD_FEATURES), risk_labels="tx_labels", risk_snapshots=True, declared=DECLARED_SETTING),
    GoldView("gold.market_features", "market_ticks", transform=market_features, key="symbol",
             lookback=("pipeline.market_history_minutes", 60), keep=tuple(MARKET_KEEP), feature_columns=tuple(MARKET_FEATURES)),
    GoldView("gold.borrower_features", "loan_applications", ("bureau_updates",), transform=borrower_features,
             key="customer_id", lookback=("pipeline.bureau_history_days", 86_400), keep=tuple(BORROWER_KEEP),
             feature_columns=tuple(BORROWER_FEATURES)),
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
    UseCase("loan_pd", "gold.borrower_features", "gold.loan_pd_scores", "score_loan_pd", ("customer_id", "loan_amount"),
            DecisionPath("loan_pd", ("loan_applications", "bureau_updates"), "loan_decisions", None, "gold.loan_pd_scores",
                         state="BorrowerState")),
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
