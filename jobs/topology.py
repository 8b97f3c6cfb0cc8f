"""Show finlake's topology: the streams and their topics and tables, the gold feature views, the use cases and their decision paths.

    python jobs/topology.py                    # as text, with this environment's topic names
    python jobs/topology.py --env cluster      # topic names and table locations of another environment

Declared once in ``lakehouse/topology.py``; every job, the demo and the benchmarks read it.
"""
from __future__ import annotations

import sys

from jobs import common
from lakehouse.kafka.clients import topic_name


def run(_spark, cfg, args) -> dict:
    # pyspark (via lakehouse.gold and lakehouse.catalog): +0.7 s at import; --help stays quick
    from lakehouse import topology
    from lakehouse.catalog import Catalog

    catalog = Catalog(cfg)
    for line in topology.describe():
        print(line)
    topics = {s: topic_name(cfg, catalog.source_topic(topology.stream_table("bronze", s))) for s in topology.STREAMS}
    print(f"topics in env {cfg.env}: " + ", ".join(topics.values()))
    tables = sorted({topology.stream_table(layer, s) for s in topology.STREAMS for layer in topology.STREAM_LAYERS}
                    | set(topology.GOLD_VIEWS) | {u.scores for u in topology.USE_CASES.values()})
    if args.locations:
        for t in tables:
            print(f"  {t}: {catalog.spec(t).location}")
    return {"streams": list(topology.STREAMS), "topics": topics, "gold_views": list(topology.GOLD_VIEWS),
            "use_cases": list(topology.USE_CASES), "decision_paths": list(topology.DECISION_PATHS),
            "lakehouse_scored": list(topology.LAKEHOUSE_SCORED), "tables": tables}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--locations", action="store_true", help="also print where each table lives in this environment")
    result = common.execute(p, argv, run, app_name="finlake-topology", needs_spark=False)
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
