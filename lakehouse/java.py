"""Find a usable JDK (17 or newer) or say clearly, in one line, why there is none and what installs
one. Standard library only: ``lakehouse.preflight`` runs it before the environment exists."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache

MIN_JAVA = 17
# The commands that install a JDK, named in every message about a missing or unusable one.
INSTALL_JDK = ("install a JDK 17+: Debian/Ubuntu `sudo apt-get install openjdk-17-jdk-headless`; "
               "macOS `brew install openjdk@17` and `export JAVA_HOME=$(brew --prefix openjdk@17)`; or set JAVA_HOME to a JDK")


class JavaMissingError(RuntimeError):
    pass


def _tool(name: str) -> str | None:
    home = os.environ.get("JAVA_HOME")
    found = os.path.join(home, "bin", name) if home else shutil.which(name)
    return found if found and os.path.exists(found) else None


def java_major(java: str) -> int:
    """The major version of ``java``; raises JavaMissingError when it does not run as a JDK (the
    macOS ``/usr/bin/java`` stub without a JDK behind it answers with an error, not a version)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise JavaMissingError(f"{java} does not run ({e.strerror}): {INSTALL_JDK}") from None
    text = out.stderr + out.stdout
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        if "Unable to locate a Java Runtime" in text or (sys.platform == "darwin" and java == "/usr/bin/java"):
            raise JavaMissingError(f"{java} is macOS's stub with no JDK behind it: {INSTALL_JDK}")
        first = (text.strip().splitlines() or ["no output"])[0][:160]
        raise JavaMissingError(f"cannot tell the version of {java} ({first}): {INSTALL_JDK}")
    return int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)


@lru_cache(maxsize=1)
def java_executable() -> str:
    """The ``java`` of JAVA_HOME, else of PATH; raises JavaMissingError naming what to do."""
    candidate = _tool("java")
    if candidate is None:
        home = os.environ.get("JAVA_HOME")
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH"
        raise JavaMissingError(f"Java {MIN_JAVA}+ is required (Spark and the Kafka broker run on it): {where}; {INSTALL_JDK}")
    major = java_major(candidate)
    if major < MIN_JAVA:
        raise JavaMissingError(f"Java {MIN_JAVA}+ is required, {candidate} is Java {major}: {INSTALL_JDK}")
    return candidate


def javac_executable() -> str:
    """The JDK's ``javac`` (it builds finlake's JVM functions); raises JavaMissingError."""
    found = _tool("javac")
    if found is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/javac" if os.environ.get("JAVA_HOME") else "no `javac` on PATH (a JRE only?)"
        raise JavaMissingError(f"a JDK's javac is required to build finlake's JVM functions: {where}; {INSTALL_JDK}")
    return found
