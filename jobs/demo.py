"""The end-to-end demo on the embedded default stack, in one command.

1. Start (or reuse) the local Kafka broker.
2. Backfill a training history (about two days of event time, all streams) into bronze, and
   run the medallion pipeline over it (silver + quarantine, gold features).
3. Train the three models (fraud, trading signal, loan PD), log them to MLflow, promote.
4. Go live: the pipeline, the fraud and trading decision paths (decisions and alerts to Kafka,
   landed in gold) and the loan-PD scorer run continuously while a paced producer sends every
   stream with a little bad input mixed in.
5. Write the statistical report and monitor each champion (drift against its training period,
   delayed-label precision and recall, the promotion history).
6. Write FINLAKE_HOME/reports/demo/index.html and summary.json: counts per layer (reconciled),
   model quality, stream performance, statistics, monitoring, plots.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

from jobs import common

HISTORY_MIX = "transactions=0.5,market_ticks=0.25,user_events=0.1,bureau_updates=0.07,loan_applications=0.08"
# The short demo (CI's end-to-end test, bench/busy.py): a small history, 20 s of live load, a
# one-point search grid.
SHORT_DEMO_ARGV = ["--history", "20000", "--history-hours", "6", "--fraud-rate", "0.03", "--live-rate", "300",
                   "--live-seconds", "20", "--drain", "400", "--trigger", "1 second", "--noise", "all=0.01", "--seed", "3",
                   *[a for g in ("ml.search.folds=2", "ml.search.max_depth=[3]", "ml.search.learning_rate=[0.3]",
                                 "ml.search.n_estimators=[40, 80]", "stats.sample_rows=3000") for a in ("--conf", g)]]
STUDY_TABLE2 = {"fraud": {"precision": 0.94, "recall": 0.90, "f1": 0.92, "roc_auc": 0.97},
                "trading": {"macro_precision": 0.77, "macro_recall": 0.79, "macro_f1": 0.78, "auc_macro": 0.85},
                "loan_pd": {"rmse_vs_true_pd": 0.028}}
STUDY_TABLE3 = {"transactions": (18, 46, 99.2, 0.08), "market_ticks": (11, 31, 98.1, 0.12),
                "user_events": (9, 27, 97.6, 0.15), "bureau_updates": (22, 51, 99.5, 0.04)}


class Steps:
    """Numbered progress lines with elapsed time (stderr), and the time each step took."""

    def __init__(self, total: int):
        from rich.console import Console

        self.console, self.total, self.n, self.started, self.seconds = Console(stderr=True), total, 0, time.perf_counter(), {}
        self._name, self._t0 = None, None

    def __call__(self, name: str) -> None:
        self.done()
        self.n += 1
        self._name, self._t0 = name, time.perf_counter()
        self.console.rule(f"[bold]{self.n}/{self.total} {name}[/]  ({time.perf_counter() - self.started:,.0f} s)")

    def done(self) -> None:
        if self._name:
            self.seconds[self._name] = round(time.perf_counter() - self._t0, 1)
            self._name = None

    def log(self, msg: str) -> None:
        self.console.log(msg)


def _produce_live(queue, cfg, argv):
    from jobs import produce

    try:
        queue.put(produce.run(None, cfg, produce.build_parser().parse_args(argv)))
    except BaseException as exc:  # reported by the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def layer_counts(spark, cfg, since: dt.datetime) -> dict:
    """Rows per stream and layer that this run wrote (at or after ``since``, so a demo run again
    in the same home counts its own), with duplicates dropped (from ops.dq_results) and
    quarantine reasons."""
    from pyspark.sql import functions as F

    from lakehouse.catalog import Catalog
    from lakehouse.topology import STREAMS

    catalog = Catalog(cfg)

    def read(name, written):
        return spark.read.format("delta").load(catalog.spec(name).location).where(F.col(written) >= F.lit(since))

    dq = read("ops.dq_results", "run_time")
    dups = {r["table"]: int(r["n"] or 0) for r in dq.where("expectation = 'duplicates_dropped'").groupBy("table")
            .agg(F.sum("unexpected_count").alias("n")).collect()}
    out = {}
    for s in STREAMS:
        q = read(f"quarantine.{s}", "quarantined_at")
        reasons = {r["reason"]: r["n"] for r in q.select(F.explode("reasons").alias("reason")).groupBy("reason")
                   .agg(F.count("*").alias("n")).collect()}
        bronze = read(f"bronze.{s}", "ingest_time")
        out[s] = {"bronze": bronze.count(), "bronze_live": bronze.where(F.col("partition") >= 0).count(),
                  "silver": read(f"silver.{s}", "silver_time").count(), "quarantine": q.count(),
                  "duplicates_dropped": dups.get(f"silver.{s}", 0),
                  "quarantine_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}
    return out


def stream_performance(spark, cfg, progress_rows: list, sent: dict, counts: dict) -> dict:
    """Table 3 analog per silver stream: micro-batch processing time (mean, p99), per-row latency
    Kafka -> silver commit (live rows), completeness and error rate."""
    import numpy as np
    from pyspark.sql import functions as F

    from jobs.bench_pipeline import latency_stats
    from lakehouse.catalog import Catalog
    from lakehouse.streaming import silver_query

    catalog = Catalog(cfg)
    out = {}
    for s, c in counts.items():
        batches = [r.batch_duration_ms for r in progress_rows if r.query_name == silver_query(cfg, s) and r.num_input_rows > 0]
        lat = latency_stats(spark, catalog.spec(f"silver.{s}").location, F.col("kafka_partition") >= 0)
        accounted = c["silver"] + c["quarantine"] + c["duplicates_dropped"]
        out[s] = {"batches": len(batches),
                  "batch_mean_ms": round(float(np.mean(batches)), 1) if batches else None,
                  "batch_p99_ms": round(float(np.percentile(batches, 99)), 1) if batches else None,
                  "latency_median_ms": lat.get("median_ms"), "latency_p99_ms": lat.get("p99_ms"),
                  "sent_live": sent.get(s, 0), "bronze_live": c["bronze_live"],
                  "completeness_pct": round(100.0 * accounted / c["bronze"], 3) if c["bronze"] else None,
                  "error_rate_pct": round(100.0 * c["quarantine"] / c["bronze"], 3) if c["bronze"] else None}
    return out


def scoring_performance(spark, cfg, fns: dict) -> dict:
    from jobs.bench_pipeline import latency_stats
    from lakehouse.catalog import Catalog
    from lakehouse.topology import USE_CASES

    catalog = Catalog(cfg)
    out = {}
    for name, fn in fns.items():
        loc = catalog.spec(USE_CASES[name].scores).location
        out[name] = {"batches": len(fn.history), "scored": sum(b["scored"] for b in fn.history),
                     "alerts": sum(b["alerts"] for b in fn.history), "versions": sorted({b["version"] for b in fn.history}),
                     "latency_kafka_to_score": latency_stats(spark, loc) if fn.history else {"rows": 0}}
    return out


def decision_performance(spark, cfg, since: dt.datetime) -> dict:
    """Per decision path, from what it landed in this run (at or after ``since``): decisions
    made (distinct live events decided, refused by the gate included), the valid live events
    silver admitted (the two must be equal), alerts or signals, and the decision latency (the
    decision's Kafka timestamp minus its event's)."""
    import numpy as np
    from pyspark.sql import functions as F

    from lakehouse.catalog import Catalog
    from lakehouse.topology import DECISION_PATHS

    catalog = Catalog(cfg)

    def read(name):
        return spark.read.format("delta").load(catalog.spec(name).location)

    out = {}
    for name, path in DECISION_PATHS.items():
        stream = path.streams[0]
        valid = (read(f"silver.{stream}").where((F.col("kafka_partition") >= 0) & (F.col("silver_time") >= F.lit(since)))
                 .select("event_id").distinct())
        # The decision path's rows (the scorer sets silver_time), decided in this run.
        landed = read(path.table).where(F.col("silver_time").isNull() & (F.col("scored_at") >= F.lit(since)))
        refused = (read("quarantine.scoring").where((F.col("source_table") == path.table) & (F.col("quarantined_at") >= F.lit(since)))
                   .select(F.get_json_object(F.col("payload").cast("string"), "$.event_id").alias("event_id")))
        decided = landed.select("event_id").unionByName(refused).distinct()
        ms = np.array([r[0] for r in landed.select("decision_latency_ms").collect()], dtype=float)
        alerts = landed.where(F.col("decision") == "alert").count() if "decision" in landed.columns else None
        out[name] = {"decisions": decided.count(), "valid_live": valid.count(), "missing": valid.join(decided, "event_id", "left_anti").count(),
                     "refused": refused.count(), "alerts": alerts, "versions": sorted(r[0] for r in landed.select("model_version").distinct().collect()),
                     "latency_p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
                     "latency_p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None}
    return out


def go_live(spark, cfg, args, seed: int, steps: Steps) -> dict:
    """Continuous pipeline and scoring while a paced producer sends every stream; drain; stop."""
    from lakehouse.kafka.clients import end_offsets, ensure_topics, topic_name
    from lakehouse.metrics import ProgressCollector, seconds_behind
    from lakehouse.streaming import kafka_query, start_pipeline, wait_until_idle
    from lakehouse.topology import DECISION_PATHS, GOLD_VIEWS, LAKEHOUSE_SCORED, STREAMS
    from ml.scoring import start_scoring

    collector = ProgressCollector()
    spark.streams.addListener(collector)
    trig = args.trigger
    # A reused broker may hold another run's messages: a new bronze checkpoint starts at the
    # topics' current ends, so this run reads (and reconciles) exactly what it sends.
    from lakehouse.catalog import Catalog

    topics = {s: Catalog(cfg).source_topic(f"bronze.{s}") for s in STREAMS}
    ends = end_offsets(cfg, list(topics.values()))
    queries = start_pipeline(spark, cfg, STREAMS, GOLD_VIEWS, trig,
                             bronze_from={s: json.dumps({topic_name(cfg, t): ends[topic_name(cfg, t)]}) for s, t in topics.items()})
    # Fraud and trading are decided on their decision paths (Kafka -> state -> champion ->
    # Kafka, landed in gold by their landing queries); loan PD stays on the lakehouse scorer.
    from jobs.decide import start_all

    scorers = {}
    for name in LAKEHOUSE_SCORED:   # loan PD: no decision path
        q, fn = start_scoring(spark, cfg, name, processing_time=trig, only_new=True)
        queries.append(q)
        scorers[name] = fn
    decide_from = {s: json.dumps({topic_name(cfg, s): ends[topic_name(cfg, s)]}) for p in DECISION_PATHS.values() for s in p.streams}
    # The decision topics too: on a reused broker they hold an earlier run's decisions, which
    # the new landing checkpoints would otherwise land into this run's tables.
    ensure_topics(cfg)
    land_from = end_offsets(cfg, [t for p in DECISION_PATHS.values() for t in (p.decisions_topic, p.alerts_topic) if t])
    running, deciders = start_all(spark, cfg, list(DECISION_PATHS), starting_offsets=decide_from, land_from=land_from)
    queries += [q for _, q in running]
    steps.log(f"{len(queries)} streaming queries running (trigger {trig})")
    ctx = mp.get_context("fork")
    result = ctx.Queue()
    argv = ["--rate", str(args.live_rate), "--duration", str(args.live_seconds), "--seed", str(seed), "--quiet",
            "--noise", args.noise, "--fraud-rate", str(args.fraud_rate), "--label-delay", "20", "--run-id", f"live-{seed}"]
    producer = ctx.Process(target=_produce_live, args=(result, cfg, argv))  # it forks its own shards
    producer.start()
    t0, failed = time.monotonic(), None
    # Freshness: what Kafka holds of this run (end offsets against the run's start) every 5 s,
    # and how far bronze is behind it: now minus when Kafka held what bronze has landed.
    live_topics = list(topics.values())
    start_total = sum(sum(p.values()) for p in ends.values())
    samples, behind = [(t0, 0)], []
    while producer.is_alive():
        time.sleep(5)
        failed = next((q for q in queries if q.exception() is not None), None)
        if failed:
            break
        now = time.monotonic()
        samples.append((now, sum(sum(p.values()) for p in end_offsets(cfg, live_topics).values()) - start_total))
        landed = sum(r.num_input_rows for r in collector.snapshot() if r.query_name in {kafka_query(cfg, s) for s in STREAMS})
        behind.append(seconds_behind(samples, landed, now))
        steps.log(f"live: {now - t0:,.0f} s of {args.live_seconds:.0f} s; Kafka {samples[-1][1]:,} messages; bronze {landed:,} "
                  f"({behind[-1]:,.0f} s behind Kafka); {deciders['fraud'].decided:,} transactions decided")
    sent = result.get(timeout=120)
    producer.join(10)
    if "error" in sent:
        common.stop_all(queries)
        common.fail(f"live producer failed: {sent['error']}")
    # Drain: stop once every layer has caught up with what was sent (or the drain time is up).
    failed = failed or wait_until_idle(queries, args.drain)
    time.sleep(2 * float(str(trig).split()[0]))
    common.stop_all(queries)
    if failed:
        common.fail(f"query {failed.name} failed: {common.root_cause(failed.exception())}")
    time.sleep(0.5)
    progress = collector.snapshot()
    from lakehouse.catalog import Catalog

    collector.flush(spark, Catalog(cfg).spec("ops.stream_metrics"))
    spark.streams.removeListener(collector)
    return {"sent": sent, "progress": progress, "scorers": scorers, "deciders": deciders,
            "bronze_behind_s": {"max": round(max(behind), 1) if behind else None,
                                "last": round(behind[-1], 1) if behind else None}}


def demo_figures(counts: dict, perf: dict, progress_rows: list) -> dict:
    """Layer counts per stream, and scored rows per batch over time."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figs = {}
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    streams = list(counts)
    x = range(len(streams))
    for i, (key, label) in enumerate((("bronze", "bronze"), ("silver", "silver"), ("quarantine", "quarantine"))):
        ax.bar([v + i * 0.27 for v in x], [counts[s][key] for s in streams], width=0.27, label=label)
    ax.set_xticks([v + 0.27 for v in x], streams, rotation=20)
    ax.set_yscale("log")
    ax.set_title("Rows per layer")
    ax.legend()
    fig.tight_layout()
    figs["layers"] = fig
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    from lakehouse.streaming import INGEST_QUERY

    for name in (INGEST_QUERY, "silver_transactions", "gold_card_features", "decide_fraud", "score_loan_pd"):
        pts = sorted((r.timestamp, r.num_input_rows) for r in progress_rows if r.query_name == name and r.num_input_rows > 0)
        if pts:
            t0 = pts[0][0]
            ax.plot([(t - t0).total_seconds() for t, _ in pts], [n for _, n in pts], marker=".", label=name)
    ax.set(xlabel="seconds into the live run", ylabel="rows per micro-batch", title="Live micro-batches")
    ax.legend()
    fig.tight_layout()
    figs["batches"] = fig
    return figs


