"""The ``finlake`` command: one entry point for every job.

    finlake --help                 # the commands, one line each
    finlake demo --events 5000     # the same as: python jobs/demo.py --events 5000
    finlake stream --help          # a command's own options

Each command runs the job module's ``main(argv)`` unchanged; its description is the first line
of the module's docstring. A job's exit status is the command's.
"""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

# command -> job module under jobs/ (one place; the test checks that each exists and has main)
COMMANDS = {
    "demo": "demo",
    "produce": "produce",
    "load": "load",
    "stream": "stream",
    "decide": "decide",
    "train": "train",
    "score": "score",
    "monitor": "monitor",
    "retrain": "retrain",
    "schedule": "schedule",
    "stats": "stats_report",
    "sql": "sql",
    "sql-server": "sql_server",
    "stack": "stack",
    "maintain": "maintain",
    "data-docs": "data_docs",
    "selfcheck": "selfcheck",
    "topology": "topology",
    "submit": "submit",
}

JOBS = Path(__file__).resolve().parent


def summary(module: str) -> str:
    """First line of a job module's docstring, read without importing it (no Spark, no JVM)."""
    doc = ast.get_docstring(ast.parse((JOBS / f"{module}.py").read_text())) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    first = re.split(r"(?<=[.:])\s", paragraph, maxsplit=1)[0]
    first = first.rstrip(":").replace("``", "")
    return first if len(first) <= 90 else first[:first.rfind(" ", 0, 87)].rstrip(",") + " ..."


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: finlake <command> [options]   (finlake <command> --help for a command's options)", "", "commands:"]
    lines += [f"  {c:<{width}}  {summary(m)}" for c, m in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"finlake: error: unknown command '{command}' (one of: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    sys.argv[0] = f"finlake {command}"   # the job's argparse names itself after this
    result = importlib.import_module(f"jobs.{COMMANDS[command]}").main(rest)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    raise SystemExit(main())
