"""Per-key state for the fraud decision path: the JVM state finlake uses (``finlake.FraudState``
as ``transformWithState``, candidate ``jvm``) against the same logic as ``flatMapGroupsWithState``
(``flatmap``, what finlake used before) and the same state and features written for
``applyInPandasWithState`` (``pandas``: state handed over in bulk with each group's Arrow data), on
the same parsed events, beside a parse-only floor taken in the same run.

    python -m bench.state_candidates                       # 60,000 transactions (+ user events)
    python -m bench.state_candidates --transactions 200000 --batch 20000
    python -m bench.state_candidates --candidates floor,jvm,flatmap --repeat 5 --batch 2000 --transactions 20000 \
        --out state_operators_batch2000.json

1. Parity: the three run over a small backlog, 500 offsets per topic a batch, into memory
   tables; every feature of every transaction must agree (nulls alike, numbers within 1e-9
   relative).
2. Capacity: a backlog of transactions and user events on the real broker; each candidate
   catches up from the earliest offset with ``--batch`` offsets per topic per micro-batch
   (availableNow, a new checkpoint, RocksDB state, noop sink): transactions per second, and
   the median batch time.
Results: bench/results/state_candidates_batch<N>.json (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.decide import _produce

ROOT = Path(__file__).resolve().parent.parent
M10, H1, D1 = 600_000, 3_600_000, 86_400_000
RISKY = ("password_reset", "device_change", "payee_add")
TX_STATE = (("ts", "long"), ("id", "string"), ("card", "string"), ("merchant", "string"), ("country", "string"),
            ("amt", "double"), ("lat", "double"), ("lon", "double"), ("present", "boolean"))
UE_STATE = (("ue_ts", "long"), ("ue_id", "string"), ("ue_risky", "boolean"), ("ue_device", "boolean"), ("ue_country", "string"))
STATE_DDL = ", ".join(f"{n} array<{t}>" for n, t in TX_STATE + UE_STATE) + ", newest long"


def _haversine(lat1, lon1, lat2, lon2):
    """As finlake.FraudState.haversine (and lakehouse.gold.haversine_km): None in, None out."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (lat1, lon1, lat2, lon2)):
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def pandas_fraud_state(features: list[str], lateness_ms: int):
    """``applyInPandasWithState`` function computing ``finlake.FraudState``'s features with the
    same state (each card's transactions over 30 days plus lateness, the customer's user events
    over a day), the same dedup by event id and the same window bounds."""
    retention = 30 * D1 + lateness_ms

    def fn(key, pdfs, state):
        if state.hasTimedOut:
            state.remove()
            return
        batch = pd.concat(list(pdfs), ignore_index=True)
        kinds = {"string": object, "long": "int64", "double": "float64", "boolean": bool}
        if state.exists:
            s = state.get
            h = {n: np.asarray(s[i] if s[i] is not None else [], dtype=kinds[t]) for i, (n, t) in enumerate(TX_STATE + UE_STATE)}
            newest = s[len(TX_STATE) + len(UE_STATE)]
        else:
            h = {n: np.asarray([], dtype=kinds[t]) for n, t in TX_STATE + UE_STATE}
            newest = -(2 ** 63)
        batch = batch.sort_values(["_kts", "kafka_partition", "kafka_offset"], kind="stable")
        seen = set(h["id"].tolist()) | set(h["ue_id"].tolist())
        batch = batch[~batch["event_id"].isin(seen)].drop_duplicates("event_id", keep="first")
        if len(batch):
            newest = max(newest, int(batch["_ts"].max()))
        tx = batch[batch["_kind"] == "tx"]
        ue = batch[batch["_kind"] == "ue"]
        if len(tx):
            add = {"ts": tx["_ts"].to_numpy("int64"), "id": tx["event_id"].to_numpy(object), "card": tx["card_token"].to_numpy(object),
                   "merchant": tx["merchant_id"].to_numpy(object), "country": tx["merchant_country"].to_numpy(object),
                   "amt": tx["_amt"].to_numpy("float64"), "lat": tx["lat"].to_numpy("float64", na_value=np.nan),
                   "lon": tx["lon"].to_numpy("float64", na_value=np.nan), "present": (tx["channel"] != "ecommerce").to_numpy(bool)}
            for n, v in add.items():
                h[n] = np.concatenate([h[n].astype(v.dtype, copy=False), v])
        if len(ue):
            add = {"ue_ts": ue["_ts"].to_numpy("int64"), "ue_id": ue["event_id"].to_numpy(object),
                   "ue_risky": ue["event_type"].isin(RISKY).to_numpy(bool), "ue_device": (ue["event_type"] == "device_change").to_numpy(bool),
                   "ue_country": ue["ip_country"].to_numpy(object)}
            for n, v in add.items():
                h[n] = np.concatenate([h[n].astype(v.dtype, copy=False), v])
        # Card histories in (event time, event id) order, as the JVM keeps them.
        order = np.lexsort((h["id"].astype(str), h["ts"])) if len(h["ts"]) else np.arange(0)
        for n, _ in TX_STATE:
            h[n] = h[n][order]
        # (itertuples renames columns that start with an underscore)
        rows = [_features(r, h) for r in tx.rename(columns={"_ts": "ts_ms", "_amt": "amt"}).itertuples(index=False)]
        # Prune past the lookback plus lateness behind the newest event, as the JVM does.
        keep = h["ts"] >= newest - retention
        keep_ue = h["ue_ts"] >= newest - D1 - lateness_ms
        state.update(tuple([h[n][keep].tolist() for n, _ in TX_STATE] + [h[n][keep_ue].tolist() for n, _ in UE_STATE] + [int(newest)]))
        state.setTimeoutDuration(retention)
        if rows:
            out = pd.DataFrame(rows, columns=features)
            out.insert(0, "card_token", tx["card_token"].to_numpy(object))
            out.insert(0, "customer_id", tx["customer_id"].to_numpy(object))
            out.insert(0, "event_id", tx["event_id"].to_numpy(object))
            yield out

    return fn


