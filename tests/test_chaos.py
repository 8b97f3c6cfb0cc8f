"""The chaos run at CI size: hostile messages streaming in while the continuous pipeline is
SIGKILLed mid-batch (once here; `make chaos` six times) and the broker restarts; then the
outside audit. Its own broker and home."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.soak]


def test_chaos_run_loses_nothing_doubles_nothing_and_leaves_no_clear_card_number(tmp_path, job_env):
    out = subprocess.run([sys.executable, "-m", "bench.chaos", "--messages", "2500", "--kills", "1", "--broker-restart-after", "0",
                          "--min-gap", "4", "--max-gap", "12", "--home", str(tmp_path / "chaos"),
                          "--conf", "spark.shuffle_partitions=2"],
                         cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    result = json.loads((tmp_path / "chaos" / "reports" / "chaos" / "chaos.json").read_text())
    assert result["problems"] == [] and result["messages"] == 2500
    assert [e["event"] for e in result["events"]] == ["broker restarted", "SIGKILL pipeline"]
    for topic, s in result["streams"].items():
        assert s["bronze"] == s["sent"] and s["lost"] == 0 and s["doubled_in_silver"] == 0 and s["unaccounted"] == 0, topic
    assert result["tables_read_by_delta_rs"] >= 7 and result["clear_pans_in_tables"] == {} and result["clear_pans_in_files"] == {}
    assert len(result["restart_seconds"]) == 2  # the first start and the restart reached "running"
