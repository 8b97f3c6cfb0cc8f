"""Build the spark-submit command for a finlake job (``spark-submit.sh`` runs it).

    python -m jobs.submit [--env E] [--master URL] [--conf KEY=VALUE]... jobs/<job>.py [job args]

Our packages travel as one zip through ``--py-files``; Delta, the Kafka connector and our own
jar travel as cached files through ``--jars`` (``lakehouse.jvm``); every Spark property of the
environment is passed with ``--conf``. The same command works on ``local[*]``, a standalone master or Kubernetes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, Config, ConfigError, load_config
from lakehouse.jvm import ensure_jars
from lakehouse.session import spark_properties, submit_args, write_log4j, write_pools



def packages(root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """Our top-level packages, as the checkout's pyproject.toml declares them for the install
    (one list; read when a zip is built, so an installed finlake without its checkout imports
    this module fine)."""
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return tuple(p.rstrip("*") for p in include)


def build_zip(dest: Path, root: Path = PROJECT_ROOT) -> Path:
    """Zip our packages (sources and YAML only) into ``dest``; the result is reproducible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in packages(root):
            for path in sorted((root / package).rglob("*")):
                if path.is_file() and path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                    info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(2020, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
    os.replace(tmp, dest)
    return dest


def spark_submit_binary() -> str:
    """``$SPARK_HOME/bin/spark-submit`` when SPARK_HOME is set, else the one pyspark ships."""
    if os.environ.get("SPARK_HOME"):
        return str(Path(os.environ["SPARK_HOME"]) / "bin" / "spark-submit")
    found = shutil.which("spark-submit", path=str(Path(sys.executable).parent)) or shutil.which("spark-submit")
    if not found:
        raise ConfigError("spark-submit not found: install the project (make install) or set SPARK_HOME")
    return found


def submit_command(cfg: Config, job: str, job_args: list[str], master: str | None, overrides: list[str],
                   jars: list[str] | None = None) -> list[str]:
    if not Path(job).is_file():
        raise ConfigError(f"job file not found: {job}")
    zipped = build_zip(cfg.home / "dist" / "finlake.zip")
    master = master or spark_properties(cfg)["spark.master"]
    cmd = [spark_submit_binary(), "--master", master, "--name", f"finlake-{Path(job).stem}",
           "--py-files", str(zipped), *submit_args(cfg, jars=jars, master=master), job, "--env", cfg.env]
    for item in overrides:
        cmd += ["--conf", item]
    return cmd + list(job_args)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="spark-submit.sh", description="Submit a finlake job to Spark.")
    p.add_argument("--env", default=None, help="configuration environment (default: $FINLAKE_ENV or local)")
    p.add_argument("--master", default=None, help="Spark master URL (default: spark.master of the environment)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="finlake config override (repeatable)")
    p.add_argument("--print", action="store_true", help="print the command instead of running it")
    p.add_argument("job", help="jobs/<job>.py")
    p.add_argument("job_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.env, args.conf)
        jars = None
        if not args.print:
            jars = ensure_jars(cfg)
            write_log4j(cfg)
            write_pools(cfg)
        cmd = submit_command(cfg, args.job, args.job_args, args.master, args.conf, jars=jars)
    except Exception as exc:  # bad config, a jar that cannot be fetched or built: one line, not a traceback
        print(f"spark-submit.sh: error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    if args.print:
        print(" ".join(cmd))
        return
    python = spark_properties(cfg)["spark.pyspark.python"]
    # The driver imports our packages from the zip, so tell it where the config and state live.
    env = dict(os.environ, PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python, FINLAKE_ENV=cfg.env,
               FINLAKE_HOME=str(cfg.home), FINLAKE_CONF_DIR=str(cfg.conf_dir))
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
