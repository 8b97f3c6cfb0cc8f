"""Scheduling finlake's batch jobs: the configured entries (``schedule.entries``), their crontab
lines and the block of them in a crontab, and a foreground scheduler running the same entries."""
from __future__ import annotations

import datetime as dt
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from croniter import croniter

from lakehouse.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Entry:
    name: str
    cron: str
    job: str          # module under jobs/
    args: tuple[str, ...]


def entries(cfg, job_refuses: Callable[[str, tuple[str, ...]], str | None] | None = None) -> list[Entry]:
    """The configured entries, each checked: a valid cron expression and, given ``job_refuses``
    (the reason a job cannot run the arguments, or None), a job that accepts its arguments. A bad
    one raises ValueError naming it."""
    out = []
    for name, spec in (cfg.get("schedule.entries") or {}).items():
        spec = spec or {}
        cron, job, args = str(spec.get("cron", "")), str(spec.get("job", "")), tuple(shlex.split(str(spec.get("args") or "")))
        if not croniter.is_valid(cron):
            raise ValueError(f"schedule entry '{name}': '{cron}' is not a cron expression")
        reason = job_refuses(job, args) if job_refuses is not None else None
        if reason:
            raise ValueError(f"schedule entry '{name}': {reason}")
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
    """The crontab lines of ``items`` between this home's begin and end markers."""
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


def crontab_exe() -> str:
    """The ``crontab`` program; ConfigError when this machine has none."""
    exe = shutil.which("crontab")
    if exe is None:
        raise ConfigError("no crontab on this machine; run the same entries in the foreground with: python -m jobs.schedule run")
    return exe


def read_crontab(exe: str) -> str:
    """The user's crontab ("" when there is none)."""
    r = subprocess.run([exe, "-l"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""   # "no crontab for user" is an empty one


def write_crontab(exe: str, text: str) -> None:
    """Replace the user's crontab with ``text``; ConfigError when crontab refuses it."""
    r = subprocess.run([exe, "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise ConfigError(f"crontab refused the new table: {r.stderr.strip() or r.returncode}")


def due(items: list[Entry], after: dt.datetime) -> tuple[dt.datetime, list[Entry]]:
    """The next time any entry is due after ``after``, and the entries due then."""
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
