"""Scheduling as users run it: the crontab entries (pure merge and removal, every entry a valid
cron line running a job that accepts its arguments) and the Databricks Asset Bundle (every task
points at a job entry point that exists and whose own parser accepts its parameters)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_crontab_block_runs_each_configured_job_and_installs_once_beside_other_lines(cfg, tmp_path):
    from croniter import croniter

    from jobs.schedule import entries
    from lakehouse.schedule import crontab_block, with_block, without_block

    items = entries(cfg)
    assert {e.job for e in items} >= {"monitor", "retrain", "stats_report", "maintain"}
    block = crontab_block(items, "/opt/py/bin/python", Path("/data/home"), Path("/data/home/logs"))
    lines = block.strip().splitlines()
    assert lines[0] == "# finlake schedule begin /data/home" and lines[-1] == "# finlake schedule end /data/home"
    for e, line in zip(items, lines[1:-1]):
        assert croniter.is_valid(" ".join(line.split()[:5])) and line.startswith(e.cron + " ")
        assert f"FINLAKE_HOME=/data/home /opt/py/bin/python -m jobs.{e.job}" in line
        assert line.endswith(f">> /data/home/logs/schedule-{e.name}.log 2>&1")
    assert "-m jobs.retrain --when drifting" in block
    mine = "MAILTO=ops@example.com\n15 1 * * * /usr/bin/backup\n"
    other = crontab_block(items, "/py", Path("/other"), Path("/other/logs"))
    once = with_block(mine + other, block, Path("/data/home"))
    twice = with_block(once, block, Path("/data/home"))
    assert twice == once == mine + other + block
    assert without_block(twice, Path("/data/home")) == mine + other


def test_a_bad_schedule_entry_is_refused_by_name(cfg):
    import dataclasses

    from jobs.schedule import entries

    def with_entry(spec):
        data = dict(cfg.data)
        data["schedule"] = {"entries": {"nightly": spec}}
        return dataclasses.replace(cfg, data=data)

    with pytest.raises(ValueError, match="'nightly': '61 \\* \\* \\* \\*' is not a cron expression"):
        entries(with_entry({"cron": "61 * * * *", "job": "monitor"}))
    with pytest.raises(ValueError, match="'nightly': no job jobs/nosuch.py"):
        entries(with_entry({"cron": "0 1 * * *", "job": "nosuch"}))
    with pytest.raises(ValueError, match="does not accept the arguments '--when sometimes'"):
        entries(with_entry({"cron": "0 1 * * *", "job": "retrain", "args": "--when sometimes"}))


def test_due_picks_the_next_entries_in_time_order(cfg):
    import datetime as dt

    from lakehouse.schedule import Entry, due

    items = [Entry("hourly", "0 * * * *", "monitor", ()), Entry("nightly", "30 2 * * *", "retrain", ()),
             Entry("also", "0 3 * * *", "monitor", ())]
    at, batch = due(items, dt.datetime(2026, 3, 1, 2, 10))
    assert at == dt.datetime(2026, 3, 1, 2, 30) and [e.name for e in batch] == ["nightly"]
    at, batch = due(items, dt.datetime(2026, 3, 1, 2, 45))
    assert at == dt.datetime(2026, 3, 1, 3, 0) and [e.name for e in batch] == ["hourly", "also"]


def _bundle() -> dict:
    return yaml.safe_load((ROOT / "databricks.yml").read_text())


def test_the_bundle_runs_stream_decide_monitor_retrain_and_report_through_their_own_entry_points(tmp_path):
    from lakehouse.config import load_config

    bundle = _bundle()
    declared = set(bundle["variables"])
    used = set(re.findall(r"\$\{var\.([a-z_]+)\}", (ROOT / "databricks.yml").read_text()))
    assert used <= declared, f"undeclared bundle variables: {used - declared}"
    tasks = {}
    for job_key, job in bundle["resources"]["jobs"].items():
        clusters = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
        keys = {t["task_key"] for t in job["tasks"]}
        for task in job["tasks"]:
            assert task["job_cluster_key"] in clusters, (job_key, task["task_key"])
            assert {d["task_key"] for d in task.get("depends_on", [])} <= keys
            python_file = task["spark_python_task"]["python_file"]
            assert (ROOT / python_file).is_file(), python_file
            module = importlib.import_module("jobs." + Path(python_file).stem)
            assert callable(module.main)
            params = task["spark_python_task"]["parameters"]
            args = module.build_parser().parse_args(params)   # SystemExit(2) on a parameter the job refuses
            assert args.env == "cluster"
            tasks[Path(python_file).stem] = (job_key, params)
        for cluster in job.get("job_clusters", []):
            env = cluster["new_cluster"]["spark_env_vars"]
            assert env["FINLAKE_ENV"] == "cluster" and env["FINLAKE_PAN_HMAC_KEY"].startswith("{{secrets/")
    assert {"stream", "decide", "monitor", "retrain", "stats_report"} <= set(tasks)
    assert tasks["retrain"][1][-2:] == ["--when", "drifting"]
    jobs = bundle["resources"]["jobs"]
    assert jobs["finlake_stream"]["continuous"] and jobs["finlake_decide"]["continuous"]
    assert jobs["finlake_monitor_retrain"]["schedule"]["quartz_cron_expression"]
    load_config("cluster", home=tmp_path)   # the profile the tasks run with loads
    secrets = [v for job in jobs.values() for c in job.get("job_clusters", []) for v in c["new_cluster"]["spark_env_vars"].values()]
    assert not [v for v in secrets if re.search(r"(?i)key|password", str(v)) and not str(v).startswith("{{secrets/")]


# The Spark each Databricks Runtime major ships (its release notes): the bundle's runtime must
# be the Spark finlake pins, or the jar and the plans are built against another Spark.
DBR_SPARK = {"17": "4.0", "18": "4.1", "19": "4.2"}


def test_the_bundle_has_the_shape_databricks_accepts_on_the_runtime_whose_spark_finlake_pins():
    import tomllib

    from databricks.bundles.jobs import Job

    bundle = _bundle()
    for key, job in bundle["resources"]["jobs"].items():
        Job.from_dict(job)   # ValueError on any field Databricks' bundle schema does not have
    runtime = bundle["variables"]["spark_version"]["default"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spark_pin = next(r for r in pyproject["project"]["optional-dependencies"]["spark"] if r.startswith("pyspark=="))
    assert spark_pin.split("==")[1].rsplit(".", 1)[0] == DBR_SPARK[runtime.split(".")[0]], (runtime, spark_pin)
    assert "-ml-" in runtime   # XGBoost and MLflow come with the runtime
    # The wheel's own requirements leave the runtime's Spark, Delta and XGBoost alone.
    names = {re.split(r"[<>=!;\[ ]", r)[0].lower() for r in pyproject["project"]["dependencies"]}
    assert not names & {"pyspark", "delta-spark", "xgboost", "xgboost-cpu"}, names
    # Every task carries the wheel and finlake's jar, and both are built artifacts.
    assert {a["type"] for a in bundle["artifacts"].values()} == {"whl", "jar"}
    jar_build = next(a["build"] for a in bundle["artifacts"].values() if a["type"] == "jar")
    for job in bundle["resources"]["jobs"].values():
        for task in job["tasks"]:
            kinds = {k: v for lib in task["libraries"] for k, v in lib.items()}
            assert kinds["whl"] == "./dist/*.whl" and kinds["jar"] == "./dist/finlake-jvm.jar", task["task_key"]
    assert jar_build.split()[:4] == ["python", "-m", "jobs.stack", "jar"]


def test_the_jar_artifact_is_built_by_its_job(tmp_path, job_env):
    import subprocess
    import sys
    import zipfile

    out = subprocess.run([sys.executable, "-m", "jobs.stack", "jar", "--out", str(tmp_path / "dist")], cwd=ROOT, env=job_env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    names = zipfile.ZipFile(tmp_path / "dist" / "finlake-jvm.jar").namelist()
    assert {"finlake/Pan.class", "finlake/ParsePayload.class", "finlake/FraudState.class", "finlake/Trees.class"} <= set(names)
