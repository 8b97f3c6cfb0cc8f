"""Run the streaming medallion pipeline: Kafka -> bronze -> silver (+ quarantine) -> gold.

    python jobs/stream.py                       # all streams, until stopped (Ctrl-C / SIGTERM)
    python jobs/stream.py --streams transactions,user_events --timeout 600
    python jobs/stream.py --available-now       # process what is there, layer by layer, and exit
"""
from __future__ import annotations

import sys
import time

from jobs import common


def _parse_streams(text: str) -> list[str]:
    from lakehouse.topology import STREAMS

    return common.pick("stream", text, STREAMS)


def _gold_tables(streams: list[str]) -> list[str]:
    from lakehouse.topology import gold_views_for

    return gold_views_for(streams)


def run(spark, cfg, args) -> dict:
    from lakehouse.catalog import Catalog
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.metrics import ProgressCollector
    from lakehouse.quarantine import Watch, counts_since, max_share, min_rows, session_now, spikes
    from lakehouse.streaming import ingest_mode, start_bronze, start_gold, start_ingest, start_silver

    streams = _parse_streams(args.streams)
    layers = [l.strip() for l in args.layers.split(",")]
    unknown = [l for l in layers if l not in ("bronze", "silver", "gold")]
    if unknown:
        common.fail(f"unknown layer '{unknown[0]}' (known: bronze, silver, gold)")
    one_query = ingest_mode(cfg) == "one_query"
    if one_query and "bronze" in layers and "silver" not in layers:
        common.fail("pipeline.ingest=one_query writes bronze and silver in one query: use --layers bronze,silver "
                    "or --conf pipeline.ingest=per_layer")
    bound = max_share(cfg)
    if "bronze" in layers:
        ensure_broker(cfg)
    catalog = Catalog(cfg)
    since = session_now(spark) if args.available_now and "silver" in layers else None   # what this run quarantined
    metrics_spec = catalog.spec("ops.stream_metrics")
    collector = ProgressCollector()
    spark.streams.addListener(collector)
    metrics_url = common.live_metrics(spark, cfg, "stream")
    starters = {
        "bronze": [(lambda s=s: start_bronze(spark, cfg, f"bronze.{s}", args.available_now)) for s in streams],
        "silver": [(lambda s=s: start_silver(spark, cfg, s, args.available_now)) for s in streams],
        "gold": [(lambda t=t: start_gold(spark, cfg, t, args.available_now)) for t in _gold_tables(streams)],
    }
    if one_query:
        # Kafka -> bronze and silver in one query; the silver queries take only bronze rows that
        # came another way (backfills, loads straight to bronze).
        starters["bronze"] = [lambda: start_ingest(spark, cfg, streams, args.available_now)[0]] if "silver" in layers else []
        backfilled = [s for s in streams if _has_backfill(spark, cfg, s)] if "silver" in layers else []
        starters["silver"] = [(lambda s=s: start_silver(spark, cfg, s, True)) for s in backfilled]
    started = time.monotonic()
    if one_query and not args.available_now and starters["silver"]:
        # Backfilled bronze rows are caught up once at the start; the ingest query does the rest.
        _run_layer("silver (backfilled bronze rows)", [start() for start in starters.pop("silver")])
    if args.available_now:
        for layer in ("bronze", "silver", "gold"):
            if layer not in layers:
                continue
            label = "bronze + silver (ingest)" if one_query and layer == "bronze" else layer
            _run_layer(label, [start() for start in starters[layer]])
    else:
        stop = common.stop_flag()
        running = [(start, start()) for layer in ("bronze", "silver", "gold") if layer in layers for start in starters.get(layer, [])]
        import psutil

        print(f"pipeline: started in {time.time() - psutil.Process().create_time():.1f} s", flush=True)
        print(f"pipeline: {len(running)} queries running; stop with Ctrl-C", flush=True)
        watch = Watch(spark, cfg, catalog)   # a quarantine spike warns, window by window, and the job goes on
        common.supervise(running, cfg, "pipeline",
                         lambda: stop["stop"] or (args.timeout is not None and time.monotonic() - started >= args.timeout),
                         tick=lambda: (collector.flush(spark, metrics_spec), watch.tick()))
    time.sleep(0.5)  # let the listener deliver the last progress events
    written = collector.flush(spark, metrics_spec)
    spark.streams.removeListener(collector)
    catalog.register(spark)
    counts = {}
    for layer in ("bronze", "silver", "quarantine"):
        for s in streams:
            name = f"{layer}.{s}"
            spark.sql(f"REFRESH TABLE {name}")
            counts[name] = spark.table(name).count()
    for t in _gold_tables(streams):
        if t in catalog.register(spark, [t]):
            counts[t] = spark.table(t).count()
    if args.available_now and "silver" in layers:
        # A run that quarantined more than its share of a stream did not do its job.
        shares = counts_since(spark, catalog, streams, since)
        problems = spikes(shares, bound, min_rows(cfg))
        if problems:
            common.fail("; ".join(problems))
    return {"streams": streams, "seconds": round(time.monotonic() - started, 1), "tables": counts, "metrics_rows": written, "metrics_endpoint": metrics_url}


def _has_backfill(spark, cfg, stream: str) -> bool:
    """Whether bronze.<stream> holds rows that did not come from Kafka (partition -1)."""
    from lakehouse.catalog import Catalog, read_delta_if_exists

    bronze = read_delta_if_exists(spark, Catalog(cfg).spec(f"bronze.{stream}").location)
    return bronze is not None and bronze.where("partition < 0").limit(1).count() > 0


def _run_layer(label: str, queries: list) -> None:
    """Wait for availableNow queries; the first failure stops them all with one line."""
    for q in queries:
        try:
            q.awaitTermination()
        except Exception:
            pass
        if q.exception():
            common.stop_all(queries)
            common.fail(f"query {q.name} failed: {common.root_cause(q.exception())}")
    print(f"{label}: {len(queries)} queries caught up")


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
