"""Decision-path latency against a pass-through floor taken in the same run.

    python -m bench.decide                          # 1,000 / 5,000 / 20,000 tx/s, 30 s each
    python -m bench.decide --rates 5000 --seconds 60 --with-lakehouse        # beside the whole lakehouse
    python -m bench.decide --rates 5000 --seconds 60 --with-lakehouse ingest # beside bronze and silver of its two topics

For each offered load a paced producer sends valid transactions (and the user events that go
with them) to the real broker. Two queries run with the same trigger:
- the fraud decision path: one streaming plan (parse, rules, per-customer state, risk lookup,
  gate, the JVM scorer on the served champion, Spark's Kafka sink);
- a stateless Kafka -> Kafka pass-through of the same topic (the floor).
Latency = Kafka timestamp of the output record minus that of its transaction. ``--with-lakehouse``
runs the whole lakehouse beside them (the ingest query of all six topics and every gold view,
trigger 5 s, as the demo does; the loan-PD scorer aside); ``--with-lakehouse ingest`` bronze and
silver of the two topics only (the earlier measurements). The scoring step alone against raw
``inplace_predict``: ``python -m bench.jvm_scoring``. The champion is a booster trained on random
feature rows (speed does not depend on what it learnt). Results: bench/results/decide.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def register_bench_champion(cfg, seed: int = 0) -> str:
    """Register a fraud booster over finlake's card features (trained on random rows) and make
    it the champion; returns its version."""
    import mlflow
    import xgboost as xgb

    from lakehouse.gold import CARD_FEATURES
    from ml import registry

    client = registry.connect(cfg)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, len(CARD_FEATURES)))
    y = (x[:, 0] + rng.normal(size=5000) > 2).astype(int)
    booster = xgb.train({"max_depth": 6, "objective": "binary:logistic"}, xgb.DMatrix(x, y, feature_names=list(CARD_FEATURES)), 150)
    import pandas as pd

    example = pd.DataFrame(x[:5], columns=list(CARD_FEATURES))
    name = registry.registered_name(cfg, "fraud")
    # The project's experiment helper keeps artifacts under FINLAKE_HOME (not ./mlruns).
    with mlflow.start_run(experiment_id=registry.experiment(cfg, client, "bench-decide")):
        version = registry.log_booster(client, booster, name, example, booster.inplace_predict(example),
                                       {"features": json.dumps(list(CARD_FEATURES)), "threshold": "0.5", "kind": "binary",
                                        "classes": "[]"})
    client.set_registered_model_alias(name, registry.CHAMPION, version)
    return version


def _messages(rate: float, seconds: float, seed: int):
    """(topic, key, value) of valid transactions and user events, event times from now on."""
    from lakehouse.generators.streams import GeneratorConfig, generate

    total = int(rate * seconds)
    cfg = GeneratorConfig(seed=seed, start=time.time(), rate=rate / 0.67, streams=("transactions", "user_events"),
                          fraud_rate=0.005)
    out = []
    for e in generate(cfg):
        if e.is_truth:
            continue
        out.append((e.topic, (e.key or "").encode(), json.dumps(e.event).encode()))
        if len(out) >= total:
            break
    return out


def _produce(cfg, msgs, rate, prefix, result):
    from confluent_kafka import Producer

    from lakehouse.kafka.clients import client_config

    p = Producer(client_config(cfg, **{"linger.ms": "5", "queue.buffering.max.messages": "2000000"}))
    start = time.monotonic()
    for i, (topic, key, value) in enumerate(msgs):
        due = start + i / rate
        while (wait := due - time.monotonic()) > 0:
            time.sleep(min(0.002, wait))
        while True:
            try:
                p.produce(prefix + topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    result["achieved"] = len(msgs) / (time.monotonic() - start)


def _consume(cfg, topics, until, out):
    """Kafka timestamps (ms) of every record on ``topics`` and the input timestamp it carries."""
    from confluent_kafka import Consumer

    from lakehouse.kafka.clients import client_config

    c = Consumer(client_config(cfg, **{"group.id": f"bench-{time.time()}", "auto.offset.reset": "earliest"}))
    c.subscribe(topics)
    while time.monotonic() < until["t"]:
        for m in c.consume(2000, 0.5):
            if m.error():
                continue
            v = json.loads(m.value())
            ts_in = v.get("event_kafka_timestamp")
            if ts_in is None:
                continue
            t_in = np.datetime64(ts_in.replace("Z", "")).astype("datetime64[us]").astype(np.int64) / 1000.0 \
                if isinstance(ts_in, str) else float(ts_in)
            out.setdefault(m.topic(), []).append((m.timestamp()[1], t_in, v.get("event_id")))
    c.close()


def start_passthrough(spark, cfg, topic, out_topic, checkpoint, trigger):
    from pyspark.sql import functions as F

    from lakehouse.kafka.clients import spark_kafka_options
    from lakehouse.streaming import read_kafka

    df = read_kafka(spark, cfg, topic, "latest").select(
        F.col("key"), F.to_json(F.struct(F.col("timestamp").alias("event_kafka_timestamp"))).alias("value"))
    return (df.writeStream.queryName("passthrough").format("kafka").options(**spark_kafka_options(cfg)).option("topic", out_topic)
            .option("checkpointLocation", checkpoint).trigger(processingTime=trigger).start())


def stage_times(spark, since_ms: int) -> list[dict]:
    """Spark's completed stages since ``since_ms`` grouped by query and task count:
    how many, median wall time and median executor run time, in ms (from Spark's status store,
    which keeps them with the UI off)."""
    sc = spark.sparkContext
    store = sc._jsc.sc().statusStore()
    stages = store.stageList(None, False, False, sc._gateway.new_array(sc._jvm.double, 0), sc._jvm.java.util.ArrayList())
    rows = {}
    for i in range(stages.size()):
        st = stages.apply(i) if hasattr(stages, "apply") else stages.get(i)
        sub, done = st.submissionTime(), st.completionTime()
        if sub.isEmpty() or done.isEmpty() or sub.get().getTime() < since_ms:
            continue
        desc = str(st.description().get()) if not st.description().isEmpty() else ""
        query = "decide" if "decide_fraud" in desc else "passthrough" if "passthrough" in desc else (desc[:40] or "other")
        name = f"{query}: stage of {st.numTasks()} tasks"
        rows.setdefault(name, []).append((done.get().getTime() - sub.get().getTime(), st.executorRunTime(), st.numTasks()))
    return [{"stage": k, "count": len(v), "wall_ms_median": float(np.median([w for w, _, _ in v])),
             "executor_ms_median": float(np.median([e for _, e, _ in v])), "tasks_median": float(np.median([t for _, _, t in v]))}
            for k, v in sorted(rows.items(), key=lambda kv: -sum(w for w, _, _ in kv[1]))]


def codegen_totals(spark) -> dict:
    """Classes the JVM's code generator has compiled so far (Spark's ``CodegenMetrics``: a
    compile is a miss in its cache of generated code) and the recent compiles' mean ms."""
    hist = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    return {"compiled": int(hist.getCount()), "compile_ms_mean": round(float(hist.getSnapshot().getMean()), 1)}


