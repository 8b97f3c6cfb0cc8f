"""Tables by name. ``conf/base/catalog.yaml`` says where each table lives, its layer, schema,
partitioning and checkpoint; this module registers them in a session so that any session (a
job, a notebook, the SQL shell, a second process while a stream runs) can say
``SELECT ... FROM silver.transactions``.

The Spark catalog here is the session's in-memory one: each session registers the tables
over their Delta locations when it starts. The Delta log stays the single source of truth,
so two processes never disagree about a table, and there is no metastore database to lock.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException

from lakehouse.config import Config, ConfigError
from lakehouse.schemas.tables import SCHEMAS

LAYERS = ("bronze", "silver", "quarantine", "gold", "ops", "truth")
FORMATS = ("delta", "parquet")
_ENTRY_KEYS = {"schema", "partition_by", "source", "description", "location", "checkpoint", "format"}


@dataclass(frozen=True)
class TableSpec:
    name: str
    layer: str
    table: str
    location: str
    checkpoint: str
    schema_name: str | None
    partition_by: tuple[str, ...]
    source: str | None
    description: str
    format: str = "delta"

    @property
    def schema(self):
        return SCHEMAS[self.schema_name] if self.schema_name else None


def read_delta_if_exists(spark, location: str):
    """The Delta table at ``location`` at its latest version, or None when it has no commit yet.

    A read refreshes the JVM's cached log of the path. ``DeltaTable.isDeltaTable`` does not: a
    long-running process that first looked at a path before its first commit kept being told
    there is no table there."""
    try:
        return spark.read.format("delta").load(location)
    except AnalysisException as exc:
        if any(code in str(exc) for code in ("DELTA_MISSING_DELTA_TABLE", "PATH_NOT_FOUND", "DELTA_TABLE_NOT_FOUND",
                                              "DELTA_SCHEMA_NOT_SET", "DELTA_READ_TABLE_WITHOUT_COLUMNS")):
            return None
        raise


class Catalog:
    """The configured tables, looked up by ``layer.table`` name."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        warehouse = str(cfg["paths.warehouse"]).rstrip("/")
        checkpoints = str(cfg["paths.checkpoints"]).rstrip("/")
        specs = {}
        for name, entry in (cfg["tables"] or {}).items():
            layer, dot, table = name.partition(".")
            if not dot or layer not in LAYERS or not table.isidentifier():
                raise ConfigError(f"table name '{name}' in the catalog must be <layer>.<table> with layer one of {', '.join(LAYERS)}")
            entry = entry or {}
            unknown = set(entry) - _ENTRY_KEYS
            if unknown:
                raise ConfigError(f"unknown key '{sorted(unknown)[0]}' for table '{name}' in the catalog (known: {', '.join(sorted(_ENTRY_KEYS))})")
            fmt = entry.get("format", "delta")
            if fmt not in FORMATS:
                raise ConfigError(f"table '{name}' has format '{fmt}'; known formats: {', '.join(FORMATS)}")
            schema_name = entry.get("schema")
            if schema_name is not None and schema_name not in SCHEMAS:
                raise ConfigError(f"table '{name}' names schema '{schema_name}', which lakehouse/schemas/tables.py does not define")
            specs[name] = TableSpec(
                name=name,
                layer=layer,
                table=table,
                location=entry.get("location") or f"{warehouse}/{layer}/{table}",
                checkpoint=entry.get("checkpoint") or f"{checkpoints}/{layer}/{table}",
                schema_name=schema_name,
                partition_by=tuple(entry.get("partition_by") or ()),
                source=entry.get("source"),
                description=entry.get("description", ""),
                format=fmt,
            )
        self._specs = specs

    def __iter__(self):
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return list(self._specs)

    def source_topic(self, table: str) -> str:
        """The logical Kafka topic that feeds ``table`` (its ``source: kafka:<topic>``)."""
        spec = self.spec(table)
        if not (spec.source or "").startswith("kafka:"):
            raise ValueError(f"table '{table}' is not fed from Kafka (source: {spec.source})")
        return spec.source.split(":", 1)[1]

    def spec(self, name: str) -> TableSpec:
        try:
            return self._specs[name]
        except KeyError:
            hint = difflib.get_close_matches(name, self._specs, n=1)
            raise ConfigError(
                f"unknown table '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "") + "; tables are listed in conf/base/catalog.yaml"
            ) from None

    def register(self, spark, names: Iterable[str] | None = None) -> list[str]:
        """Create the layer databases and register each table over its Delta location.

        A table that does not exist yet is created empty from its schema (so readers never
        meet a missing table); one whose schema its writer defines is registered once it
        exists. Returns the names registered.
        """
        wanted = [self.spec(n) for n in names] if names is not None else list(self)
        warehouse = str(self.cfg["paths.warehouse"]).rstrip("/")
        for layer in sorted({s.layer for s in wanted}):
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer} LOCATION '{warehouse}/{layer}'")
        done = []
        for spec in wanted:
            if spec.format == "parquet":
                # Plain Parquet written outside Spark (generator ground truth): declare the
                # schema, and refresh so files added by other processes are seen.
                if "://" not in spec.location:
                    Path(spec.location).mkdir(parents=True, exist_ok=True)
                ddl = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.schema.fields)
                self._unregister_if_elsewhere(spark, spec)
                spark.sql(f"CREATE TABLE IF NOT EXISTS {spec.name} ({ddl}) USING PARQUET LOCATION '{spec.location}'")
                spark.sql(f"REFRESH TABLE {spec.name}")
                done.append(spec.name)
                continue
            exists = DeltaTable.isDeltaTable(spark, spec.location)
            if not exists and spec.schema is None:
                continue
            if exists and spec.schema is not None:
                self._check_schema(spark, spec)
            if not exists:
                builder = DeltaTable.createIfNotExists(spark).location(spec.location).addColumns(spec.schema)
                if spec.partition_by:
                    builder = builder.partitionedBy(*spec.partition_by)
                if spec.description:
                    builder = builder.comment(spec.description)
                builder.execute()
            self._unregister_if_elsewhere(spark, spec)
            spark.sql(f"CREATE TABLE IF NOT EXISTS {spec.name} USING DELTA LOCATION '{spec.location}'")
            done.append(spec.name)
        return done

    @staticmethod
    def _unregister_if_elsewhere(spark, spec: TableSpec) -> None:
        """A name this session registered over another home's table (a notebook or test that
        switched configuration) is dropped, so it is registered over this one's; the tables
        are external, so dropping a name deletes no data."""
        if not spark.catalog.tableExists(spec.name):
            return
        db, table = spec.name.split(".", 1)
        uri = spark._jsparkSession.sessionState().catalog().externalCatalog().getTable(db, table).location()
        current = uri.getPath() if uri.getScheme() in (None, "file") else uri.toString()
        wanted = spec.location if "://" in spec.location else str(Path(spec.location).absolute())
        if current.rstrip("/") != wanted.rstrip("/"):
            spark.sql(f"DROP TABLE {spec.name}")

    @staticmethod
    def _check_schema(spark, spec: TableSpec) -> None:
        """Fail in one line when a stored table no longer matches the schema declared in code."""
        stored = {f.name: f.dataType.simpleString() for f in spark.read.format("delta").load(spec.location).schema.fields}
        declared = {f.name: f.dataType.simpleString() for f in spec.schema.fields}
        if stored != declared:
            missing = sorted(set(declared) - set(stored))
            extra = sorted(set(stored) - set(declared))
            changed = sorted(n for n in set(stored) & set(declared) if stored[n] != declared[n])
            raise ConfigError(
                f"table {spec.name} at {spec.location} does not match its declared schema '{spec.schema_name}'"
                f" (missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'}; retyped: {', '.join(changed) or '-'});"
                " migrate it, or remove it (make clean) to start over")
