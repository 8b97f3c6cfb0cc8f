"""The ``finlake`` command: every job behind one entry point, its help, its bad arguments."""
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import COMMANDS, JOBS
from tests.conftest import ROOT


def _finlake(*args, env=None):
    exe = shutil.which("finlake", path=str(Path(sys.executable).parent))   # the environment running the tests
    cmd = [exe, *args] if exe else [sys.executable, "-m", "jobs.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_every_command_is_a_job_with_main_and_every_job_has_a_command():
    for command, module in COMMANDS.items():
        assert callable(importlib.import_module(f"jobs.{module}").main), command
    jobs = {p.stem for p in JOBS.glob("*.py")} - {"__init__", "common", "cli"}
    assert jobs == set(COMMANDS.values())


def test_help_lists_every_command_on_one_line():
    out = _finlake("--help")
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


@pytest.mark.parametrize("args, says", [(["nope"], "finlake: error: unknown command 'nope'"),
                                        (["sql", "--nope"], "finlake sql: error: unrecognized arguments: --nope"),
                                        ([], "usage: finlake")])
def test_bad_arguments_exit_2_with_one_line(args, says):
    out = _finlake(*args)
    assert out.returncode == 2
    assert says in (out.stderr + out.stdout)
    assert "Traceback" not in out.stderr


def test_a_command_runs_its_job_unchanged(job_env):
    direct = subprocess.run([sys.executable, "jobs/submit.py", "--print", "jobs/selfcheck.py"], cwd=ROOT, env=job_env,
                            capture_output=True, text=True, timeout=300)
    via = _finlake("submit", "--print", "jobs/selfcheck.py", env=job_env)
    assert direct.returncode == 0 and via.returncode == 0, (direct.stderr, via.stderr)
    assert via.stdout == direct.stdout and "spark-submit" in via.stdout
