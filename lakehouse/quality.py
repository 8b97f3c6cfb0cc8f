"""Quality gates: Great Expectations suites run on each micro-batch, plus the row-level
predicates that route each failing row to quarantine with every rule it broke."""
from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from lakehouse.config import Config, ConfigError
from lakehouse.schemas.expectations import ALL_SUITES, DEFAULT_MIN_AMOUNT, MAX_AMOUNT, rule_name, suite_name, suites

# great_expectations is imported where used: ~6.5 s, else paid by every command importing the pipeline (--help too).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# One Great Expectations context serves every query of the process, and foreachBatch functions
# of concurrent queries run on their own threads: the context's batch definition and suites
# are not thread-safe (two batches validated at once swap dataframes), so validations queue.
_GX_LOCK = threading.RLock()
logging.getLogger("great_expectations").setLevel(logging.WARNING)


def predicate(expectation: dict) -> Column:
    """True where a row breaks ``expectation`` (with Great Expectations' semantics: value rules
    ignore nulls, which only the not-null rule counts)."""
    col = F.col(expectation["column"])
    kind = expectation["type"]
    if kind == "expect_column_values_to_not_be_null":
        return col.isNull()
    if kind == "expect_column_values_to_be_between":
        out = F.lit(False)
        if expectation.get("min_value") is not None:
            out = out | (col < F.lit(expectation["min_value"]))
        if expectation.get("max_value") is not None:
            out = out | (col > F.lit(expectation["max_value"]))
        return col.isNotNull() & out
    if kind == "expect_column_values_to_be_in_set":
        return col.isNotNull() & ~col.isin(list(expectation["value_set"]))
    if kind == "expect_column_values_to_match_regex":
        return col.isNotNull() & ~col.rlike(expectation["regex"])
    raise ValueError(f"no row-level predicate for {kind}")


def min_amount(cfg: Config) -> float:
    """The setting ``quality.min_amount`` (see ``DEFAULT_MIN_AMOUNT``), checked."""
    value = cfg.get("quality.min_amount", DEFAULT_MIN_AMOUNT)
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = -1.0
    if not 0 <= amount < MAX_AMOUNT:
        raise ConfigError(f"quality.min_amount must be a number from 0 to {MAX_AMOUNT:,}, got {value!r}")
    return amount


def rule_failures(stream: str, min_amount: float = DEFAULT_MIN_AMOUNT) -> Column:
    """An array of the names of every rule of ``stream``'s suite that the row breaks."""
    checks = [F.when(predicate(e), F.lit(rule_name(e))) for e in suites(min_amount)[stream]]
    return F.filter(F.array(*checks), lambda x: x.isNotNull())


# A micro-batch up to this many rows is validated with Great Expectations' pandas engine (one
# Arrow transfer, then in-process checks); larger ones with its Spark engine (a Spark job per
# expectation), which scales but costs seconds per batch in scheduling alone.
PANDAS_MAX_ROWS = 250_000


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # Its import sets some of its own loggers to INFO explicitly (a parent's level does not reach
    # them): quiet each one, or a console with a root handler shows "Created temporary directory".
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "great_expectations"] + ["great_expectations"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    spark_batches = ctx.data_sources.add_spark("finlake").add_dataframe_asset("micro_batch").add_batch_definition_whole_dataframe("whole")
    pandas_batches = ctx.data_sources.add_pandas("finlake_pandas").add_dataframe_asset("micro_batch").add_batch_definition_whole_dataframe("whole")
    return ctx, {"spark": spark_batches, "pandas": pandas_batches}


def build_suite(stream: str, min_amount: float = DEFAULT_MIN_AMOUNT):
    """A Great Expectations suite object for ``stream``, built from its configuration."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    name = suite_name(stream) if min_amount == DEFAULT_MIN_AMOUNT else f"{suite_name(stream)}@min_amount={min_amount}"
    s = gx.ExpectationSuite(name=name)
    for e in suites(min_amount)[stream]:
        s.add_expectation(get_expectation_impl(e["type"])(**{k: v for k, v in e.items() if k != "type"}))
    return s


@lru_cache(maxsize=None)
def suite(stream: str, min_amount: float = DEFAULT_MIN_AMOUNT):
    """The suite of ``stream``, registered in the ephemeral validation context."""
    ctx, _ = _context()
    return ctx.suites.add(build_suite(stream, min_amount))


def prepare(stream: str, min_amount: float = DEFAULT_MIN_AMOUNT) -> threading.Thread:
    """Import Great Expectations and build its context and ``stream``'s suite in a daemon thread,
    so that a process's first ``validate`` does not pay for them: 7.0 s for the first call
    against 0.23-0.41 s for the next ones (measured on a 58-row sample), and inside an ingest
    batch, where the other streams' validations wait on the same lock. ``validate`` takes what
    is ready and builds the rest itself; an error here is left to it to raise."""

    def run():
        try:
            with _GX_LOCK:
                _context()
                suite(stream, min_amount)
        except Exception:  # noqa: BLE001 - validate builds them again and raises in its batch
            pass

    t = threading.Thread(target=run, name=f"finlake-gx-{stream}", daemon=True)
    t.start()
    return t


def validate(df: DataFrame, stream: str, rows: int | None = None, min_amount: float = DEFAULT_MIN_AMOUNT) -> list[dict]:
    """Run ``stream``'s suite on ``df``; one result per expectation (rule, success, counts).
    ``rows`` (when the caller knows it) picks the engine: pandas up to PANDAS_MAX_ROWS."""
    engine = "pandas" if rows is not None and rows <= PANDAS_MAX_ROWS else "spark"
    data = df.toPandas() if engine == "pandas" else df
    if engine == "pandas":
        # Spark compares a decimal with a bound as doubles; Python compares Decimal('0.01') with
        # the float 0.01 exactly (and finds it smaller). Floats make both engines agree.
        for f in df.schema.fields:
            if isinstance(f.dataType, DecimalType):
                data[f.name] = data[f.name].astype("float64")
    with _GX_LOCK:
        _, batch_definitions = _context()
        batch = batch_definitions[engine].get_batch(batch_parameters={"dataframe": data})
        result = batch.validate(suite(stream, min_amount), result_format={"result_format": "SUMMARY"})
    out = []
    for r in result.results:
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        cfg = {"type": r.expectation_config.type, **kwargs}
        out.append({"expectation": rule_name(cfg), "success": bool(r.success),
                    "unexpected_count": int(r.result.get("unexpected_count") or 0),
                    "element_count": int(r.result.get("element_count") or 0)})
    return out


def build_data_docs(target: str) -> str:
    """Render the suites as Great Expectations Data Docs under ``target``; returns the index page."""
    import great_expectations as gx

    ctx = gx.get_context(mode="file", project_root_dir=target)
    for stream in ALL_SUITES:
        try:
            ctx.suites.delete(suite_name(stream))
        except Exception:  # not there yet
            pass
        ctx.suites.add(build_suite(stream))
    ctx.build_data_docs()
    sites = ctx.get_docs_sites_urls()
    return sites[0]["site_url"] if sites else target
