"""An outside audit of what finlake wrote: every Delta table read with delta-rs (not Spark),
every other file read as bytes, searched for card numbers in the clear.

Independent of the JVM tokenizer on purpose: it reads what landed on disk with another reader
and its own rules (digit runs of 13-19 after dropping spaces, dashes and JSON digit escapes,
Luhn-valid, not inside one of our 64-hex tokens), so a bug in the tokenizer cannot hide itself.
"""
from __future__ import annotations

import re
from pathlib import Path

_ESCAPED_DIGIT = re.compile(rb"\\u003([0-9])")
_TOKEN = re.compile(rb"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])")
_RUN = re.compile(rb"[0-9](?:[0-9]|[ -](?=[0-9]))*")


def _luhn(digits: bytes) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ch - 48
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def clear_pans(data: bytes | str | None, known: set[str] | None = None) -> list[str]:
    """Card numbers readable in ``data``: any of ``known`` (anywhere in a digit run), or with
    ``known`` None any Luhn-valid 13-19 digit window of a run."""
    if data is None:
        return []
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = _TOKEN.sub(b"#", _ESCAPED_DIGIT.sub(rb"\1", raw))
    found = []
    for m in _RUN.finditer(raw):
        digits = m.group(0).replace(b" ", b"").replace(b"-", b"")
        if known is None:
            groups = [len(x) for x in re.split(rb"[ -]", m.group(0))]
            laid_out = len(groups) == 1 or groups[:-1] == [4] * (len(groups) - 1) and 1 <= groups[-1] <= 4 \
                or (len(groups) == 3 and groups[:2] == [4, 6] and groups[2] in (4, 5))
            if laid_out and 13 <= len(digits) <= 19 and _luhn(digits):
                found.append(digits.decode())
            continue
        for size in range(13, min(19, len(digits)) + 1):
            for start in range(0, len(digits) - size + 1):
                window = digits[start:start + size].decode()
                if window in known:
                    found.append(window)
    return found


def delta_tables(root: Path) -> list[Path]:
    """Every Delta table folder under ``root``."""
    return sorted(p.parent for p in Path(root).rglob("_delta_log") if p.is_dir())


def scan_tables(root: Path, known: set[str] | None = None) -> dict[str, dict]:
    """Read every Delta table under ``root`` with delta-rs; per table its rows and the clear
    card numbers found in any string or binary column (raises if delta-rs cannot read one)."""
    import pyarrow as pa
    from deltalake import DeltaTable

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


def scan_files(root: Path, known: set[str] | None = None, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every file under ``root`` except Parquet data (read through ``scan_tables``) and the
    ``skip`` folders, read as bytes: the files that hold a clear card number."""
    out = {}
    for path in Path(root).rglob("*"):
        if not path.is_file() or path.suffix == ".parquet" or any(part in skip for part in path.relative_to(root).parts):
            continue
        try:
            hits = clear_pans(path.read_bytes(), known)
        except OSError:
            continue
        if hits:
            out[str(path.relative_to(root))] = hits[:5]
    return out
