"""finlake's JVM side: the jars every session and spark-submit carry, and our own small jar.

Spark's ``spark.jars.packages`` puts each resolved jar on the Python workers' path too, and on
Python 3.11 every PySpark task then re-reads all their zip indexes (about 2 s a batch, measured
here). So finlake resolves the configured Maven packages once into a cache folder and passes
them as plain files through ``spark.jars`` (``--jars`` for spark-submit).

Our own jar holds the Spark SQL functions that must run in the JVM: the PAN tokenizer (linear,
no regex, bounded stack on any input) and the keyed token, whose key is set in the JVM at run
time and so never appears in a query plan. It is compiled from ``lakehouse/jvm/src`` with the
JDK's ``javac`` against pyspark's own jars, once per source version.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lakehouse.config import Config
from lakehouse.jars import JarResolutionError, resolve
from lakehouse.java import JavaMissingError, javac_executable

# pyspark is imported where used: ~0.6 s, and every finlake command imports this module at start (jobs.common).

SRC = Path(__file__).resolve().parent / "jvm" / "src"
# name -> (class, return type as Spark DDL)
FUNCTIONS = {
    "finlake_tokenize_payload": ("finlake.TokenizePayload", "binary"),
    "finlake_tokenize_key": ("finlake.TokenizeKey", "binary"),
    "finlake_pan_token": ("finlake.PanToken", "string"),
}


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.java"))


def _digest(parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def packages_dir(cfg: Config) -> Path:
    """Where the configured Maven packages are resolved to (one folder per set of coordinates)."""
    return cfg.path("paths.cache") / "spark-jars" / _digest(cfg["spark.packages"] or [])


def udf_jar_path(cfg: Config) -> Path:
    """Where our jar for the current sources, compiled against the installed pyspark's jars,
    lives: a new Spark (an upgrade in the same FINLAKE_HOME) compiles it again rather than
    reusing classes built against another Spark's API."""
    import pyspark   # its version, not its distribution's: a Databricks runtime's pyspark is not pip-installed

    return cfg.path("paths.cache") / f"finlake-udf-{_digest([pyspark.__version__, *(p.read_bytes() for p in _sources())])}.jar"


def jar_specs(cfg: Config) -> list[str]:
    """The ``spark.jars`` entries for ``cfg`` (a glob for the packages, our jar): pure."""
    out = []
    if cfg["spark.packages"]:
        out.append(str(packages_dir(cfg) / "*.jar"))
    out.append(str(udf_jar_path(cfg)))
    return out


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _artifact(jar_name: str) -> str:
    """``kafka-clients-3.9.1.jar`` -> ``kafka-clients``."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9_.]+)?\.jar$", "", jar_name)


def ensure_packages(cfg: Config) -> list[Path]:
    """Resolve ``spark.packages`` into their folder (idempotent) without the jars pyspark ships."""
    coords = list(cfg["spark.packages"] or [])
    if not coords:
        return []
    dest = packages_dir(cfg)
    jars = resolve(coords, dest, cfg.path("paths.cache") / "ivy", log=cfg.path("paths.logs") / "ivy-resolve.log")
    shipped = {_artifact(p.name) for p in _pyspark_jars().glob("*.jar")}
    for jar in jars:
        if _artifact(jar.name) in shipped:
            jar.unlink()
    return sorted(dest.glob("*.jar"))


def _javac() -> str:
    try:
        return javac_executable()
    except JavaMissingError as e:
        raise JarResolutionError(str(e)) from None


def ensure_udf_jar(cfg: Config) -> Path:
    """Compile our jar for the current sources unless it is already cached; returns its path."""
    target = udf_jar_path(cfg)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        classpath = str(_pyspark_jars() / "*")
        out = subprocess.run([_javac(), "--release", "17", "-nowarn", "-d", tmp, "-cp", classpath,
                              *[str(p) for p in _sources()]], capture_output=True, text=True)
        if out.returncode != 0:
            raise JarResolutionError(f"compiling finlake's JVM functions failed: {(out.stderr or out.stdout).strip()[:400]}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for cls in sorted(Path(tmp).rglob("*.class")):
                info = zipfile.ZipInfo(str(cls.relative_to(tmp)), date_time=(2020, 1, 1, 0, 0, 0))
                zf.writestr(info, cls.read_bytes())
        os.replace(partial, target)
    return target


def ensure_jars(cfg: Config) -> list[str]:
    """Everything ``jar_specs`` names, present on disk; returns each jar file's path (Spark's
    driver expands a glob in ``spark.jars`` but ``SparkContext.addJar`` does not, so
    executors elsewhere would get nothing from one)."""
    return [str(p) for p in ensure_packages(cfg)] + [str(ensure_udf_jar(cfg))]


def register_functions(spark) -> None:
    """Register our Spark SQL functions in ``spark`` (names in FUNCTIONS)."""
    from pyspark.sql.types import _parse_datatype_string

    for name, (cls, ddl) in FUNCTIONS.items():
        spark.udf.registerJavaFunction(name, cls, _parse_datatype_string(ddl))


def java_strings(spark, items) -> object:
    """A Java ``String[]`` of ``items`` in the driver's JVM (for finlake's registration calls)."""
    gateway = spark.sparkContext._gateway
    items = list(items)
    out = gateway.new_array(gateway.jvm.java.lang.String, len(items))
    for i, item in enumerate(items):
        out[i] = item
    return out


def set_pan_key(spark, key: bytes) -> None:
    """Hand the PAN key to the driver's JVM (and so to local executors); never into a plan."""
    spark.sparkContext._jvm.finlake.Pan.setKey(bytearray(key))


def release_checkpoint(df) -> None:
    """Free the blocks of ``df.localCheckpoint()`` now, not when the JVM collects its RDD."""
    df._jdf.queryExecution().analyzed().rdd().unpersist(False)
