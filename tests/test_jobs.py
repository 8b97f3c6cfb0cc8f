"""Every job's main, end to end on tiny data, so a broken import or config key fails here."""
import json
import subprocess
import sys
from pathlib import Path

from jobs import stack

ROOT = Path(__file__).resolve().parent.parent


def test_demo_main_end_to_end(kafka, job_env, tmp_path):
    """The short demo: history, pipeline, training, live scoring with alerts, stats, report."""
    home = tmp_path / "demo"
    env = dict(job_env, FINLAKE_HOME=str(home))
    from jobs.demo import SHORT_DEMO_ARGV

    out = subprocess.run([sys.executable, "jobs/demo.py", *SHORT_DEMO_ARGV, "--conf", "kafka.topic_prefix=demo_"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=850)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((home / "reports" / "demo" / "summary.json").read_text())
    assert summary["reconciled"] is True
    assert "FINLAKE_RESULT" not in out.stdout   # the record is summary.json, not a JSON line on the console
    counts = summary["counts"]
    assert sum(c["produced"] for c in counts.values()) == 20000 + summary["produced"]["live"]
    for stream, c in counts.items():
        assert c["bronze"] == c["produced"] and c["silver"] + c["quarantine"] + c["duplicates_dropped"] == c["bronze"], stream
    assert sum(c["quarantine"] for c in counts.values()) > 0  # the live noise was caught
    # The live phase decides on the decision paths: one decision per valid live event, by the champion.
    for name in ("fraud", "trading", "loan_pd"):
        d = summary["decisions"][name]
        assert d["decisions"] == d["valid_live"] > 0 and d["missing"] == 0 and d["versions"] == ["1"], (name, d)
        assert d["latency_p50_ms"] > 0 and d["latency_p99_ms"] >= d["latency_p50_ms"]
    assert summary["scoring"] == {}   # every use case has a decision path: no lakehouse scorer runs live
    assert "Decided live (fraud): " in out.stdout
    assert {r["use_case"] for r in summary["table4"]} == {"fraud", "trading", "loan_pd"}
    html = (home / "reports" / "demo" / "index.html").read_text()
    for heading in ("Events per layer", "Model quality", "Stream performance", "Statistics", "Monitoring"):
        assert heading in html
    monitoring = summary["monitoring"]
    assert set(monitoring) == {"fraud", "trading", "loan_pd"}
    assert all(m["version"] == "1" and m["verdict"] in ("ok", "drifting", "degraded") for m in monitoring.values())
    assert "no champion yet" in html and "promotion history" in html
    assert "Monitoring: fraud v1 " in out.stdout
    assert "mlflow ui --backend-store-uri" in out.stdout and "Report: " in out.stdout
    assert "card_pan" not in out.stdout and "card_pan" not in out.stderr and "card_pan" not in html
    # A quiet console: finlake's steps only; Spark's and Ivy's chatter is in the log files.
    noise = [l for l in (out.stdout + out.stderr).splitlines() if " WARN " in l or " INFO " in l or l.startswith((":: ", "\tfound "))]
    assert noise == [] and (home / "logs" / "spark.log").exists()
    assert "Model quality on the test period" in out.stdout and "roc_auc" in out.stdout


def test_demo_names_every_shortfall_in_one_line():
    from reports.demo import demo_shortfalls

    ok = {"produced": 10, "bronze": 10, "silver": 7, "quarantine": 2, "duplicates_dropped": 1, "reconciled": "yes"}
    short = {"produced": 10, "bronze": 9, "silver": 5, "quarantine": 2, "duplicates_dropped": 1, "reconciled": "NO"}
    decided = {"decisions": 5, "valid_live": 5, "missing": 0}
    assert demo_shortfalls({"counts": {"a": ok}, "scoring": {"loan_pd": {"scored": 3}}, "decisions": {"fraud": decided}}) == []
    assert demo_shortfalls({"counts": {"a": ok, "b": short}, "scoring": {"loan_pd": {"scored": 0}},
                            "decisions": {"fraud": {"decisions": 4, "valid_live": 5, "missing": 1},
                                          "trading": {"decisions": 0, "valid_live": 3, "missing": 3}}}) == [
        "b not reconciled (1 of 10 produced not in bronze, 1 bronze rows in neither silver, quarantine nor the duplicate count)",
        "the fraud decision path decided 4 events against 5 valid live ones (1 valid ones undecided)",
        "the trading decision path decided nothing live",
        "the live phase scored no loan_pd row"]


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


def test_data_docs_job_renders_every_suite(tmp_path, job_env):
    out = subprocess.run([sys.executable, "jobs/data_docs.py", "--out", str(tmp_path)], cwd=ROOT, env=job_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    pages = {p.stem for p in tmp_path.rglob("expectations/finlake/silver/*.html")}
    from lakehouse.schemas.expectations import SUITES

    assert pages == set(SUITES)


def test_maintain_compacts_and_refuses_unsafe_retention(spark, cfg, job_env):
    import argparse

    import pytest

    from jobs import maintain
    from lakehouse.catalog import Catalog

    location = Catalog(cfg).spec("ops.dq_results").location
    for i in range(3):  # three small files
        spark.createDataFrame([(i,)], "batch_id long").selectExpr(
            "current_timestamp() AS run_time", "'t' AS table", "batch_id", "'s' AS suite", "'e' AS expectation", "'true' AS success",
            "CAST(0 AS LONG) AS unexpected_count", "CAST(1 AS LONG) AS element_count", "CAST(NULL AS MAP<STRING,STRING>) AS details"
        ).write.format("delta").mode("append").save(location)
    result = maintain.run(spark, cfg, argparse.Namespace(tables="ops.dq_results", retain_hours=168))
    assert result[0]["table"] == "ops.dq_results" and result[0]["files_before"] >= 3 and result[0]["files_after"] == 1
    with pytest.raises(SystemExit):
        maintain.run(spark, cfg, argparse.Namespace(tables="ops.dq_results", retain_hours=1))