def _features(r, h) -> list:
    t, tid, amt = int(r.ts_ms), r.event_id, float(r.amt)
    card = h["card"] == r.card_token
    ts, amts = h["ts"][card], h["amt"][card]
    f: list = []
    sums, ns, maxes = [], [], []
    for span in (M10, H1, D1):
        m = (ts >= t - span) & (ts <= t)
        ns.append(float(m.sum()))
        sums.append(float(amts[m].sum()))
        maxes.append(float(amts[m].max()) if m.any() else float("-inf"))
    f += ns + sums + [s / n if n else float("nan") for s, n in zip(sums, ns)] + maxes
    m24 = (ts >= t - D1) & (ts <= t)
    f.append(float(len({x for x in h["merchant"][card][m24] if x is not None})))
    f.append(float(len({x for x in h["country"][card][m24] if x is not None})))
    ids = h["id"][card]
    before = (ts < t) | ((ts == t) & (ids.astype(str) < tid))
    lat, lon = h["lat"][card], h["lon"][card]
    if before.any():
        f.append((t - int(ts[before][-1])) / 1000.0)
        blat, blon = lat[before], lon[before]
        plat = blat[~np.isnan(blat)][-1] if (~np.isnan(blat)).any() else None
        plon = blon[~np.isnan(blon)][-1] if (~np.isnan(blon)).any() else None
    else:
        f.append(None)
        plat = plon = None
    here_lat = None if pd.isna(r.lat) else float(r.lat)
    here_lon = None if pd.isna(r.lon) else float(r.lon)
    f.append(_haversine(plat, plon, here_lat, here_lon))
    hist = (ts >= t - 30 * D1) & (ts <= t - 1)
    present = h["present"][card]
    hl, hn = lat[hist & present], lon[hist & present]
    hl, hn = hl[~np.isnan(hl)], hn[~np.isnan(hn)]
    f.append(_haversine(hl.mean() if len(hl) else None, hn.mean() if len(hn) else None, here_lat, here_lon))
    ha = amts[hist]
    mean = ha.mean() if len(ha) else None
    sd = ha.std(ddof=1) if len(ha) >= 2 else None
    f.append(amt / mean if mean is not None else None)
    f.append((amt - mean) / sd if sd is not None and sd > 0 else None)
    uts = h["ue_ts"]
    u24 = (uts <= t) & (uts >= t - D1)
    risky = h["ue_risky"]
    f.append(float((u24 & risky & (uts >= t - H1)).sum()))
    f.append(float((u24 & risky).sum()))
    f.append(float((u24 & h["ue_device"]).sum()))
    f.append(float(len({x for x in h["ue_country"][u24] if x is not None})))
    f.append(1.0 if r.channel == "ecommerce" else 0.0)
    f.append(1.0 if r.channel == "atm" else 0.0)
    all_ts, all_amt = h["ts"], h["amt"]
    cn, cm = [], []
    for span in (D1, 7 * D1, 30 * D1):
        m = (all_ts >= t - span) & (all_ts <= t)
        cn.append(float(m.sum()))
        cm.append(float(all_amt[m].sum()) / m.sum() if m.any() else float("nan"))
    f += cn + cm
    m30 = (all_ts >= t - 30 * D1) & (all_ts <= t - 1)
    f.append(amt / all_amt[m30].mean() if m30.any() else None)
    hour = (t // H1) % 24
    f += [float(hour), 1.0 if hour < 6 else 0.0, 1.0 if ((t // D1) + 3) % 7 >= 5 else 0.0]
    return f


def _messages(transactions: int, seed: int):
    from lakehouse.generators.streams import GeneratorConfig, generate

    cfg = GeneratorConfig(seed=seed, start=time.time(), rate=5000.0, streams=("transactions", "user_events"), fraud_rate=0.005)
    out, n_tx = [], 0
    for e in generate(cfg):
        if e.is_truth:
            continue
        out.append((e.topic, (e.key or "").encode(), json.dumps(e.event).encode()))
        n_tx += e.topic == "transactions"
        if n_tx >= transactions:
            break
    return out, n_tx


def _events(spark, cfg, key, limit: int | None):
    """Parsed, valid transactions and user events (the decision path's parse and rules), as the
    state functions' input."""
    from serving.decision import valid_events
    from lakehouse.kafka.clients import topic_name
    from lakehouse.streaming import read_kafka

    tx, ue = (read_kafka(spark, cfg, topic_name(cfg, s), "earliest", limit).transform(valid_events(s, cfg, key))
              for s in ("transactions", "user_events"))
    return tx, ue


def candidate(spark, cfg, key, which: str, limit: int | None):
    """The streaming frame of one candidate: event id, customer, card and the features."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    from serving.decision import fraud_features, fraud_state_input, jvm_features

    lateness = float(cfg["pipeline.allowed_lateness_s"])
    tx, ue = _events(spark, cfg, key, limit)
    feats = jvm_features(spark, "FraudState")
    if which == "floor":
        return fraud_state_input(tx, ue).select("event_id", "customer_id", "card_token", "_amt")
    if which == "jvm":
        return fraud_features(tx, ue, lateness).select("event_id", "customer_id", "card_token", *feats)
    if which == "flatmap":
        from pyspark.sql import DataFrame

        jdf = spark.sparkContext._jvm.finlake.FraudState.applyFlatMap(fraud_state_input(tx, ue)._jdf, int(lateness * 1000))
        return DataFrame(jdf, spark).select("event_id", "customer_id", "card_token", *feats)
    out = "event_id string, customer_id string, card_token string, " + ", ".join(f"{f} double" for f in feats)
    return (fraud_state_input(tx, ue).groupBy("customer_id")
            .applyInPandasWithState(pandas_fraud_state(feats, int(lateness * 1000)), out, STATE_DDL, "append",
                                    GroupStateTimeout.ProcessingTimeTimeout))


def run_query(spark, cfg, key, which: str, limit: int | None, checkpoint: str, sink: str):
    from serving.decision import decision_conf

    df = candidate(spark, cfg, key, which, limit)
    w = df.writeStream.queryName(sink if sink != "noop" else f"bench_{which}").option("checkpointLocation", checkpoint)
    w = w.format("memory") if sink != "noop" else w.format("noop")
    with decision_conf(spark, int(cfg["decisions.state_partitions"]), bool(cfg["decisions.whole_stage_codegen"])):
        q = w.outputMode("append").trigger(availableNow=True).start()
    t0 = time.perf_counter()
    q.awaitTermination()
    wall = time.perf_counter() - t0
    if q.exception() is not None:
        raise RuntimeError(f"{which}: {q.exception()}")
    progress = [p for p in q.recentProgress if p["numInputRows"] > 0]
    return wall, progress


def parity(spark, cfg, key, base: Path) -> dict:
    from serving.decision import jvm_features

    feats = jvm_features(spark, "FraudState")
    # Small batches, so that state carries over between them.
    _, progress = run_query(spark, cfg, key, "jvm", 500, str(base / "parity_jvm"), "parity_jvm")
    a = spark.table("parity_jvm").toPandas().set_index("event_id").sort_index()
    worst = {}
    for other in ("flatmap", "pandas"):
        run_query(spark, cfg, key, other, 500, str(base / f"parity_{other}"), f"parity_{other}")
        b = spark.table(f"parity_{other}").toPandas().set_index("event_id").sort_index()
        if list(a.index) != list(b.index):
            raise SystemExit(f"bench.state_candidates: error: the candidates decided different transactions "
                             f"({len(a):,} JVM transformWithState, {len(b):,} {other})")
        for f in feats:
            x, y = a[f].to_numpy(float), b[f].to_numpy(float)
            same_null = np.array_equal(np.isnan(x), np.isnan(y))
            ok = ~np.isnan(x) & ~np.isnan(y)
            rel = float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(1.0, np.abs(x[ok])))) if ok.any() else 0.0
            worst[f] = max(worst.get(f, 0.0), rel if same_null else float("inf"))
        bad = {f: v for f, v in worst.items() if v > 1e-9}
        if bad:
            raise SystemExit(f"bench.state_candidates: error: the {other} features differ from the JVM's: {bad}")
    return {"transactions": len(a), "features": len(feats), "max_relative_diff": max(worst.values()),
            "batches": len(progress)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transactions", type=int, default=60000)
    p.add_argument("--batch", type=int, default=20000, help="offsets per topic per micro-batch")
    p.add_argument("--parity-transactions", type=int, default=3000)
    p.add_argument("--candidates", default="floor,jvm,flatmap,pandas")
    p.add_argument("--out", default=None, help="result file name in bench/results (default state_candidates_batch<N>.json)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each candidate (interleaved); the median is reported")
    a = p.parse_args(argv)

    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.jvm import register_functions
    from lakehouse.kafka.broker import ensure_broker
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.security import pan_hmac_key
    from lakehouse.session import build_session

    results = {"cpus": os.cpu_count(), "batch_offsets_per_topic": a.batch}
    spark = None
    for phase, n in (("parity", a.parity_transactions), ("capacity", a.transactions)):
        prefix = f"bs{phase[0]}{int(time.time())}_"
        cfg = load_config(None, [f"kafka.topic_prefix={prefix}", "security.pan_hmac_key_missing=generate"])
        ensure_broker(cfg)
        ensure_topics(cfg)
        spark = spark or build_session(cfg, app_name="finlake-bench-state")
        Catalog(cfg).register(spark)
        register_functions(spark)
        key = pan_hmac_key(cfg)
        msgs, n_tx = _messages(n, seed=7 if phase == "parity" else 11)
        _produce(cfg, msgs, float("inf"), prefix, {})   # as fast as the broker takes them
        base = cfg.path("paths.checkpoints") / "bench-state" / prefix
        if phase == "parity":
            results["parity"] = parity(spark, cfg, key, base)
            print(json.dumps({"parity": results["parity"]}), flush=True)
            continue
        results["capacity"] = {"transactions": n_tx, "messages": len(msgs), "repeats": a.repeat}
        runs: dict[str, list[dict]] = {}
        for i in range(a.repeat):   # candidates interleaved, so that drift hits each alike
            for which in a.candidates.split(","):
                wall, progress = run_query(spark, cfg, key, which, a.batch, str(base / f"{which}_{i}"), "noop")
                batch_s = [x["durationMs"]["triggerExecution"] / 1000 for x in progress]
                row = {"wall_s": round(wall, 1), "tx_per_s": round(n_tx / wall), "batches": len(progress),
                       "batch_s_median": round(float(np.median(batch_s)), 2) if batch_s else None,
                       "state_rows": (progress[-1].get("stateOperators") or [{}])[0].get("numRowsTotal") if progress else None}
                runs.setdefault(which, []).append(row)
                print(json.dumps({which: row}), flush=True)
        for which, rows in runs.items():   # the median run by throughput, and every run's figure
            best = sorted(rows, key=lambda r: r["tx_per_s"])[len(rows) // 2]
            results["capacity"][which] = {**best, "tx_per_s_runs": [r["tx_per_s"] for r in rows],
                                          "batch_s_median_runs": [r["batch_s_median"] for r in rows]}
    cap = results["capacity"]
    for other in ("flatmap", "pandas"):
        if "jvm" in cap and other in cap:
            cap[f"{other}_vs_jvm"] = round(cap[other]["tx_per_s"] / cap["jvm"]["tx_per_s"], 3)
    if "floor" in cap:
        for w in ("jvm", "flatmap", "pandas"):
            if w in cap:
                cap[f"{w}_vs_floor"] = round(cap[w]["tx_per_s"] / cap["floor"]["tx_per_s"], 3)
    out = ROOT / "bench" / "results" / (a.out or f"state_candidates_batch{a.batch}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
