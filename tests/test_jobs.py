"""Every job's main, end to end on tiny data, so a broken import or config key fails here."""
import json
import subprocess
import sys
from pathlib import Path

from jobs import stack

ROOT = Path(__file__).resolve().parent.parent


def test_demo_main_end_to_end(kafka, job_env):
    out = subprocess.run([sys.executable, "jobs/demo.py", "--events", "120", "--seed", "3"], cwd=ROOT, env=job_env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads([l for l in out.stdout.splitlines() if l.startswith("FINLAKE_RESULT ")][0].split(" ", 1)[1])
    assert (result["produced"], result["new_rows"]) == (120, 120)
    assert result["rows"] >= 120 and result["versions"] >= 2
    assert "card_pan" not in out.stdout and "card_pan" not in out.stderr


def test_stack_status_reports_the_running_broker(kafka, overrides, test_home, capsys, monkeypatch):
    monkeypatch.setenv("FINLAKE_HOME", str(test_home))
    conf = [a for o in overrides for a in ("--conf", o)]
    result = stack.main(conf + ["status"])
    assert result["kafka"]["running"] is True and result["kafka"]["pid"] == kafka.pid()
    assert result["kafka"]["topics"]["transactions"] == 2
    assert json.loads(capsys.readouterr().out)["kafka"]["bootstrap"] == result["kafka"]["bootstrap"]


def test_jobs_reject_unknown_config_keys_in_one_line(job_env):
    out = subprocess.run([sys.executable, "-m", "jobs.stack", "--conf", "kafka.bootstrap=x", "status"], cwd=ROOT, env=job_env,
                         capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stderr.strip()) == (
        2, "finlake: error: unknown config key 'kafka.bootstrap' given by --conf (did you mean 'kafka.bootstrap_servers'?)")
