"""Find a usable Java (17 or newer) or say clearly why there is none."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache

MIN_JAVA = 17


class JavaMissingError(RuntimeError):
    pass


@lru_cache(maxsize=1)
def java_executable() -> str:
    """The ``java`` of JAVA_HOME, else of PATH; raises JavaMissingError naming what to do."""
    home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not candidate or not os.path.exists(candidate):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH"
        raise JavaMissingError(f"Java {MIN_JAVA}+ is required (Spark and the Kafka broker run on it): {where}")
    out = subprocess.run([candidate, "-version"], capture_output=True, text=True)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise JavaMissingError(f"cannot tell the version of {candidate}: {(out.stderr or out.stdout).strip()[:200]}")
    major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)
    if major < MIN_JAVA:
        raise JavaMissingError(f"Java {MIN_JAVA}+ is required, {candidate} is Java {major}")
    return candidate
