"""Run the batch jobs on a schedule: monitoring, retraining, the statistical report and table
maintenance, at the cron times in config (``schedule.entries``).

    python -m jobs.schedule print       # the crontab lines for this checkout and FINLAKE_HOME
    python -m jobs.schedule install     # put them in your crontab (make schedule)
    python -m jobs.schedule remove      # take them out again (make unschedule)
    python -m jobs.schedule run         # no cron here: a foreground scheduler running the same entries

The streaming jobs (stream, decide) run continuously and are not scheduled here; a cluster runs
them as the bundle's continuous jobs (databricks.yml).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from jobs import common
from lakehouse import schedule
from lakehouse.schedule import Entry

JOBS = Path(__file__).resolve().parent


def job_refuses(job: str, args: tuple[str, ...]) -> str | None:
    """Why ``jobs/<job>.py`` cannot run ``args`` (there is no such job, or its own parser refuses
    them), or None."""
    if not (JOBS / f"{job}.py").is_file():
        return f"no job jobs/{job}.py"
    try:
        importlib.import_module(f"jobs.{job}").build_parser().parse_args(list(args))
    except SystemExit:
        return f"jobs/{job}.py does not accept the arguments '{' '.join(args)}'"
    return None


def entries(cfg) -> list[Entry]:
    """The configured entries, each a valid cron expression running an existing job whose own
    parser accepts the arguments. A bad one raises ValueError naming it."""
    return schedule.entries(cfg, job_refuses)


def run(_spark, cfg, args) -> dict:
    try:
        items = entries(cfg)
    except ValueError as exc:
        common.fail(str(exc))
    if not items:
        common.fail("no schedule.entries in the configuration")
    home, logs = cfg.home, cfg.path("paths.logs")
    logs.mkdir(parents=True, exist_ok=True)
    python = args.python or sys.executable
    block = schedule.crontab_block(items, python, home, logs)
    if args.action == "print":
        print(block, end="")
    elif args.action == "install":
        exe = schedule.crontab_exe()
        schedule.write_crontab(exe, schedule.with_block(schedule.read_crontab(exe), block, home))
        print(f"schedule: {len(items)} entries installed in the crontab ({', '.join(f'{e.name} {e.cron!r}' for e in items)}); "
              f"logs under {logs}", flush=True)
    elif args.action == "remove":
        exe = schedule.crontab_exe()
        schedule.write_crontab(exe, schedule.without_block(schedule.read_crontab(exe), home))
        print(f"schedule: finlake entries for {home} removed from the crontab", flush=True)
    else:
        schedule.run_forever(items, python, home, logs, args.max_runs)
    return {"action": args.action, "entries": [e.__dict__ for e in items]}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("action", choices=["print", "install", "remove", "run"])
    p.add_argument("--python", default=None, help="the Python the entries run with (default: this one)")
    p.add_argument("--max-runs", type=int, default=None, help="run: stop after this many job runs")
    return p


def main(argv=None):
    result = common.execute(build_parser(), argv, run, app_name="finlake-schedule", needs_spark=False)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
