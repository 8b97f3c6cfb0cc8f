"""The prerequisites ``make install`` checks before it installs anything: each missing one is
one line naming the command that fixes it (lakehouse/preflight.py, lakehouse/java.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakehouse import java, preflight
from tests.conftest import ROOT


def _jdk(tmp_path, java_script: str, javac: bool = True):
    """A JAVA_HOME whose bin/java is ``java_script`` (and a javac unless told otherwise)."""
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    for name, body in [("java", java_script)] + ([("javac", "exit 0")] if javac else []):
        path = home / "bin" / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    return home


@pytest.fixture
def java_home(monkeypatch):
    def use(home):
        monkeypatch.setenv("JAVA_HOME", str(home))
        java.java_executable.cache_clear()
    yield use
    java.java_executable.cache_clear()


JDK17 = 'echo \'openjdk version "17.0.15" 2025-04-15\' >&2'


def test_a_jdk_17_passes_and_nothing_is_said(tmp_path, java_home):
    java_home(_jdk(tmp_path, JDK17))
    assert preflight.problems((3, 13)) == []


@pytest.mark.parametrize("script, says", [
    # macOS's /usr/bin/java with no JDK installed answers with this, and exit 1.
    ("echo 'The operation couldn\u2019t be completed. Unable to locate a Java Runtime.' >&2; exit 1", "macOS's stub with no JDK behind it"),
    ('echo \'java version "1.8.0_392"\' >&2', "is Java 8"),
    ('echo \'openjdk version "11.0.2" 2019-01-15\' >&2', "is Java 11"),
    ("echo 'Error: could not find libjava.so' >&2; exit 1", "cannot tell the version"),
])
def test_a_java_that_is_no_jdk_17_is_one_line_naming_the_install_commands(tmp_path, java_home, script, says):
    java_home(_jdk(tmp_path, script))
    found = preflight.problems((3, 13))
    assert len(found) == 1 and says in found[0], found
    assert "apt-get install openjdk-17-jdk-headless" in found[0] and "brew install openjdk@17" in found[0]


def test_a_jre_without_javac_is_named(tmp_path, java_home):
    java_home(_jdk(tmp_path, JDK17, javac=False))
    found = preflight.problems((3, 12))
    assert len(found) == 1 and "has no bin/javac" in found[0], found


@pytest.mark.parametrize("version, ok", [((3, 10), False), ((3, 11), True), ((3, 12), True), ((3, 13), True), ((3, 14), False)])
def test_python_3_11_to_3_13_are_supported(tmp_path, java_home, version, ok):
    java_home(_jdk(tmp_path, JDK17))
    found = preflight.problems(version)
    assert (found == []) == ok, found
    if not ok:
        assert "Python 3.11 to 3.13 is required" in found[0] and "brew install python@3.13" in found[0]


def test_the_module_runs_on_the_standard_library_alone_and_fails_in_one_line(tmp_path):
    """``make install`` runs it before the environment exists: -S -I (no site-packages)."""
    env = dict(os.environ, JAVA_HOME=str(tmp_path / "nojava"))
    out = subprocess.run([sys.executable, "-S", "-m", "lakehouse.preflight"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finlake: error: Java 17+ is required") and "has no bin/java" in lines[0], lines
