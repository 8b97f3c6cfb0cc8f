"""What finlake's commands print for people: tables (rich, CSV or JSON lines) and numbered steps
with their elapsed time."""
from __future__ import annotations

import csv
import io
import json
import time

from rich.console import Console
from rich.table import Table


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(columns, r)), default=str) for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(columns)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    table = Table(*columns, show_lines=False)
    for r in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in r))
    console = Console(file=None, width=200, record=True)
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip("\n")


class Steps:
    """Numbered progress lines with elapsed time (stderr), and the time each step took."""

    def __init__(self, total: int):
        self.console, self.total, self.n, self.started, self.seconds = Console(stderr=True), total, 0, time.perf_counter(), {}
        self._name, self._t0 = None, None

    def __call__(self, name: str) -> None:
        self.done()
        self.n += 1
        self._name, self._t0 = name, time.perf_counter()
        self.console.rule(f"[bold]{self.n}/{self.total} {name}[/]  ({time.perf_counter() - self.started:,.0f} s)")

    def done(self) -> None:
        if self._name:
            self.seconds[self._name] = round(time.perf_counter() - self._t0, 1)
            self._name = None

    def log(self, msg: str) -> None:
        self.console.log(msg)
