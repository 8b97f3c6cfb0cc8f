"""What every job shares: ``--env``/``--conf`` parsing, one-line errors, the session, the catalog.

A job module defines ``run(spark, cfg, args)`` (tests call it with their own session and
config) and ``main(argv=None)`` that hands both to ``execute``.
"""
from __future__ import annotations

import argparse
import json
import time
import logging
import re
import sys
from typing import Callable

from lakehouse.config import Config, ConfigError, load_config

# Errors a user can fix from the message alone: printed as one line, exit code 2.
def _user_errors() -> tuple[type[BaseException], ...]:
    from lakehouse.jars import JarResolutionError
    from lakehouse.java import JavaMissingError
    from lakehouse.kafka.broker import BrokerError

    return (ConfigError, BrokerError, JavaMissingError, JarResolutionError)


def _py4j_errors() -> tuple[type[BaseException], ...]:
    try:
        from py4j.protocol import Py4JNetworkError

        return (Py4JNetworkError,)
    except ImportError:
        return ()


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0] if description else None)
    p.add_argument("--env", default=None, help="configuration environment: local, gpu, cluster (default: $FINLAKE_ENV or local)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --conf spark.shuffle_partitions=2 (repeatable)")
    p.add_argument("--verbose", action="store_true", help="show Spark's own log on the console (default: <logs>/spark.log only)")
    return p


def fail(message: str, code: int = 2) -> None:
    print(f"finlake: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def pick(kind: str, text: str, known) -> list[str]:
    """A ``--stream`` / ``--use-case`` style selection (a comma list, or ``all``) of ``known``
    names; an unknown one fails in one line naming it and what is known."""
    from lakehouse.topology import names

    try:
        return names(kind, text, known)
    except ValueError as exc:
        fail(str(exc))


def config_from(args: argparse.Namespace) -> Config:
    try:
        extra = ["spark.console_log=true"] if getattr(args, "verbose", False) else []
        return load_config(args.env, [*args.conf, *extra])
    except ConfigError as exc:
        fail(str(exc))


def execute(p: argparse.ArgumentParser, argv, run: Callable, app_name: str,
            needs_spark: bool | Callable[[argparse.Namespace], bool] = True, register_catalog: bool = True):
    """Parse ``argv``, load config, build Spark (if needed), register the catalog, call ``run``.

    ``needs_spark`` may be a predicate on the parsed arguments (a job that needs Spark in only
    some modes starts no JVM in the others)."""
    args = p.parse_args(argv)
    cfg = config_from(args)
    # pyspark logs every failed query with its JVM stack; jobs report errors in one line.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    try:
        if not (needs_spark(args) if callable(needs_spark) else needs_spark):
            return run(None, cfg, args)
        from lakehouse.catalog import Catalog
        from lakehouse.session import build_session

        spark = build_session(cfg, app_name=app_name)
        if register_catalog:
            Catalog(cfg).register(spark)
        return run(spark, cfg, args)
    except _user_errors() as exc:
        fail(str(exc))
    except (ConnectionError, EOFError) + _py4j_errors() as exc:
        # The Spark JVM went away under us: say so in one line, not with py4j's traceback.
        fail(f"Spark stopped unexpectedly ({root_cause(exc)}); its log is {cfg.path('paths.logs') / 'spark.log'}", 1)


_PY_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
_JVM_CAUSE = re.compile(r"Caused by: ([\w.$]+(?:Error|Exception)): ?(.*)")


def root_cause(exc) -> str:
    """The root cause of a failure in one line: the last Python exception of a traceback that
    crossed py4j (not "An exception was raised by the Python Proxy"), else the deepest JVM
    "Caused by", else the first line."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        tail = text[text.rindex("Traceback (most recent call last)"):]
        hits = [m for m in (_PY_ERROR.match(line.strip()) for line in tail.splitlines()) if m]
        if hits:
            name, message = hits[-1].groups()
            return f"{name.rsplit('.', 1)[-1]}: {message}".strip()
    causes = _JVM_CAUSE.findall(text)
    if causes:
        name, message = causes[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}".strip()
    for marker in ("AnalysisException: ", "PipelineQualityError: "):
        if marker in text:
            return text.split(marker)[-1].strip().splitlines()[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def live_metrics(spark, cfg, job: str) -> str | None:
    """Feed the session's streaming queries into the Prometheus metrics and serve them on the
    job's port (``metrics.ports.<job>``); returns the endpoint's URL, or None."""
    from lakehouse import observe

    observe.attach(spark)
    url = observe.serve(cfg, job)
    if url:
        print(f"{job}: metrics at {url}", flush=True)
    return url


def emit(result: dict) -> None:
    """Print a job's machine-readable result as one JSON line (after any human output)."""
    print("FINLAKE_RESULT " + json.dumps(result, default=str, sort_keys=True), flush=True)


def stop_flag() -> dict:
    """A flag that SIGTERM or Ctrl-C sets (``flag["stop"]``), for jobs that run until stopped."""
    import signal

    flag = {"stop": False}

    def on_signal(signum, _frame):
        flag["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return flag


def stop_all(queries) -> None:
    """Stop streaming queries side by side: each stop waits for its query's running batch to
    give up, so stopping one after another adds those waits up (a SIGTERM must end the job
    promptly). A query that fails while stopping is already stopped."""
    import threading

    def stop(q):
        try:
            q.stop()
        except Exception:  # noqa: BLE001 - stopped either way; its error was reported while running
            pass

    threads = [threading.Thread(target=stop, args=(q,), daemon=True) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def supervise(running: list, cfg, label: str, until, tick=None, every_s: float = 2.0):
    """Keep ``running`` ([(start function, query)]) going until ``until()`` is true: a query
    that failed or stopped is restarted from its checkpoint (nothing lost or repeated) at most
    ``pipeline.max_query_restarts`` times in all. Stops every query at the end; a query past the
    limit ends the job with one line. ``tick()`` runs each round (e.g. to flush metrics)."""
    failed, restarts, limit = None, 0, int(cfg["pipeline.max_query_restarts"])
    while not until():
        time.sleep(every_s)
        if tick:
            tick()
        for i, (start, q) in enumerate(running):
            if q.isActive and q.exception() is None:
                continue
            if restarts >= limit:
                failed = q
                break
            # A restart also rides out what a broker restart can do to Spark's Kafka source
            # (a null offset in its lag metrics, a lost connection).
            restarts += 1
            print(f"{label}: query {q.name} failed ({root_cause(q.exception() or 'it stopped')}); "
                  f"restarting it ({restarts} of pipeline.max_query_restarts={limit})", flush=True)
            running[i] = (start, start())
        if failed:
            break
    stop_all([q for _, q in running])
    if failed:
        if tick:
            tick()
        fail(f"query {failed.name} failed: {root_cause(failed.exception() or 'it stopped')}")
    return restarts
