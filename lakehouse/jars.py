"""Fetch JVM artifacts from Maven Central with the Ivy jar that pyspark already ships, so a
machine with Python and Java (no Maven, no Docker) can run the whole stack."""
from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path
from xml.sax.saxutils import quoteattr

from lakehouse.java import java_executable

# pyspark is imported where used: ~0.6 s, and every finlake command imports this module at start (jobs.common).


class JarResolutionError(RuntimeError):
    pass


def ivy_jar() -> Path:
    import pyspark

    found = sorted(glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "ivy-*.jar")))
    if not found:
        raise JarResolutionError("pyspark's bundled Ivy jar was not found; reinstall pyspark")
    return Path(found[-1])


def resolve(coordinates: list[str], dest: Path, ivy_cache: Path, log: Path | None = None) -> list[Path]:
    """Download ``group:artifact:version`` coordinates and their runtime dependencies into ``dest``.

    Idempotent: a folder holding a ``.resolved`` marker for the same coordinates is reused.
    """
    dest = Path(dest)
    marker = dest / ".resolved"
    wanted = "\n".join(coordinates)
    if marker.exists() and marker.read_text() == wanted:
        return sorted(dest.glob("*.jar"))
    dest.mkdir(parents=True, exist_ok=True)
    deps = []
    for coord in coordinates:
        try:
            org, name, rev = coord.split(":")
        except ValueError:
            raise JarResolutionError(f"expected group:artifact:version, got '{coord}'") from None
        deps.append(f"<dependency org={quoteattr(org)} name={quoteattr(name)} rev={quoteattr(rev)} conf=\"default->default\"/>")
    ivy_xml = dest / "ivy.xml"
    ivy_xml.write_text(
        '<ivy-module version="2.0"><info organisation="finlake" module="deps"/>'
        '<configurations><conf name="default"/></configurations>'
        f"<dependencies>{''.join(deps)}</dependencies></ivy-module>"
    )
    cmd = [
        java_executable(), "-jar", str(ivy_jar()), "-ivy", str(ivy_xml), "-confs", "default",
        "-cache", str(ivy_cache), "-types", "jar", "bundle",
        "-retrieve", str(dest / "[artifact]-[revision](-[classifier]).[ext]"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr).strip().splitlines()[-5:]
        raise JarResolutionError(f"could not resolve {', '.join(coordinates)} from Maven Central: {' | '.join(tail)}")
    marker.write_text(wanted)
    return sorted(dest.glob("*.jar"))
