"""Scrape a running stream job through a real Prometheus server (a bench step, not a test).

    python -m bench.prometheus_scrape [--seconds 90] [--prometheus /path/to/prometheus]

Starts the managed broker, a paced producer and `jobs/stream.py` (bronze and silver of the
transactions stream) in a scratch FINLAKE_HOME, and a Prometheus server with
monitoring/prometheus.yml's stream job; then asks Prometheus's HTTP API what it scraped. The
server comes from $PATH, --prometheus, or Debian's `prometheus` package (`apt-get download`,
unpacked under the cache; no root needed). Exits 1 in one line when any step falls short.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def fail(message: str) -> None:
    print(f"bench.prometheus_scrape: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def prometheus_binary(given: str | None, cache: Path) -> Path:
    if given:
        return Path(given)
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    unpacked = cache / "prometheus-deb" / "usr" / "bin" / "prometheus"
    if unpacked.exists():
        return unpacked
    work = cache / "prometheus-deb"
    work.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", "prometheus"], cwd=work, capture_output=True, text=True)
    debs = sorted(work.glob("prometheus_*.deb"))
    if got.returncode != 0 or not debs:
        fail(f"no prometheus on PATH and `apt-get download prometheus` failed: {(got.stderr or got.stdout).strip()[-200:]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(work)], check=True)
    return unpacked


def query(base: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=10) as r:
        return json.loads(r.read())["data"]["result"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--prometheus", default=None)
    p.add_argument("--prom-port", type=int, default=9095)
    args = p.parse_args(argv)
    from lakehouse.config import load_config

    home = Path(tempfile.mkdtemp(prefix="finlake-prom-"))
    env = dict(os.environ, FINLAKE_HOME=str(home), PYTHONUNBUFFERED="1")
    cfg = load_config(None, home=home)
    binary = prometheus_binary(args.prometheus, cfg.path("paths.cache"))
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    shipped["global"]["scrape_interval"] = "2s"
    shipped["scrape_configs"] = [c for c in shipped["scrape_configs"] if c["job_name"] == "finlake-stream"]
    (home / "prometheus.yml").write_text(yaml.safe_dump(shipped))
    procs = []

    def start(cmd, name):
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(logs / f"{name}.out", "wb"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
        return procs[-1]

    try:
        subprocess.run([sys.executable, "-m", "jobs.stack", "up"], cwd=ROOT, env=env, check=True, capture_output=True)
        prom = start([str(binary), f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'prom-data'}",
                      f"--web.listen-address=127.0.0.1:{args.prom_port}"], "prometheus")
        stream = start([sys.executable, "jobs/stream.py", "--streams", "transactions", "--layers", "bronze,silver",
                        "--timeout", str(args.seconds + 60)], "stream")
        start([sys.executable, "jobs/produce.py", "--streams", "transactions", "--rate", "200", "--duration", str(args.seconds),
               "--noise", "malformed=0.02", "--quiet"], "produce")
        time.sleep(args.seconds)
        base = f"http://127.0.0.1:{args.prom_port}"
        if prom.poll() is not None:
            fail(f"prometheus exited with code {prom.returncode}; see {logs / 'prometheus.out'}")
        if stream.poll() is not None:
            fail(f"the stream job exited with code {stream.returncode}; see {logs / 'stream.out'}")
        up = query(base, 'up{job="finlake-stream"}')
        rows = query(base, "finlake_query_input_rows_total")
        quarantined = query(base, "finlake_quarantined_rows_total")
        lag = query(base, "finlake_kafka_lag_records")
        result = {"prometheus": str(binary), "up": [r["value"][1] for r in up],
                  "input_rows": {r["metric"].get("query"): float(r["value"][1]) for r in rows},
                  "quarantined": {r["metric"].get("table"): float(r["value"][1]) for r in quarantined},
                  "kafka_lag": {r["metric"].get("topic"): float(r["value"][1]) for r in lag}}
        print(json.dumps(result, indent=2))
        if up != [] and all(v == "1" for v in result["up"]) and sum(result["input_rows"].values()) > 0:
            return result
        fail(f"Prometheus scraped nothing useful from the stream job: {result}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run([sys.executable, "-m", "jobs.stack", "down"], cwd=ROOT, env=env, capture_output=True)


if __name__ == "__main__":
    main()