def summarise(records, first_ms=None):
    lat = np.array([o - i for o, i, _ in records], dtype=float)
    if len(lat) == 0:
        return {"records": 0}
    return {"records": int(len(lat)), "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
            "p50_last_third_ms": float(np.percentile(lat[-len(lat) // 3:], 50)) if len(lat) >= 3 else None}


def run(rates, seconds, with_lakehouse, trigger, conf=(), out_name="decide.json"):
    import pyspark  # noqa: F401

    from lakehouse.session import build_session
    from lakehouse.config import load_config
    from lakehouse.runtime import StreamingRun
    from lakehouse.topology import GOLD_VIEWS, STREAMS
    from serving.decision import start_decisions
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import ensure_topics, topic_name

    results, spark = [], None
    for rate in rates:
        prefix = f"bd{int(time.time())}_"
        # No initial state: each run's topics are new, but the warehouse's silver may hold events
        # of an earlier run with the same seed, which a new checkpoint would count as already seen.
        cfg = load_config(None, [f"kafka.topic_prefix={prefix}", f"decisions.trigger={trigger}", "decisions.initial_state=false",
                                 "security.pan_hmac_key_missing=generate", *conf])
        ensure_broker(cfg)
        ensure_topics(cfg)
        from confluent_kafka.admin import NewTopic

        from lakehouse.kafka.clients import admin_client
        admin = admin_client(cfg)
        for f in admin.create_topics([NewTopic(prefix + "passthrough", 2, 1)]).values():
            f.result()
        spark = spark or build_session(cfg, app_name="finlake-bench-decide")
        from lakehouse.catalog import Catalog

        Catalog(cfg).register(spark)   # as every job does at start: declared tables exist, with their schemas
        version = register_bench_champion(cfg)
        msgs = _messages(rate, seconds, seed=rate)
        base = cfg.path("paths.checkpoints") / "bench-decide" / prefix
        run_ = StreamingRun(spark, cfg, "bench-decide")
        if with_lakehouse == "all":
            run_.start_lakehouse(STREAMS, GOLD_VIEWS, "5 seconds")
        elif with_lakehouse == "ingest":
            run_.start_lakehouse(["transactions", "user_events"], [], "5 seconds")
        lakehouse_proc = None
        if with_lakehouse in ("process", "process-nice"):
            # The whole lakehouse as its own Spark application (jobs/stream.py, trigger 5 s), as a
            # deployment runs serving and the record apart; "process-nice" lowers its CPU priority.
            import subprocess
            import sys

            cmd = [sys.executable, "jobs/stream.py", "--streams", "all", "--timeout", str(seconds + 120),
                   *[a for c in (f"kafka.topic_prefix={prefix}", "pipeline.trigger_interval=5 seconds",
                                 "security.pan_hmac_key_missing=generate", *conf) for a in ("--conf", c)]]
            lakehouse_proc = subprocess.Popen((["nice", "-n", "10"] if with_lakehouse == "process-nice" else []) + cmd, cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(45)   # its JVM up and its queries started
        q = run_.start(lambda: start_decisions(spark, cfg, "fraud", "latest", trigger, str(base / "decide"))[0])
        run_.start(lambda: start_passthrough(spark, cfg, topic_name(cfg, "transactions"), prefix + "passthrough", str(base / "pass"), trigger))
        time.sleep(15)   # both queries running and idle before the load starts
        got, until, produced = {}, {"t": time.monotonic() + 10 ** 6}, {}
        consumer = threading.Thread(target=_consume, args=(cfg, [topic_name(cfg, "fraud_decisions"), prefix + "passthrough"], until, got))
        consumer.start()
        t0, since_ms, codegen0 = time.monotonic(), int(time.time() * 1000), codegen_totals(spark)
        _produce(cfg, msgs, rate, prefix, produced)
        n_tx = sum(1 for t, _, _ in msgs if t == "transactions")
        deadline = time.monotonic() + max(60, seconds)
        while time.monotonic() < deadline and len(got.get(topic_name(cfg, "fraud_decisions"), [])) < n_tx:
            time.sleep(1)
        until["t"] = time.monotonic() + 3
        consumer.join()
        progress = [p for p in q.recentProgress]
        codegen = codegen_totals(spark)
        codegen["compiled"] -= codegen0["compiled"]
        run_.stop()
        if lakehouse_proc is not None:
            lakehouse_proc.terminate()
            lakehouse_proc.wait(120)
        decided = got.get(topic_name(cfg, "fraud_decisions"), [])
        passed = got.get(prefix + "passthrough", [])
        d, p = summarise(decided), summarise(passed)
        dur = [p_["durationMs"] for p_ in progress if p_["numInputRows"] > 0]
        breakdown = {k: float(np.median([x.get(k, 0) for x in dur])) for k in ("addBatch", "queryPlanning", "getBatch", "latestOffset",
                                                                                 "walCommit", "commitOffsets", "triggerExecution")} if dur else {}
        row = {"rate": rate, "seconds": seconds, "achieved_rate": round(produced.get("achieved", 0)), "transactions": n_tx,
               "decisions": d.get("records", 0), "distinct_decided": len({e for _, _, e in decided}), "decision": d, "passthrough": p,
               "p50_ratio_to_floor": round(d["p50_ms"] / p["p50_ms"], 2) if d.get("records") and p.get("records") else None,
               "with_lakehouse": with_lakehouse, "plan": "one streaming plan (Kafka sink, JVM scorer)", "trigger": trigger, "conf": list(conf), "model_version": version,
               "batch_ms_median": breakdown, "cpus": os.cpu_count(),
               "batches": [(x["batchId"], x["numInputRows"], x["durationMs"].get("triggerExecution")) for x in progress],
               "stages": stage_times(spark, since_ms), "codegen_during_load": codegen}
        print(json.dumps(row), flush=True)
        results.append(row)
    out = ROOT / "bench" / "results" / out_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,5000,20000")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--with-lakehouse", nargs="?", const="all", default=None, choices=["all", "ingest", "process", "process-nice"],
                   help="run the lakehouse beside: all (every stream's ingest and every gold view) or ingest (bronze and silver of the two topics)")
    p.add_argument("--trigger", default=None, help="the decision and pass-through queries' trigger (default: decisions.trigger)")
    p.add_argument("--out", default="decide.json", help="the record's file name under bench/results")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="finlake config override (repeatable)")
    a = p.parse_args(argv)
    if a.trigger is None:
        from lakehouse.config import load_config

        a.trigger = str(load_config(None, list(a.conf))["decisions.trigger"])
    results = run([int(r) for r in a.rates.split(",")], a.seconds, a.with_lakehouse, a.trigger, a.conf, a.out)
    short = [f"{r['rate']}/s: {r['distinct_decided']:,} of {r['transactions']:,} transactions decided" for r in results
             if "rate" in r and r["distinct_decided"] != r["transactions"]]
    if short:
        print(f"bench.decide: error: {'; '.join(short)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
