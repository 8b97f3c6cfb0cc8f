"""Run the streaming medallion pipeline: Kafka -> bronze -> silver (+ quarantine) -> gold.

    python jobs/stream.py                       # all streams, until stopped (Ctrl-C / SIGTERM)
    python jobs/stream.py --streams transactions,user_events --timeout 600
    python jobs/stream.py --available-now       # process what is there, layer by layer, and exit
"""
from __future__ import annotations

import sys
import time

import psutil

from jobs import common
from lakehouse.catalog import Catalog, read_delta_if_exists
from lakehouse.kafka.broker import ensure_broker
from lakehouse.quarantine import Watch, counts_since, max_share, min_rows, session_now, spikes
from lakehouse.runtime import StreamingRun
from lakehouse.session import side_by_side
from lakehouse.streaming import ingest_mode, start_bronze, start_gold, start_ingest, start_silver
from lakehouse.topology import STREAMS, gold_views_for


def run(spark, cfg, args) -> dict:
    streams = common.pick("stream", args.streams, STREAMS)
    layers = [l.strip() for l in args.layers.split(",")]
    unknown = [l for l in layers if l not in ("bronze", "silver", "gold")]
    if unknown:
        common.fail(f"unknown layer '{unknown[0]}' (known: bronze, silver, gold)")
    mode = ingest_mode(cfg)
    one_query = mode != "per_layer"   # Kafka is read by the ingest query (and, bronze_apart, the bronze query)
    if mode == "one_query" and "bronze" in layers and "silver" not in layers:
        common.fail("pipeline.ingest=one_query writes bronze and silver in one query: use --layers bronze,silver "
                    "or --conf pipeline.ingest=per_layer")
    bound = max_share(cfg)
    if "bronze" in layers:
        ensure_broker(cfg)
    catalog = Catalog(cfg)
    since = session_now(spark) if args.available_now and "silver" in layers else None   # what this run quarantined
    metrics_url = common.live_metrics(spark, cfg, "stream")
    now = args.available_now
    starters = {
        "bronze": [(lambda s=s: start_bronze(spark, cfg, f"bronze.{s}", now)) for s in streams],
        "silver": [(lambda s=s: start_silver(spark, cfg, s, now)) for s in streams],
        "gold": [(lambda t=t: start_gold(spark, cfg, t, now)) for t in gold_views_for(streams)],
    }
    if one_query:
        # Kafka -> bronze and silver in one query; the silver queries take only bronze rows that
        # came another way (backfills, loads straight to bronze).
        parts = [("bronze", "silver")] if mode == "one_query" else [("bronze",)] + ([("silver",)] if "silver" in layers else [])
        starters["bronze"] = [(lambda p=p: start_ingest(spark, cfg, streams, now, layers=p)[0]) for p in parts
                              if "silver" in layers or mode == "bronze_apart"]
        found = side_by_side(lambda s: _has_backfill(spark, catalog, s), streams) if "silver" in layers else []
        backfilled = [s for s, yes in zip(streams, found) if yes]
        starters["silver"] = [(lambda s=s: start_silver(spark, cfg, s, True)) for s in backfilled]
    started = time.monotonic()
    if one_query and not now and starters["silver"]:
        # Backfilled bronze rows are caught up once at the start; the ingest query does the rest.
        _run_layer(spark, cfg, catalog, "silver (backfilled bronze rows)", starters.pop("silver"))
    if now:
        for layer in ("bronze", "silver", "gold"):
            if layer in layers:
                _run_layer(spark, cfg, catalog, "bronze + silver (ingest)" if one_query and layer == "bronze" else layer, starters[layer])
    else:
        stop = common.stop_flag()
        run = StreamingRun(spark, cfg, "pipeline", catalog)
        for layer in ("bronze", "silver", "gold"):
            for start in starters.get(layer, []) if layer in layers else []:
                run.start(start)
        print(f"pipeline: started in {time.time() - psutil.Process().create_time():.1f} s", flush=True)
        print(f"pipeline: {len(run.queries)} queries running; stop with Ctrl-C", flush=True)
        watch = Watch(spark, cfg, catalog)   # a quarantine spike warns, window by window, and the job goes on
        run.supervise(lambda: stop["stop"] or (args.timeout is not None and time.monotonic() - started >= args.timeout),
                      tick=watch.tick)
    catalog.register(spark)
    names = [f"{layer}.{s}" for layer in ("bronze", "silver", "quarantine") for s in streams]
    names += [t for t in gold_views_for(streams) if t in catalog.register(spark, [t])]
    counts = dict(zip(names, side_by_side(lambda name: _count(spark, name), names)))
    if now and "silver" in layers:
        # A run that quarantined more than its share of a stream did not do its job.
        problems = spikes(counts_since(spark, catalog, streams, since), bound, min_rows(cfg))
        if problems:
            common.fail("; ".join(problems))
    return {"streams": streams, "seconds": round(time.monotonic() - started, 1), "tables": counts, "metrics_endpoint": metrics_url}


def _count(spark, name: str) -> int:
    """A table's rows, read fresh."""
    spark.sql(f"REFRESH TABLE {name}")
    return spark.table(name).count()


def _has_backfill(spark, catalog, stream: str) -> bool:
    """Whether bronze.<stream> holds rows that did not come from Kafka (partition -1)."""
    bronze = read_delta_if_exists(spark, catalog.spec(f"bronze.{stream}").location)
    return bronze is not None and bronze.where("partition < 0").limit(1).count() > 0


def _run_layer(spark, cfg, catalog, label: str, starters: list) -> None:
    """Run availableNow queries to the end; the first failure stops them all with one line."""
    with StreamingRun(spark, cfg, label, catalog) as run:
        for start in starters:
            run.start(start)
        run.await_all()
    print(f"{label}: {len(starters)} queries caught up")


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--streams", default="all", help="comma list of streams, or all")
    p.add_argument("--layers", default="bronze,silver,gold", help="which layers to run")
    p.add_argument("--available-now", action="store_true", help="process what is available, then exit")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    return p


def main(argv=None):
    p = build_parser()
    result = common.execute(p, argv, run, app_name="finlake-stream")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