def monitor_champions(spark, cfg, names: list[str]) -> dict:
    """Run the monitor on each champion and gather the report's monitoring section: the drift
    table and PSI bars, fraud precision and recall by hour on labels that arrived, and every
    registered version's promotion decision."""
    from ml.datasets import USE_CASES
    from ml.monitor import (champion_context, drift_table, label_figure, label_performance_over_time, latest_checks,
                            monitor_use_case, promotion_history, psi_figure)

    results = {n: monitor_use_case(spark, cfg, n) for n in names}
    table = drift_table(latest_checks(spark, cfg))
    figures = [psi_figure(table, float(cfg["monitor.psi_threshold"]))]
    perf = None
    if "fraud" in names:
        ctx = champion_context(cfg, USE_CASES["fraud"])
        perf = label_performance_over_time(spark, cfg, "fraud", ctx["reference_end"])
        if not perf.empty:
            figures.append(label_figure(perf, f"{ctx['name']} v{ctx['version']}"))
    summary = {n: {"version": r["version"], "verdict": r["verdict"], "drifting": r["drifting"], "degraded": r["degraded"],
                   "window": r["window"]} for n, r in results.items()}
    return {"summary": summary, "drift": table, "label_performance": perf, "promotions": promotion_history(cfg), "figures": figures}


