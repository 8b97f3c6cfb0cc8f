"""Layered configuration: ``conf/base`` plus one ``conf/<env>`` folder, chosen by ``--env`` or
``FINLAKE_ENV``.

Every file in an environment folder overrides values of the base files only: a key the base
does not define is rejected with one line naming it (and the closest real key), so a typo
never silently falls back to a default. Values may reference the environment with
``${env:NAME}`` / ``${env:NAME,default}`` and the state folder with ``${home}``.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ENVIRONMENTS = ("local", "gpu", "cluster", "test")
DEFAULT_ENV = "local"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF_DIR = PROJECT_ROOT / "conf"

# Mappings whose keys are free-form (Spark properties, topic names, table names): an
# environment may add keys to these without them existing in base.
OPEN_MAPPINGS = frozenset({"spark.conf", "spark.scheduler_pools", "kafka.topics", "tables"})

_REF = re.compile(r"\$\{(env:[A-Za-z_][A-Za-z0-9_]*(?:,[^{}]*(?:\{[^{}]*\}[^{}]*)*)?|home)\}")


class ConfigError(ValueError):
    """A configuration problem, worded as one line that names the key or file at fault."""


def default_home() -> Path:
    """FINLAKE_HOME, or ``.finlake/`` in the checkout."""
    return Path(os.environ.get("FINLAKE_HOME") or PROJECT_ROOT / ".finlake").resolve()


def _interpolate(value: Any, home: str, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, home, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, home, where) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match) -> str:
        ref = m.group(1)
        if ref == "home":
            return home
        name, sep, default = ref[4:].partition(",")
        if name in os.environ:
            return os.environ[name]
        if not sep:
            raise ConfigError(f"config key '{where}' needs environment variable {name}, which is not set")
        return _interpolate(default, home, where)

    # Repeat so that a default may itself hold a reference (e.g. ${env:X,${home}/y}).
    for _ in range(5):
        new = _REF.sub(repl, value)
        if new == value:
            break
        value = new
    return value


def _load_yaml_dir(folder: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" line {line + 1}" if line is not None else ""
            raise ConfigError(f"cannot parse {path}{at}: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level")
        out.append((path, data))
    return out


def _all_keys(tree: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, dict) and full not in OPEN_MAPPINGS:
            keys.extend(_all_keys(v, full + "."))
    return keys


def _under_open_mapping(prefix: str) -> bool:
    parts = prefix.rstrip(".").split(".") if prefix else []
    return any(".".join(parts[: i + 1]) in OPEN_MAPPINGS for i in range(len(parts)))


def _merge(base: dict, override: Mapping, source: Path, known: list[str], prefix: str = "") -> None:
    for key, value in override.items():
        full = f"{prefix}{key}"
        if key not in base:
            if _under_open_mapping(prefix):
                base[key] = copy.deepcopy(value)
                continue
            hint = difflib.get_close_matches(full, known, n=1)
            raise ConfigError(
                f"unknown config key '{full}' in {source}"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
            )
        current = base[key]
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value, source, known, full + ".")
        elif isinstance(current, dict) != isinstance(value, dict) or (
            current is not None and value is not None
            and isinstance(current, (list, dict)) != isinstance(value, (list, dict))
        ):
            raise ConfigError(
                f"config key '{full}' in {source} has the wrong shape: "
                f"base has {type(current).__name__}, got {type(value).__name__}"
            )
        else:
            base[key] = copy.deepcopy(value)


def _set_dotted(tree: dict, dotted: str, raw: str) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if here in OPEN_MAPPINGS:
            # The rest of the key is one free-form name (e.g. a Spark property).
            node = node.setdefault(part, {})
            node[".".join(parts[i + 1 :])] = yaml.safe_load(raw) if raw != "" else ""
            return
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown config key '{dotted}' given by --conf")
        node = node[part]
    if parts[-1] not in node:
        hint = difflib.get_close_matches(dotted, _all_keys(tree), n=1)
        raise ConfigError(
            f"unknown config key '{dotted}' given by --conf" + (f" (did you mean '{hint[0]}'?)" if hint else "")
        )
    node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""


@dataclass(frozen=True)
class Config:
    """Resolved configuration. Look values up by dotted key: ``cfg["kafka.bootstrap_servers"]``."""

    env: str
    home: Path
    data: Mapping[str, Any]
    sources: tuple[str, ...] = field(default=())
    conf_dir: Path = DEFAULT_CONF_DIR

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.data
        walked = []
        for part in dotted.split("."):
            walked.append(part)
            if not isinstance(node, Mapping) or part not in node:
                hint = difflib.get_close_matches(dotted, _all_keys(self.data), n=1)
                raise ConfigError(
                    f"missing config key '{dotted}' (env {self.env})"
                    + (f"; did you mean '{hint[0]}'?" if hint else "")
                )
            node = node[part]
        return copy.deepcopy(node)

    def get(self, dotted: str, default: Any = None) -> Any:
        try:
            return self[dotted]
        except ConfigError:
            return default

    def path(self, dotted: str) -> Path:
        """A configured filesystem path, as an absolute ``Path``."""
        return Path(str(self[dotted])).expanduser().resolve()

    @property
    def is_gpu(self) -> bool:
        return str(self["ml.xgboost.device"]).startswith("cuda")


def load_config(
    env: str | None = None,
    overrides: Iterable[str] = (),
    conf_dir: Path | str | None = None,
    home: Path | str | None = None,
) -> Config:
    """Load ``conf/base`` and ``conf/<env>``, apply ``key=value`` overrides, resolve references."""
    env = env or os.environ.get("FINLAKE_ENV") or DEFAULT_ENV
    conf_dir = Path(conf_dir or os.environ.get("FINLAKE_CONF_DIR") or DEFAULT_CONF_DIR)
    if not conf_dir.is_dir():
        raise ConfigError(f"configuration folder {conf_dir} not found; set FINLAKE_CONF_DIR to finlake's conf/ folder")
    env_dir = conf_dir / env
    if not env_dir.is_dir():
        known = sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "base")
        raise ConfigError(f"unknown environment '{env}': no folder {env_dir} (known: {', '.join(known)})")
    base_dir = conf_dir / "base"
    if not base_dir.is_dir():
        raise ConfigError(f"missing base configuration folder {base_dir}")

    merged: dict = {}
    sources = []
    for path, data in _load_yaml_dir(base_dir):
        for key, value in data.items():
            if key in merged:
                raise ConfigError(f"top-level key '{key}' is defined twice in {base_dir}")
            merged[key] = value
        sources.append(str(path))
    known = _all_keys(merged)
    for path, data in _load_yaml_dir(env_dir):
        _merge(merged, data, path, known)
        sources.append(str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf expects key=value, got '{item}'")
        _set_dotted(merged, key.strip(), raw.strip())

    home_path = Path(home).resolve() if home else default_home()
    resolved = {k: _interpolate(v, str(home_path), k) for k, v in merged.items()}
    return Config(env=env, home=home_path, data=resolved, sources=tuple(sources), conf_dir=conf_dir.resolve())
