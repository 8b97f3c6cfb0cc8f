"""Start finlake's serving queries through a ``StreamingRun``: the decision paths (with their
alert explanation and landing queries) and the lakehouse-path scorers. The run keeps each
query's start function, so a restarted query comes back with the same wiring."""
from __future__ import annotations

from lakehouse.kafka.clients import ensure_topics
from lakehouse.runtime import StreamingRun
from lakehouse.topology import DECISION_PATHS
from ml.scoring import start_scoring
from serving.decision import DecisionRun, start_decisions, start_explaining, start_landing


def start_decision_paths(run: StreamingRun, use_cases, starting_offsets="latest", land: bool = True, trigger=None,
                         land_from=None) -> dict[str, DecisionRun]:
    """Start the decision query of each use case (and, with ``land``, its alert explanation and
    landing queries); returns each use case's ``DecisionRun`` (a restart replaces it in the
    dict). ``land_from``: where new explanation and landing checkpoints start (default
    earliest: every decision on the topics; or ``end_offsets`` of the decision and alert topics)."""
    spark, cfg = run.spark, run.cfg
    ensure_topics(cfg)
    runs: dict[str, DecisionRun] = {}
    start = land_from or "earliest"
    for name in use_cases:
        if land:   # started first: they read from the topics' ends as of now, before any new decision
            if DECISION_PATHS[name].alerts_topic:
                run.start(lambda name=name: start_explaining(spark, cfg, name, starting_offsets=start)[0])
            run.start(lambda name=name: start_landing(spark, cfg, name, starting_offsets=start)[0])

        def decide(name=name):
            q, runs[name] = start_decisions(spark, cfg, name, starting_offsets, trigger)
            return q
        run.start(decide)
    return runs


def start_scorers(run: StreamingRun, use_cases, **options) -> dict:
    """Start the gold features -> scores query of each use case (``ml.scoring.start_scoring``
    ``options``); returns each use case's batch function (its ``history`` of batches)."""
    fns = {}
    for name in use_cases:
        def score(name=name):
            q, fns[name] = start_scoring(run.spark, run.cfg, name, **options)
            return q
        run.start(score)
    return fns
