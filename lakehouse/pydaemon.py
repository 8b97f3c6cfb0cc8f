"""The Python worker daemon for local sessions: pyspark's own, minus the zips on its path.

Spark puts ``pyspark.zip``, py4j's zip and the spark-core jar on every Python worker's path,
and each task calls ``importlib.invalidate_caches()``, which on Python 3.11 re-reads the index
of every zip on the path: most of a second per task on the spark-core jar alone. A venv that
installed pyspark (every local finlake session) needs none of them, so this daemon drops them
before pyspark is imported and then runs pyspark's daemon unchanged. Set by
``lakehouse.session`` through ``spark.python.daemon.module`` for ``local`` masters only (a
cluster's executors may not have finlake installed).
"""
import sys

sys.path[:] = [p for p in sys.path if not p.endswith((".zip", ".jar"))]

from pyspark.daemon import manager  # noqa: E402

if __name__ == "__main__":
    # Workers fork from here: let them import finlake afresh (from --py-files when shipped),
    # not inherit the package this module was found in.
    for name in [m for m in sys.modules if m == "lakehouse" or m.startswith("lakehouse.")]:
        del sys.modules[name]
    manager()
