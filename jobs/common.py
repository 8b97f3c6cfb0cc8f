"""What every job shares: ``--env``/``--conf`` parsing, one-line errors, the session, the catalog.

A job module defines ``run(spark, cfg, args)`` (tests call it with their own session and
config) and ``main(argv=None)`` that hands both to ``execute``.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Callable

from lakehouse.config import Config, ConfigError, load_config
from lakehouse.failures import QueryFailed, root_cause
from lakehouse.jars import JarResolutionError
from lakehouse.java import JavaMissingError
from lakehouse.kafka.broker import BrokerError
from lakehouse.session import build_session

try:
    from py4j.protocol import Py4JNetworkError

    _PY4J_ERRORS: tuple[type[BaseException], ...] = (Py4JNetworkError,)
except ImportError:
    _PY4J_ERRORS = ()

# Errors a user can fix from the message alone: printed as one line, exit code 2.
_USER_ERRORS = (ConfigError, BrokerError, JavaMissingError, JarResolutionError, QueryFailed)


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
    from lakehouse.topology import names  # pyspark (via lakehouse.gold): +0.7 s at import; stack, submit, sql_server never pick

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
        from lakehouse.catalog import Catalog  # pyspark: +0.7 s at import; jobs without Spark never need it

        spark = build_session(cfg, app_name=app_name)
        if register_catalog:
            Catalog(cfg).register(spark)
        return run(spark, cfg, args)
    except _USER_ERRORS as exc:
        fail(str(exc))
    except (ConnectionError, EOFError) + _PY4J_ERRORS as exc:
        # The Spark JVM went away under us: say so in one line, not with py4j's traceback.
        fail(f"Spark stopped unexpectedly ({root_cause(exc)}); its log is {cfg.path('paths.logs') / 'spark.log'}", 1)


def live_metrics(spark, cfg, job: str) -> str | None:
    """Feed the session's streaming queries into the Prometheus metrics and serve them on the
    job's port (``metrics.ports.<job>``); returns the endpoint's URL, or None."""
    from lakehouse import observe  # pyspark: +0.7 s at import; only streaming jobs serve metrics

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
    flag = {"stop": False}

    def on_signal(signum, _frame):
        flag["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return flag
