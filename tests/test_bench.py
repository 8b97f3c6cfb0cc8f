"""The benchmark harness end to end at one small load (correctness of its outputs, not speed)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.soak]


def test_bench_runs_one_level_and_writes_tables_and_figure(kafka, ml_cfg, fraud_result, job_env):
    env = dict(job_env, FINLAKE_HOME=str(ml_cfg.home))
    out = subprocess.run([sys.executable, "-m", "bench.run", "--loads", "200", "--duration", "10", "--drain", "60",
                          "--trigger", "2 seconds", "--conf", "spark.shuffle_partitions=2",
                          "--conf", "security.pan_hmac_key_missing=generate"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = ml_cfg.home / "reports" / "bench"
    result = json.loads((folder / "bench.json").read_text())
    level = result["levels"][0]
    assert level["offered_msgs_per_s"] == 200 and level["sent"] > 1000 and not level["failed_queries"]
    # Everything sent reached silver, quarantine or the duplicate counter.
    assert level["streams"]["transactions"]["sent"] > 500
    for stream, s in level["streams"].items():
        assert s["completeness_pct"] == (100.0 if s["sent"] else None), (stream, s)
    assert level["scored"] > 0 and level["latency_kafka_to_score"]["rows"] == level["scored"]
    assert level["limits"]["raw_consume"]["messages"] == level["sent"]
    assert level["resources"]["peak_memory_gb"] > 0.3 and "kafka broker" in level["resources"]["processes"]
    tables = (folder / "tables.md").read_text()
    assert "| 200 |" in tables and "| transactions |" in tables and "18 / " in tables
    assert (folder / "figure1.png").stat().st_size > 5000