def build_report(summary: dict, figures: dict, training_figs: dict[str, list[Path]], out: Path, monitoring: dict | None = None) -> Path:
    import base64

    import stats

    def img(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()

    c = summary["counts"]
    layers = [{"stream": s, "produced": v["produced"], "bronze": v["bronze"], "silver": v["silver"], "quarantine": v["quarantine"],
               "duplicates dropped": v["duplicates_dropped"], "reconciled": v["reconciled"]} for s, v in c.items()]
    reasons = [{"stream": s, "reason": r, "rows": n} for s, v in c.items() for r, n in list(v["quarantine_reasons"].items())[:6]]
    t2 = []
    for name, m in summary["models"].items():
        for who in ("xgboost", "xgboost_uncalibrated", "gbt", "baseline", "ceiling"):
            if who in m["metrics"]:
                row = {"use case": name, "model": who}
                row.update({k: m["metrics"][who].get(k) for k in m["table2_keys"]})
                t2.append(row)
        row = {"use case": name, "model": "study"}
        row.update({k: STUDY_TABLE2[name].get(k) for k in m["table2_keys"]})
        t2.append(row)
    t3 = [{"stream": s, "mean batch ms (study)": STUDY_TABLE3.get(s, ("–",) * 4)[0], "mean batch ms": v["batch_mean_ms"],
           "p99 batch ms (study)": STUDY_TABLE3.get(s, ("–",) * 4)[1], "p99 batch ms": v["batch_p99_ms"],
           "Kafka->silver median ms": v["latency_median_ms"], "Kafka->silver p99 ms": v["latency_p99_ms"],
           "completeness % (study)": STUDY_TABLE3.get(s, ("–",) * 4)[2], "completeness %": v["completeness_pct"],
           "error rate % (study)": STUDY_TABLE3.get(s, ("–",) * 4)[3], "error rate %": v["error_rate_pct"]}
          for s, v in summary["streams"].items()]
    scoring = [{"use case": n, "batches": v["batches"], "scored": v["scored"], "alerts": v["alerts"], "versions": ", ".join(v["versions"]),
                "Kafka->score median ms": v["latency_kafka_to_score"].get("median_ms"),
                "Kafka->score p99 ms": v["latency_kafka_to_score"].get("p99_ms")} for n, v in summary["scoring"].items()]
    decided = [{"decision path": n, "decisions": d["decisions"], "valid live events": d["valid_live"], "refused by the gate": d["refused"],
                "alerts": d["alerts"], "versions": ", ".join(d["versions"]), "Kafka->decision p50 ms": d["latency_p50_ms"],
                "Kafka->decision p99 ms": d["latency_p99_ms"]} for n, d in summary.get("decisions", {}).items()]
    sections = [
        {"heading": "Run", "text": f"Seed {summary['seed']}; {summary['machine']['cpus']} CPUs, {summary['machine']['memory_gb']} GiB; "
                                   f"{summary['seconds']:,.0f} s in all. Steps (s): " + ", ".join(f"{k} {v}" for k, v in summary["steps"].items()),
         "tables": [], "figures": []},
        {"heading": "Events per layer (history backfill + live)", "text": "Every produced event is in bronze; silver, quarantine and "
         "dropped duplicates account for every bronze row (reconciled = yes).", "tables": [layers, reasons],
         "figures": [stats.figure_to_data_uri(figures["layers"])]},
        {"heading": "Model quality (Table 2 analog: test period, beside the baseline, the ceiling and the study)",
         "text": "The ceiling is the same metric computed from the generator's true probabilities. "
                 "xgboost_uncalibrated is the booster before its isotonic calibration (same ranking, raw probabilities). "
                 + " ".join(f"{n}: xgboost vs baseline p = {m['vs_baseline']['p_value']:.3g} ({m['vs_baseline']['test']}), "
                            + ("significantly better." if m["vs_baseline"]["significant"] else "NOT significantly better.")
                            for n, m in summary["models"].items() if m.get("vs_baseline")),
         "tables": [t2],
         "figures": [img(p) for name in training_figs for p in training_figs[name]]},
        {"heading": "Stream performance (Table 3 analog, live run)", "text": f"Offered {summary['live']['rate']:,} msgs/s for "
         f"{summary['live']['seconds']} s; micro-batch trigger {summary['live']['trigger']} (the decision paths: "
         "decisions.trigger). Fraud and trading are decided on their decision paths (jobs/decide.py: Kafka -> per-key "
         "state -> gate -> champion -> Kafka, landed in gold); loan PD is scored over gold.", "tables": [t3, decided, scoring],
         "figures": [stats.figure_to_data_uri(figures["batches"])]},
        {"heading": "Statistics (Table 4 analog)", "text": f"Full report: {summary['stats_report']}",
         "tables": [summary["table4"]], "figures": []},
    ]
    if monitoring is not None:
        verdicts = "; ".join(f"{n}: {v['verdict']}" + (f" ({', '.join(v['drifting'] + v['degraded'])})" if v["drifting"] or v["degraded"] else "")
                             for n, v in monitoring["summary"].items())
        drift = monitoring["drift"].round({"psi": 4, "ks_pvalue": 6})
        sections.append({
            "heading": "Monitoring (jobs/monitor.py, ops.model_monitor)",
            "text": f"Verdicts: {verdicts}.\n\nEach champion's training period is the reference; the recent window is the last "
                    "monitor.recent_hours of gold's event time. A feature drifts when PSI > monitor.psi_threshold and the KS test rejects "
                    "at monitor.ks_alpha. The 24-hour window features fill up over the first day of history, so rows from that "
                    "first day differ from later ones: a drift flag on them is the data's warm-up, not the world changing. The "
                    "live phase sends hundreds of transactions per second of event time against the history's one or so, so the "
                    "per-card 10-minute and 1-hour counts and sums of the live rows leave the training range: a flag on those, "
                    "and a lower PR-AUC on the live labels, is the monitor seeing the demo's load generator, correctly.\n\n"
                    "Precision and recall by hour are the fraud champion's, at its threshold, on transactions from the end of its "
                    "training period on whose labels have arrived. The promotion history lists every registered version and the "
                    "rule's decision (metric, paired test, p-value).",
            "tables": [drift, *([monitoring["label_performance"].round(4)] if monitoring["label_performance"] is not None else []),
                       monitoring["promotions"]],
            "figures": [stats.figure_to_data_uri(f) for f in monitoring["figures"]]})
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(stats.render_html("finlake demo", sections))
    return page


TABLE2_KEYS = {"fraud": ["precision", "recall", "f1", "roc_auc", "pr_auc", "recall_at_1pct_fpr", "log_loss", "ece"],
               "trading": ["macro_precision", "macro_recall", "macro_f1", "auc_macro"],
               "loan_pd": ["rmse_vs_true_pd", "roc_auc", "brier"]}


def run(spark, cfg, args) -> dict:
    import stats
    from jobs import produce, stream
    from jobs import stats_report as stats_job
    from jobs import train as train_job
    from jobs.bench_pipeline import machine
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import ensure_topics

    started = time.perf_counter()
    # What this run writes is counted from here on: a demo run again in the same home
    # reconciles its own rows, not the earlier runs' too.
    since = dt.datetime.now(dt.timezone.utc)
    steps = Steps(7)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    out = cfg.path("paths.reports") / "demo"

    steps("Kafka")
    info = ensure_broker(cfg)
    ensure_topics(cfg)
    steps.log(f"{'using the broker' if info['reused'] else 'started the broker'} at {info['bootstrap']}")

    steps("Training history -> bronze -> silver -> gold")
    span = args.history_hours * 3600.0
    hist = produce.run(spark, cfg, produce.build_parser().parse_args([
        "--mode", "bronze", "--count", str(args.history), "--rate", "max", "--sim-rate", f"{args.history / span:.6f}",
        "--start", dt.datetime.fromtimestamp(time.time() - span - 900, dt.timezone.utc).isoformat(), "--seed", str(seed), "--fraud-rate", str(args.fraud_rate), "--mix", HISTORY_MIX,
        "--label-delay", "120", "--quiet", "--run-id", f"history-{seed}"]))
    steps.log(f"history: {hist['delivered']:,} events over {args.history_hours} h of event time: {hist['per_topic']}")
    pipeline = stream.run(spark, cfg, argparse.Namespace(streams="all", layers="silver,gold", available_now=True, timeout=None))
    steps.log(f"pipeline caught up in {pipeline['seconds']} s")

    steps("Training fraud, trading and loan-PD models")
    trained = train_job.run(spark, cfg, argparse.Namespace(use_case="all", as_of=None))["use_cases"]

    steps(f"Live: {args.live_rate:,} msgs/s for {args.live_seconds:.0f} s through the pipeline and the decision paths")
    live = go_live(spark, cfg, args, seed + 1, steps)

    steps("Statistics report")
    stats_out = stats_job.run(spark, cfg, argparse.Namespace(use_case="all", out=str(out / "stats")))

    steps("Monitoring the champions")
    monitoring = monitor_champions(spark, cfg, list(trained))

    steps("Summary and report")
    counts = layer_counts(spark, cfg, since)
    produced = {t: hist["per_topic"].get(t, 0) + live["sent"]["per_topic"].get(t, 0) for t in counts}
    for s, c in counts.items():
        c["produced"] = produced[s]
        c["reconciled"] = "yes" if (c["bronze"] == produced[s] and c["silver"] + c["quarantine"] + c["duplicates_dropped"] == c["bronze"]) else "NO"
    perf = stream_performance(spark, cfg, live["progress"], live["sent"]["per_topic"], counts)
    scoring = scoring_performance(spark, cfg, live["scorers"])
    decisions = decision_performance(spark, cfg, since)
    models = {n: {"model": r["model"], "rows": r["rows"], "seconds": r["seconds"], "best": r["best"], "metrics": r["metrics"],
                  "table2_keys": TABLE2_KEYS[n], "promotion": r["promotion"]["reason"], "vs_baseline": r.get("vs_baseline")}
              for n, r in trained.items()}
    steps.done()
    summary = {
        "seed": seed, "machine": machine(), "seconds": round(time.perf_counter() - started, 1), "steps": steps.seconds,
        "produced": {"history": hist["delivered"], "live": live["sent"]["delivered"], "live_noise": live["sent"]["per_noise"]},
        "counts": counts, "reconciled": all(c["reconciled"] == "yes" for c in counts.values()),
        "quarantine_spikes": quarantine_spikes(cfg, counts),
        "models": models, "streams": perf, "scoring": scoring, "decisions": decisions,
        "live": {"rate": args.live_rate, "seconds": args.live_seconds, "trigger": args.trigger,
                 "achieved_rate": live["sent"]["achieved_rate"], "bronze_behind_kafka_s": live["bronze_behind_s"]},
        "table4": stats.json_safe(stats_out["table4"]), "stats_report": str(out / "stats" / "report.html"),
        "monitoring": monitoring["summary"],
    }
    figs = demo_figures(counts, perf, live["progress"])
    training_figs = {n: sorted(Path(r["report_dir"]).glob("*.png")) for n, r in trained.items()}
    page = build_report(summary, figs, training_figs, out, monitoring)
    stats.write_json(summary, out / "summary.json")
    _print_summary(summary, page, cfg)
    return summary


def quarantine_spikes(cfg, counts: dict) -> list[str]:
    """Streams whose quarantined share is above ``pipeline.max_quarantine_share``, one line each."""
    from lakehouse.quarantine import max_share, min_rows, spikes

    shares = {f"silver.{s}": {"checked": c["silver"] + c["quarantine"], "quarantined": c["quarantine"],
                              "reasons": c["quarantine_reasons"]} for s, c in counts.items()}
    return spikes(shares, max_share(cfg), min_rows(cfg))


def demo_shortfalls(summary: dict) -> list[str]:
    """What the run fell short of, one phrase each: a stream that does not reconcile (and by how
    much), a quarantine spike, a live phase that scored nothing."""
    out = list(summary.get("quarantine_spikes", []))
    for s, c in summary["counts"].items():
        if c["reconciled"] != "yes":
            missing = c["produced"] - c["bronze"]
            open_rows = c["bronze"] - (c["silver"] + c["quarantine"] + c["duplicates_dropped"])
            out.append(f"{s} not reconciled ({missing:,} of {c['produced']:,} produced not in bronze, "
                       f"{open_rows:,} bronze rows in neither silver, quarantine nor the duplicate count)")
    for name, d in summary.get("decisions", {}).items():
        if not d["decisions"]:
            out.append(f"the {name} decision path decided nothing live")
        elif d["missing"] or d["decisions"] != d["valid_live"]:
            out.append(f"the {name} decision path decided {d['decisions']:,} events against {d['valid_live']:,} valid live ones "
                       f"({d['missing']:,} valid ones undecided)")
    for name, v in summary["scoring"].items():
        if not v.get("scored"):
            out.append(f"the live phase scored no {name} row")
    return out


def _print_summary(summary: dict, page: Path, cfg) -> None:
    from jobs.sql import render

    rows = [(s, v["produced"], v["bronze"], v["silver"], v["quarantine"], v["duplicates_dropped"], v["reconciled"])
            for s, v in summary["counts"].items()]
    print("\nEvents per layer")
    print(render(["stream", "produced", "bronze", "silver", "quarantine", "dups dropped", "reconciled"], rows, "table"))
    print("Model quality on the test period")
    for n, m in summary["models"].items():
        keys = TABLE2_KEYS[n]
        rows = [(who, *[None if met.get(k) is None else round(met[k], 4) for k in keys]) for who, met in m["metrics"].items()]
        print(render([f"{n}: model", *keys], rows, "table"))
        fm = m["metrics"].get("xgboost", {})
        if fm.get("net_saved") is not None:
            ceiling = m["metrics"].get("ceiling", {}).get("net_saved")
            print(f"  alerts by {fm.get('objective')}: {fm['tp'] + fm['fp']:,} on the test period, "
                  f"{100 * (fm.get('fraud_amount_caught_share') or 0):.1f}% of the fraud amount caught, "
                  f"net {fm['net_saved']:,.0f} saved after reviews" + (f" (ceiling {ceiling:,.0f})" if ceiling is not None else ""))
        vs = m.get("vs_baseline")
        if vs:
            print(f"  xgboost vs baseline ({vs['metric']}, {vs['test']}): p = {vs['p_value']:.3g}, "
                  + ("significantly better" if vs["significant"] else f"NOT significantly better at alpha {vs['alpha']}"))
    mon = summary.get("monitoring") or {}
    if mon:
        print("Monitoring: " + "; ".join(f"{n} v{v['version']} {v['verdict']}" + (f" ({', '.join(v['drifting'] + v['degraded'])})"
                                                                               if v["drifting"] or v["degraded"] else "")
                                         for n, v in mon.items()))
    for n, d in summary.get("decisions", {}).items():
        print(f"Decided live ({n}): {d['decisions']:,} decisions for {d['valid_live']:,} valid live events"
              + (f", {d['alerts']:,} alerts" if d["alerts"] is not None else "")
              + (f"; Kafka -> decision on Kafka p50 {d['latency_p50_ms'] / 1000:,.1f} s, p99 {d['latency_p99_ms'] / 1000:,.1f} s"
                 if d["latency_p50_ms"] is not None else ""))
    behind = summary["live"].get("bronze_behind_kafka_s") or {}
    if behind.get("max") is not None:
        print(f"Lakehouse freshness during the live load: bronze at most {behind['max']:,.0f} s behind Kafka "
              f"({behind['last']:,.0f} s at the last look)")
    for n, v in summary["scoring"].items():
        lat = v["latency_kafka_to_score"]
        print(f"Scored live on the lakehouse path ({n}): {v['scored']:,} rows"
              + (f"; Kafka -> committed score median {lat['median_ms'] / 1000:,.1f} s, p99 {lat['p99_ms'] / 1000:,.1f} s"
                 if lat.get("median_ms") is not None else ""))
    shortfalls = demo_shortfalls(summary)
    if shortfalls:
        print(f"\nReport (incomplete run): {page}")
        return
    print(f"\nDone in {summary['seconds']:,.0f} s. Report: {page}")
    print(f"  summary: {page.parent / 'summary.json'}")
    print(f"  MLflow UI: {sys.executable.rsplit('/', 1)[0]}/mlflow ui --backend-store-uri {cfg['ml.mlflow.tracking_uri']}")
    print(f"  SQL: {sys.executable} jobs/sql.py \"SELECT decision, count(*) FROM gold.fraud_scores GROUP BY 1\"")


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--history", type=int, default=300000, help="events in the training history (bronze backfill)")
    p.add_argument("--history-hours", type=float, default=48.0, help="event-time span of the history")
    p.add_argument("--fraud-rate", type=float, default=0.01, help="share of fraudulent transactions")
    p.add_argument("--live-rate", type=int, default=1000, help="live producer: messages per second over all streams")
    p.add_argument("--live-seconds", type=float, default=120.0, help="live producer: seconds of load")
    p.add_argument("--drain", type=float, default=300.0, help="at most this many seconds for the live queries to catch up after the load (they stop as soon as all are idle)")
    p.add_argument("--trigger", default="5 seconds", help="processing-time trigger of the live queries")
    p.add_argument("--noise", default="all=0.005", help="bad input in the live stream (see jobs/produce.py)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a new one each run)")
    # The machine-readable record is the report's summary.json (its path is printed), not a
    # JSON line on a newcomer's console.
    result = common.execute(p, argv, run, app_name="finlake-demo")
    shortfalls = demo_shortfalls(result)
    if shortfalls:
        common.fail("the demo fell short: " + "; ".join(shortfalls), 1)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
