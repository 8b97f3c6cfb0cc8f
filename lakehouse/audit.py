"""An outside audit of what finlake wrote: every Delta table read with delta-rs (not Spark),
every other file read as bytes, searched for card numbers in the clear.

Independent of the JVM tokenizer on purpose: it reads what landed on disk with another reader
and its own rules, so a bug in the tokenizer cannot hide itself. The text is read as UTF-8 (an
undecodable byte stands for itself), JSON escapes resolved (``\\u0034``, ``\\u0020``, surrogate
pairs, ``\\t``); then any Unicode decimal digit counts as a digit, and groups of digits joined by
one to three separators (white space, control and format characters, dashes) form a run.
Without ``known``: a run laid out as cards are printed (one group, fours with a shorter last
group, 4-6-5 / 4-6-4, or single digits), 13-19 digits from a payment network's first digits
(2-6; 1 at 15 digits; 81, 82), Luhn-valid, not the fraction, integer part,
mantissa or exponent of a decimal number, not inside a lowercase-hex run of 64 or more (our tokens).
"""
from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|\\([ntrbf\"\\/])")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\", "/": "/"}
# our tokens, also where a card number glued to a word was replaced ("card<token>y"): any
# lowercase-hex run of 64 or more characters is read as token material, never as digits
_TOKEN = re.compile(r"[0-9a-f]{64,}")
# a decimal number's fraction, integer part or exponent: never a card number
_DECIMAL = re.compile(r"(?<![A-Za-z])\.\d+|\d+(?=\.\d)|\d+(?=[eE][-+]?\d)|(?<=[\d.][eE])[-+]?\d+|(?<=[\d.][eE][-+])\d+")


@lru_cache(maxsize=1)
def _run_pattern() -> re.Pattern:
    seps = [cp for cp in range(sys.maxunicode + 1)
            if (cp in (0x20, 0x2D, 0x2212) or unicodedata.category(chr(cp)) in ("Cc", "Cf", "Pd", "Zs", "Zl", "Zp"))
            and not 0xD800 <= cp <= 0xDFFF]
    ranges, lo = [], seps[0]
    for prev, cp in zip(seps, seps[1:] + [None]):
        if cp != prev + 1:
            ranges.append(re.escape(chr(lo)) + ("-" + re.escape(chr(prev)) if prev != lo else ""))
            lo = cp
    sep = "[" + "".join(ranges) + "]"
    return re.compile(rf"\d(?:\d|{sep}{{1,3}}(?=\d))*"), re.compile(rf"{sep}{{1,3}}")


def _unescape(m: re.Match) -> str:
    if m.group(3):
        return _SIMPLE[m.group(3)]
    hi = int(m.group(1), 16)
    if m.group(2):
        lo = int(m.group(2), 16)
        if 0xD800 <= hi <= 0xDBFF:
            return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        return chr(hi) + chr(lo)
    return chr(hi)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def _issued(digits: str) -> bool:
    """ISO/IEC 7812 first digits of the payment networks (epoch times and most ids are not)."""
    return "2" <= digits[0] <= "6" or (digits[0] == "1" and len(digits) == 15) or digits[:2] in ("81", "82")


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


def _laid_out(groups: list[int]) -> bool:
    return len(groups) == 1 or all(g == 1 for g in groups) \
        or (groups[:-1] == [4] * (len(groups) - 1) and 1 <= groups[-1] <= 4) \
        or (len(groups) == 3 and groups[:2] == [4, 6] and groups[2] in (4, 5))


def clear_pans(data: bytes | str | None, known: set[str] | None = None) -> list[str]:
    """Card numbers readable in ``data``: any of ``known`` (anywhere in a digit run), or with
    ``known`` None any run that reads as a card number (module docstring)."""
    if data is None:
        return []
    raw = bytes(data) if not isinstance(data, str) else data.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "surrogateescape")
    text = _TOKEN.sub("#", _ESCAPE.sub(_unescape, text))
    run, sep = _run_pattern()
    found = []
    if known is None:
        text = _DECIMAL.sub("#", text)
    for m in run.finditer(text):
        digits = _ascii_digits(m.group(0))
        if known is None:
            groups = [len(_ascii_digits(g)) for g in sep.split(m.group(0))]
            if _laid_out(groups) and 13 <= len(digits) <= 19 and _issued(digits) and _luhn(digits):
                found.append(digits)
            continue
        for size in range(13, min(19, len(digits)) + 1):
            for start in range(0, len(digits) - size + 1):
                window = digits[start:start + size]
                if window in known:
                    found.append(window)
    return found


def delta_tables(root: Path) -> list[Path]:
    """Every Delta table folder under ``root``."""
    return sorted(p.parent for p in Path(root).rglob("_delta_log") if p.is_dir())


def scan_tables(root: Path, known: set[str] | None = None) -> dict[str, dict]:
    """Read every Delta table under ``root`` with delta-rs; per table its rows and the clear
    card numbers found in any string or binary column (raises if delta-rs cannot read one)."""
    from deltalake import DeltaTable  # here, not at the top: an optional (dev) extra, needed by this function only

    out = {}
    for path in delta_tables(root):
        table = DeltaTable(str(path)).to_pyarrow_table()
        hits = []
        for name in table.column_names:
            col = table.column(name)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_binary(col.type) \
                    or pa.types.is_large_binary(col.type) or pa.types.is_list(col.type) or pa.types.is_map(col.type):
                for value in col.to_pylist():
                    text = repr(value) if isinstance(value, (list, dict)) else value
                    hits += [(name, p) for p in clear_pans(text, known)]
        out[str(path.relative_to(root))] = {"rows": table.num_rows, "clear_pans": hits}
    return out


def _parquet_text(path: Path) -> str:
    """Every value of a Parquet file as text (a Delta checkpoint keeps file statistics there)."""
    return repr(pq.read_table(path).to_pylist())


def scan_files(root: Path, known: set[str] | None = None, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every file under ``root`` except table data (Parquet outside ``_delta_log``, read through
    ``scan_tables``) and the ``skip`` folders, read as bytes, Delta checkpoints read as Parquet:
    the files that hold a clear card number."""
    out = {}
    for path in Path(root).rglob("*"):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(part in skip for part in parts):
            continue
        if path.suffix == ".parquet" and "_delta_log" not in parts:
            continue
        try:
            hits = clear_pans(_parquet_text(path) if path.suffix == ".parquet" else path.read_bytes(), known)
        except OSError:
            continue
        if hits:
            out[str(path.relative_to(root))] = hits[:5]
    return out
