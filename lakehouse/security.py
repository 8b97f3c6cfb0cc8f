"""Secrets from the environment, and the keyed PAN token in Python.

A PAN is replaced by HMAC-SHA256(key, digits) plus its last four digits before anything is
written. Bronze does it in the JVM (``lakehouse/jvm``: the key is handed to the JVM at run time
and never enters a query plan); ``tokenize_event`` does the same in Python for the producer's
files mode, and a test proves the two agree. ``hmac_sha256_col`` builds the HMAC from Spark
SQL functions with the key as plan literals: only for public constants (``jobs/selfcheck.py``),
never for the PAN key.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path

from pyspark.sql import functions as F

from lakehouse.config import Config, ConfigError

PAN_KEY_ENV = "FINLAKE_PAN_HMAC_KEY"
_BLOCK = 64  # SHA-256 block size in bytes


def pan_hmac_key(cfg: Config) -> bytes:
    """The PAN tokenization key: from FINLAKE_PAN_HMAC_KEY, or (laptop profiles only) a random
    key kept in a git-ignored file under FINLAKE_HOME so tokens stay stable across runs."""
    value = str(cfg["security.pan_hmac_key"] or "")
    if value:
        return value.encode()
    policy = str(cfg["security.pan_hmac_key_missing"])
    if policy == "require":
        raise ConfigError(f"{PAN_KEY_ENV} is not set; environment '{cfg.env}' requires the PAN tokenization key from the environment")
    if policy != "generate":
        raise ConfigError(f"security.pan_hmac_key_missing must be 'require' or 'generate', got '{policy}'")
    path = cfg.home / "secrets" / "pan_hmac_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return Path(path).read_text().strip().encode()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(key XOR ipad, key XOR opad) as RFC 2104 defines them for SHA-256."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256_col(key: bytes, message):
    """HMAC-SHA256 of a string column as lowercase hex, computed by Spark SQL functions."""
    ipad, opad = hmac_pads(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.encode(message, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)


def tokenize_pan_value(key: bytes, pan: str) -> tuple[str, str]:
    """(token, last four) of a PAN in Python; equal to what ``hmac_sha256_col`` gives in Spark."""
    # every script's decimal digits, as ASCII: the JVM tokenizer reads them the same way
    digits = "".join(str(unicodedata.decimal(ch)) for ch in str(pan) if ch.isdecimal())
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest(), digits[-4:]


def tokenize_event(key: bytes, event: dict) -> dict:
    """An event with ``card_pan`` replaced by ``card_token`` and ``card_last4`` (others unchanged)."""
    if "card_pan" not in event:
        return event
    out = {}
    for name, value in event.items():
        if name == "card_pan":
            token, last4 = tokenize_pan_value(key, value) if value is not None else (None, None)
            out["card_token"], out["card_last4"] = token, last4
        else:
            out[name] = value
    return out
