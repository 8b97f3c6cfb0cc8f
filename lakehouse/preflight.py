"""What finlake needs before it installs anything: a supported Python and a JDK 17+ (java and
javac, not macOS's stub). Standard library only, run by ``make install`` with the interpreter
it is about to use (``python -m lakehouse.preflight``): one ``finlake: error:`` line naming the
command that fixes it, exit 2; nothing printed when all is well.

The Kafka broker's and the SQL server's ports are checked where they start (one line naming
what holds the port and how to find it), since a running finlake broker is not a conflict."""
from __future__ import annotations

import sys

from lakehouse.java import JavaMissingError, java_executable, javac_executable

SUPPORTED = ((3, 11), (3, 13))   # the oldest and newest Python finlake supports
INSTALL_PYTHON = ("install one: Debian/Ubuntu `sudo apt-get install python3.13 python3.13-venv` (or the deadsnakes PPA); "
                  "macOS `brew install python@3.13`; then `make install PYTHON=python3.13`")


def problems(version: tuple[int, int] = sys.version_info[:2]) -> list[str]:
    """Every missing prerequisite, each as one line."""
    out = []
    lo, hi = SUPPORTED
    if not lo <= tuple(version) <= hi:
        out.append(f"Python {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]} is required, {sys.executable} is {version[0]}.{version[1]}: {INSTALL_PYTHON}")
    for check in (java_executable, javac_executable):
        try:
            check()
        except JavaMissingError as e:
            out.append(str(e))
            break
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(f"finlake: error: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main())
