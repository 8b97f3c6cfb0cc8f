"""Build Great Expectations Data Docs for finlake's expectation suites (on demand).

    python jobs/data_docs.py            # writes FINLAKE_HOME/reports/data_docs, prints the index page
"""
from __future__ import annotations

import sys

from jobs import common


def run(_spark, cfg, args) -> dict:
    from lakehouse.quality import build_data_docs  # pyspark: +0.7 s at import; --help stays quick

    target = args.out or str(cfg.path("paths.reports") / "data_docs")
    index = build_data_docs(target)
    print(f"data docs: {index}")
    return {"index": index}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--out", default=None, help="folder for the Great Expectations project and its docs")
    result = common.execute(p, argv, run, app_name="finlake-data-docs", needs_spark=False)
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
