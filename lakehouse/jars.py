"""Fetch JVM artifacts from Maven Central with the Ivy jar that pyspark already ships, so a
machine with Python and Java (no Maven, no Docker) can run the whole stack."""
from __future__ import annotations

import glob
import io
import os
import re
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


def coordinate_parts(coordinate: str) -> tuple[str, str, str]:
    """``group:artifact:version`` -> its three parts; anything else is a JarResolutionError."""
    parts = coordinate.split(":")
    if len(parts) != 3:
        raise JarResolutionError(f"expected group:artifact:version, got '{coordinate}'")
    return parts[0], parts[1], parts[2]


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
        org, name, rev = coordinate_parts(coord)
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


# Where Ivy's default resolver (above) fetches from.
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def artifact_url(coordinate: str, repository: str = MAVEN_CENTRAL) -> str:
    """The jar's address in a Maven repository: ``group:artifact:version`` -> ``.../artifact-version.jar``."""
    org, name, rev = coordinate_parts(coordinate)
    return f"{repository}/{org.replace('.', '/')}/{name}/{rev}/{name}-{rev}.jar"


class _RangeReader(io.RawIOBase):
    """A remote file read by HTTP range requests: enough for ``zipfile`` to read a jar's
    central directory (its last few megabytes) without fetching the whole archive."""

    def __init__(self, url: str, timeout: float = 60):
        import urllib.request

        self._url, self._timeout, self._pos = url, timeout, 0
        head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
        self._size = int(head.headers["Content-Length"])

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        self._pos = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + offset
        return self._pos

    def readinto(self, buffer):
        import urllib.request

        end = min(self._size, self._pos + len(buffer)) - 1
        if end < self._pos:
            return 0
        request = urllib.request.Request(self._url, headers={"Range": f"bytes={self._pos}-{end}"})
        data = urllib.request.urlopen(request, timeout=self._timeout).read()
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def remote_jar_entries(url: str) -> list[str]:
    """The entry names of a jar in a Maven repository, read from its central directory only."""
    import urllib.error
    import zipfile

    try:
        with zipfile.ZipFile(io.BufferedReader(_RangeReader(url), buffer_size=1 << 20)) as jar:
            return jar.namelist()
    except (urllib.error.URLError, OSError, zipfile.BadZipFile) as e:
        raise JarResolutionError(f"could not read the entries of {url}: {e}") from None


def spark_shims(entries) -> list[str]:
    """The Spark versions a multi-shim jar (the RAPIDS Accelerator's) carries code for: its
    top-level ``sparkNNN[suffix]/`` folders, e.g. ``spark420`` for Apache Spark 4.2.0."""
    return sorted({e.split("/", 1)[0] for e in entries if re.fullmatch(r"spark\d{3}[a-z0-9]*/.*", e)})


def shim_name(spark_version: str) -> str:
    """The shim folder of an Apache Spark release: ``4.2.0`` -> ``spark420``."""
    parts = spark_version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise JarResolutionError(f"expected a Spark release like 4.2.0, got '{spark_version}'")
    return "spark" + "".join(parts)
