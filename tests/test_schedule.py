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

    from jobs.schedule import crontab_block, entries, with_block, without_block

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

    from jobs.schedule import Entry, due

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
