"""Chaos and fuzz: the continuous pipeline under random SIGKILLs and a broker restart while a
hostile corpus streams in; then an outside audit (delta-rs, byte scans) of what landed.

    python -m bench.chaos                       # 50,000 hostile messages, 6 kills, 1 broker restart
    python -m bench.chaos --messages 3000 --kills 2

Runs in its own FINLAKE_HOME (``<home>/chaos`` unless --home) with its own broker on free
ports, so it never touches the demo's state. Writes ``reports/chaos/chaos.json`` and
``chaos.md``; exits non-zero with one line when any check fails: a message missing from bronze
or counted twice, a message neither in silver nor quarantined with a reason nor a counted
duplicate, an event doubled in silver, a clear card number in any table or file, or a crash
the pipeline did not survive.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ("transactions", "user_events")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(kafka_port: int, controller_port: int, conf: list[str]) -> list[str]:
    return [f"kafka.bootstrap_servers=127.0.0.1:{kafka_port}", f"kafka.controller_port={controller_port}",
            "security.pan_hmac_key_missing=generate", "pipeline.trigger_interval=2 seconds",
            "pipeline.min_rows_for_failure_rate=1000000", "spark.driver_memory=1g", *conf]


def _job(args: list[str], overrides: list[str], env: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "jobs" / "stream.py"), *args]
    for o in overrides:
        cmd += ["--conf", o]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_running(job: subprocess.Popen, log: Path, starts: int, timeout_s: float = 300.0) -> None:
    """Wait until the ``starts``-th pipeline process says its queries run (so a kill lands
    while batches run, not during start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count("pipeline: started in") >= starts:
            return
        if job.poll() is not None:
            raise RuntimeError(f"the pipeline exited by itself (code {job.returncode}); see {log}")
        time.sleep(0.5)
    raise RuntimeError(f"the pipeline did not start within {timeout_s:.0f} s; see {log}")


def _delta_rows(path: Path, columns=None):
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pyarrow_table(columns=columns)


def audit(cfg, sent: dict[str, int], pans: set[str]) -> dict:
    """Accounting and card-number checks on what landed, read with delta-rs only."""

    from lakehouse.audit import scan_files, scan_tables
    from lakehouse.catalog import Catalog

    catalog = Catalog(cfg)
    out = {"streams": {}, "problems": []}
    dq = _delta_rows(Path(catalog.spec("ops.dq_results").location)).to_pandas()
    for topic in TOPICS:
        bronze = _delta_rows(Path(catalog.spec(f"bronze.{topic}").location), ["partition", "offset"]).to_pandas()
        silver = _delta_rows(Path(catalog.spec(f"silver.{topic}").location), ["event_id"]).to_pandas()
        quarantine = _delta_rows(Path(catalog.spec(f"quarantine.{topic}").location), ["reasons"]).to_pandas()
        mine = dq[(dq["table"] == f"silver.{topic}") & (dq["suite"] == "finlake.pipeline")]
        duplicates = int(mine[mine["expectation"] == "duplicates_dropped"]["unexpected_count"].sum())
        s = {"sent": sent.get(topic, 0), "bronze": len(bronze), "bronze_distinct": len(bronze.drop_duplicates()),
             "silver": len(silver), "silver_distinct_ids": silver["event_id"].nunique(), "quarantine": len(quarantine),
             "quarantine_without_reason": int(sum(1 for r in quarantine["reasons"] if r is None or len(r) == 0)),
             "duplicates_counted": duplicates}
        s["lost"] = s["sent"] - s["bronze_distinct"]
        s["doubled_in_bronze"] = s["bronze"] - s["bronze_distinct"]
        s["doubled_in_silver"] = s["silver"] - s["silver_distinct_ids"]
        s["unaccounted"] = s["bronze"] - (s["silver"] + s["quarantine"] + s["duplicates_counted"])
        out["streams"][topic] = s
        for key in ("lost", "doubled_in_bronze", "doubled_in_silver", "unaccounted", "quarantine_without_reason"):
            if s[key]:
                out["problems"].append(f"{topic}: {key} = {s[key]}")
    tables = scan_tables(cfg.path("paths.warehouse"), pans)
    files = scan_files(cfg.home, pans, skip=("kafka",))
    out["tables_read_by_delta_rs"] = len(tables)
    out["clear_pans_in_tables"] = {t: len(v["clear_pans"]) for t, v in tables.items() if v["clear_pans"]}
    out["clear_pans_in_files"] = {f: len(v) for f, v in files.items()}
    if out["clear_pans_in_tables"] or out["clear_pans_in_files"]:
        out["problems"].append(f"clear card numbers: {out['clear_pans_in_tables']} {out['clear_pans_in_files']}")
    return out


def run(args) -> dict:
    from lakehouse.config import load_config
    from lakehouse.generators.hostile import hostile_corpus
    from lakehouse.kafka.broker import LocalKafka
    from lakehouse.kafka.clients import ensure_topics
    from lakehouse.kafka.produce import send_raw

    home = Path(args.home or Path(os.environ.get("FINLAKE_HOME", ROOT / ".finlake")) / "chaos").resolve()
    overrides = _overrides(_free_port(), _free_port(), args.conf)
    cfg = load_config(args.env, overrides, home=home)
    env = dict(os.environ, FINLAKE_HOME=str(home))
    for var in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    logs = cfg.path("paths.logs")
    logs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    broker = LocalKafka(cfg)
    broker.start()
    ensure_topics(cfg)
    corpus = hostile_corpus(args.messages, seed=args.seed)
    chunks = max(1, args.kills + 2)
    size = -(-len(corpus.messages) // chunks)
    sent: dict[str, int] = {}
    events: list[dict] = []
    stream_args = ["--streams", ",".join(TOPICS), "--layers", "bronze,silver"]
    job = _job(stream_args, overrides, env, logs / "chaos-stream.log")
    starts = 1
    t0 = time.monotonic()
    try:
        for i in range(chunks):
            chunk = corpus.messages[i * size:(i + 1) * size]
            report = send_raw(cfg, chunk)
            for topic, r in report.items():
                if not topic.startswith("_"):
                    if r["failed"] or r["delivered"] != r["sent"]:
                        raise RuntimeError(f"the broker refused {r['failed']} of {r['sent']} messages to {topic}: {r['errors'][:1]}")
                    sent[topic] = sent.get(topic, 0) + r["delivered"]
            print(f"chaos: sent {sum(sent.values()):,} of {len(corpus.messages):,}", flush=True)
            _wait_running(job, logs / "chaos-stream.log", starts)
            time.sleep(rng.uniform(args.min_gap, args.max_gap))  # batches are running now
            if i == args.broker_restart_after:  # under the running pipeline
                started = time.monotonic()
                broker.stop()
                broker.start()
                events.append({"at_s": round(time.monotonic() - t0, 1), "event": "broker restarted",
                               "seconds": round(time.monotonic() - started, 1)})
                time.sleep(rng.uniform(args.min_gap, args.max_gap))
            if i < args.kills:
                if job.poll() is not None:
                    raise RuntimeError(f"the pipeline exited by itself (code {job.returncode}); see {logs / 'chaos-stream.log'}")
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
                events.append({"at_s": round(time.monotonic() - t0, 1), "event": "SIGKILL pipeline"})
                job = _job(stream_args, overrides, env, logs / "chaos-stream.log")
                starts += 1
        if job.poll() is not None:
            raise RuntimeError(f"the pipeline exited by itself (code {job.returncode}); see {logs / 'chaos-stream.log'}")
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=300)  # stops at the end of the running batches
        drain = subprocess.run([sys.executable, str(ROOT / "jobs" / "stream.py"), *stream_args, "--available-now",
                                *sum((["--conf", o] for o in overrides), [])], cwd=ROOT, env=env, capture_output=True, text=True)
        if drain.returncode != 0:
            raise RuntimeError(f"the final catch-up failed: {(drain.stderr or drain.stdout).strip().splitlines()[-1:]}")
        restart_s = [float(line.split()[-2]) for line in (logs / "chaos-stream.log").read_text().splitlines()
                     if line.startswith("pipeline: started in")]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        result_dir = home / "reports" / "chaos"
    result = {"messages": len(corpus.messages), "kinds": corpus.kinds, "pans_used": len(corpus.pans), "sent": sent,
              "kills": args.kills, "events": events, "restart_seconds": restart_s,
              "wall_s": round(time.monotonic() - t0, 1), **audit(cfg, sent, corpus.pans)}
    broker.stop()
    result_dir.mkdir(parents=True, exist_ok=True)
    (result_dir / "chaos.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Chaos and fuzz run of the continuous pipeline (see module docstring).")
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--kills", type=int, default=6)
    p.add_argument("--broker-restart-after", type=int, default=1, help="restart the broker after this kill (-1: never)")
    p.add_argument("--min-gap", type=float, default=5.0, help="seconds the running pipeline gets before the next kill (low end)")
    p.add_argument("--max-gap", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--home", default=None)
    p.add_argument("--env", default=None)
    p.add_argument("--conf", action="append", default=[])
    args = p.parse_args(argv)
    try:
        result = run(args)
    except RuntimeError as exc:
        print(f"chaos: error: {exc}", file=sys.stderr)
        return 1
    s = result["streams"]
    print(f"chaos: {result['messages']:,} hostile messages, {args.kills} SIGKILLs, broker restarts "
          f"{sum(1 for e in result['events'] if e['event'] == 'broker restarted')}; "
          + "; ".join(f"{t}: bronze {v['bronze']:,}, silver {v['silver']:,}, quarantine {v['quarantine']:,}, "
                      f"duplicates {v['duplicates_counted']:,}, lost {v['lost']}, doubled {v['doubled_in_silver']}"
                      for t, v in s.items()))
    print(f"chaos: {result['tables_read_by_delta_rs']} tables read by delta-rs; clear card numbers: "
          f"{sum(result['clear_pans_in_tables'].values()) + sum(result['clear_pans_in_files'].values())}; "
          f"restart to running: {', '.join(f'{x:.1f}' for x in result['restart_seconds']) or 'n/a'} s")
    if result["problems"]:
        print(f"chaos: error: {'; '.join(result['problems'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
