"""Run SQL against the finlake catalog and print the result as a table.

    python jobs/sql.py "SELECT count(*) FROM bronze.transactions"
    python jobs/sql.py --file report.sql --format json
Every table in conf/base/catalog.yaml is registered by name; Delta time travel works
(``SELECT * FROM silver.transactions VERSION AS OF 3``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from jobs import common
from reports.console import render


def split_statements(text: str) -> list[str]:
    """Split a SQL script on semicolons outside quotes and comments."""
    out, buf, quote, i = [], [], None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def run(spark, cfg, args) -> list[dict]:
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            common.fail(f"SQL file not found: {path}")
        statements = split_statements(path.read_text())
    elif args.statement:
        statements = split_statements(args.statement)
    else:
        common.fail("give a SQL statement or --file FILE")
    results = []
    from pyspark.errors import PySparkException

    for stmt in statements:
        try:
            df = spark.sql(stmt)
            rows = [tuple(r) for r in df.limit(args.limit).collect()]
        except PySparkException as exc:
            common.fail(f"SQL failed: {str(exc).strip().splitlines()[0]}")
        if df.columns:
            print(render(df.columns, rows, args.format))
        results.append({"statement": stmt, "columns": df.columns, "rows": [list(r) for r in rows]})
    return results


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("statement", nargs="?", help="SQL statement(s), separated by ';'")
    p.add_argument("--file", "-f", help="a .sql file to run")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--limit", type=int, default=1000, help="most rows to print per statement")
    return common.execute(p, argv, run, app_name="finlake-sql")


if __name__ == "__main__":
    main(sys.argv[1:])
