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

import datetime as dt
import importlib
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jobs import common

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Entry:
    name: str
    cron: str
    job: str          # module under jobs/
    args: tuple[str, ...]


def entries(cfg) -> list[Entry]:
    """The configured entries, each checked: a valid cron expression, an existing job whose own
    parser accepts the arguments. A bad one raises ValueError naming it."""
    from croniter import croniter

    out = []
    for name, spec in (cfg.get("schedule.entries") or {}).items():
        spec = spec or {}
        cron, job, args = str(spec.get("cron", "")), str(spec.get("job", "")), tuple(shlex.split(str(spec.get("args") or "")))
        if not croniter.is_valid(cron):
            raise ValueError(f"schedule entry '{name}': '{cron}' is not a cron expression")
        if not (ROOT / "jobs" / f"{job}.py").is_file():
            raise ValueError(f"schedule entry '{name}': no job jobs/{job}.py")
        module = importlib.import_module(f"jobs.{job}")
        try:
            module.build_parser().parse_args(list(args))
        except SystemExit:
            raise ValueError(f"schedule entry '{name}': jobs/{job}.py does not accept the arguments '{' '.join(args)}'") from None
        out.append(Entry(name, cron, job, args))
    return out


def command(entry: Entry, python: str, home: Path, logs: Path) -> str:
    """The shell command of one entry (run from the checkout, its output appended to a log)."""
    args = " ".join(shlex.quote(a) for a in entry.args)
    return (f"cd {shlex.quote(str(ROOT))} && FINLAKE_HOME={shlex.quote(str(home))} {shlex.quote(python)} -m jobs.{entry.job}"
            f"{' ' + args if args else ''} >> {shlex.quote(str(logs / f'schedule-{entry.name}.log'))} 2>&1")


def _markers(home: Path) -> tuple[str, str]:
    return f"# finlake schedule begin {home}", f"# finlake schedule end {home}"


def crontab_block(items: list[Entry], python: str, home: Path, logs: Path) -> str:
    begin, end = _markers(home)
    return "\n".join([begin, *[f"{e.cron} {command(e, python, home, logs)}" for e in items], end]) + "\n"


def without_block(crontab: str, home: Path) -> str:
    """``crontab`` with this home's finlake block taken out (other lines and homes kept)."""
    begin, end = _markers(home)
    out, inside = [], False
    for line in crontab.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end and inside:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def with_block(crontab: str, block: str, home: Path) -> str:
    """``crontab`` with this home's finlake block replaced by ``block`` (installing twice keeps one)."""
    return without_block(crontab, home) + block


def _crontab() -> str:
    exe = shutil.which("crontab")
    if exe is None:
        common.fail("no crontab on this machine; run the same entries in the foreground with: python -m jobs.schedule run")
    return exe


def _read_crontab(exe: str) -> str:
    r = subprocess.run([exe, "-l"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""   # "no crontab for user" is an empty one


def _write_crontab(exe: str, text: str) -> None:
    r = subprocess.run([exe, "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        common.fail(f"crontab refused the new table: {r.stderr.strip() or r.returncode}")


def due(items: list[Entry], after: dt.datetime) -> tuple[dt.datetime, list[Entry]]:
    """The next time any entry is due after ``after``, and the entries due then."""
    from croniter import croniter

    nxt = {e.name: croniter(e.cron, after).get_next(dt.datetime) for e in items}
    soonest = min(nxt.values())
    return soonest, [e for e in items if nxt[e.name] == soonest]


def run_forever(items: list[Entry], python: str, home: Path, logs: Path, max_runs: int | None = None) -> int:
    """A foreground scheduler: sleep until the next entry is due, run it, report its exit code."""
    runs = 0
    while max_runs is None or runs < max_runs:
        at, batch = due(items, dt.datetime.now())
        print(f"schedule: next {', '.join(e.name for e in batch)} at {at:%Y-%m-%d %H:%M}", flush=True)
        time.sleep(max(0.0, (at - dt.datetime.now()).total_seconds()))
        for e in batch:
            started = time.perf_counter()
            rc = subprocess.run(command(e, python, home, logs), shell=True).returncode
            print(f"schedule: {e.name} exited {rc} after {time.perf_counter() - started:,.0f} s "
                  f"(log {logs / f'schedule-{e.name}.log'})", flush=True)
            runs += 1
    return runs


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
    block = crontab_block(items, python, home, logs)
    if args.action == "print":
        print(block, end="")
    elif args.action == "install":
        exe = _crontab()
        _write_crontab(exe, with_block(_read_crontab(exe), block, home))
        print(f"schedule: {len(items)} entries installed in the crontab ({', '.join(f'{e.name} {e.cron!r}' for e in items)}); "
              f"logs under {logs}", flush=True)
    elif args.action == "remove":
        exe = _crontab()
        _write_crontab(exe, without_block(_read_crontab(exe), home))
        print(f"schedule: finlake entries for {home} removed from the crontab", flush=True)
    else:
        run_forever(items, python, home, logs, args.max_runs)
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
