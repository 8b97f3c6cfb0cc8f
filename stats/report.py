"""Report output: figures as data URIs, a self-contained HTML page, the Table 4 Markdown and NaN-free JSON."""
from __future__ import annotations

import base64
import html
import io
import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from . import StatsInputError
from ._util import json_safe

# use case -> (PCA components, cumulative variance %, median VIF, paired t-test p, ANOVA F) as published.
STUDY_TABLE4 = {
    "fraud": (8, 91.4, 2.1, "<0.001", 11.7),
    "trading": (5, 88.3, 1.7, "0.003", 9.4),
    "loan_pd": (6, 89.6, 2.3, "0.015", 7.8),
}
MISSING = "–"
TABLE4_HEADER = ("use case", "PCA components retained (study / ours)", "cumulative variance % (study / ours)",
                 "median VIF (study / ours)", "paired t-test p vs baseline (study / ours)",
                 "ANOVA F over the search (study / ours)")
TABLE4_KEYS = ("n_components", "cumulative_pct", "median_vif", "paired_p", "anova_f")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #4c72b0;padding-bottom:.2em}h2{margin-top:2em;color:#2f4f7f}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#eef2f8;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}img{max-width:100%;height:auto}p.empty{color:#888;font-style:italic}
"""


def figure_to_data_uri(fig: Figure) -> str:
    """Return fig as a PNG data URI and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    if getattr(fig.canvas, "manager", None) is not None:
        # Only pyplot-managed figures hold a global reference; closing one needs pyplot, which is then loaded.
        import matplotlib.pyplot as plt

        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(title: str, sections: list[dict]) -> str:
    """Return one self-contained HTML page (inline CSS, data-URI images, escaped text) of the sections."""
    body = "\n".join(_section_html(s, i) for i, s in enumerate(sections))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n")


def _section_html(section: dict, index: int) -> str:
    """Return one <section>: heading, text paragraphs, tables, then figures."""
    if not isinstance(section, Mapping) or not isinstance(section.get("heading"), str):
        raise StatsInputError(f"render_html: section {index} needs a 'heading' string")
    heading = section["heading"]
    parts = [f"<section>\n<h2>{html.escape(heading)}</h2>"]
    text = section.get("text")
    if text:
        parts += [f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip()]
    parts += [_table_html(t) for t in section.get("tables") or []]
    for j, fig in enumerate(section.get("figures") or []):
        uri = figure_to_data_uri(fig) if isinstance(fig, Figure) else fig
        if not isinstance(uri, str) or not uri.startswith("data:image/"):
            raise StatsInputError(f"render_html: figure {j} of section '{heading}' is not a data:image URI")
        parts.append(f'<figure><img src="{html.escape(uri)}" alt="{html.escape(heading)}, figure {j + 1}"></figure>')
    parts.append("</section>")
    return "\n".join(parts)


def _table_html(table) -> str:
    """Return a DataFrame or list of dicts as an HTML table; a non-default index becomes the first column."""
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    if frame.empty:
        return '<p class="empty">(empty table)</p>'
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "\n".join("<tr>" + "".join(_cell_html(v) for v in row) + "</tr>"
                     for row in frame.itertuples(index=False, name=None))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def _cell_html(value) -> str:
    """Return one <td>, numbers right-aligned and compactly formatted, missing values as a dash."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f'<td class="num">{html.escape(_number(value))}</td>'
    if value is None or value is pd.NA or value is pd.NaT:
        return f"<td>{MISSING}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _number(value: float) -> str:
    """Return a number as compact text: NaN as a dash, inf as the infinity sign."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def format_p(p) -> str:
    """Return a p-value as '<0.001' below 0.001, else with 3 decimals; a dash when missing; strings unchanged."""
    if isinstance(p, str):
        return p
    if _missing(p):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fixed(value, decimals: int) -> str:
    """Return value with the given decimals, or a dash when missing."""
    if _missing(value):
        return MISSING
    value = float(value)
    return "∞" if math.isinf(value) else f"{value:.{decimals}f}"


def _count(value) -> str:
    """Return an integer count as text, or a dash when missing."""
    if _missing(value):
        return MISSING
    return str(int(value))


def _missing(value) -> bool:
    """Return whether value is None or a NaN number."""
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


_FORMATS = (_count, lambda v: _fixed(v, 1), lambda v: _fixed(v, 1), format_p, lambda v: _fixed(v, 1))


def table4_markdown(rows: list[dict]) -> str:
    """Return the Table 4 comparison as Markdown, each cell 'study / ours', missing values as a dash."""
    lines = ["| " + " | ".join(TABLE4_HEADER) + " |", "|" + "|".join(["---"] + [":---:"] * 5) + "|"]
    for row in rows:
        use_case = row.get("use_case")
        if use_case not in STUDY_TABLE4:
            raise StatsInputError(f"table4_markdown: unknown use_case {use_case!r}; expected one of {sorted(STUDY_TABLE4)}")
        ours = row["ours"] if isinstance(row.get("ours"), Mapping) else row
        cells = [f"{fmt(study)} / {fmt(ours.get(key))}"
                 for fmt, study, key in zip(_FORMATS, STUDY_TABLE4[use_case], TABLE4_KEYS)]
        lines.append("| " + " | ".join([use_case, *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_json(obj, path) -> Path:
    """Write obj as indented JSON with NaN/inf replaced by None, creating parent folders; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
