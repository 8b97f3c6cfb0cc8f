"""Imports follow the flow (ARCHITECTURE.md, "The flow"): every import of finlake's own modules,
at module top or inside a function, points down the flow and never back."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("lakehouse", "ml", "serving", "stats", "jobs", "bench", "notebooks", "tests")
# What each layer may import of ours (a module's layer: lakehouse.schemas, or its top package).
ALLOWED = {
    "lakehouse.schemas": {"lakehouse.schemas"},
    "lakehouse": {"lakehouse", "lakehouse.schemas"},
    "stats": {"stats"},
    "ml": {"lakehouse", "lakehouse.schemas", "stats", "ml"},
    "serving": {"lakehouse", "lakehouse.schemas", "stats", "ml", "serving"},
    "jobs": {"lakehouse", "lakehouse.schemas", "stats", "ml", "serving", "jobs"},
}


def _layer(dotted: str) -> str:
    return "lakehouse.schemas" if dotted.startswith("lakehouse.schemas") else dotted.split(".")[0]


def own_imports(source: str) -> list[str]:
    """Every absolute import of finlake's own modules in ``source`` (nested ones included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [name for name in found if name.split(".")[0] in OURS]


def against_the_flow(root: Path = ROOT) -> list[str]:
    """``module -> imported`` for each import a layer may not make."""
    bad = []
    for layer in ("lakehouse", "stats", "ml", "serving", "jobs"):
        for path in sorted((root / layer).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for name in own_imports(path.read_text()):
                if _layer(name) not in ALLOWED[_layer(module)]:
                    bad.append(f"{module} -> {name}")
    return bad


def test_every_import_points_down_the_flow():
    assert against_the_flow() == []


def test_an_import_against_the_flow_is_found_even_inside_a_function(tmp_path):
    (tmp_path / "lakehouse" / "schemas").mkdir(parents=True)
    (tmp_path / "lakehouse" / "schemas" / "t.py").write_text("from lakehouse.config import Config\n")
    (tmp_path / "lakehouse" / "a.py").write_text("import os\nfrom lakehouse import silver\n\ndef f():\n    from ml.scoring import x\n")
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "b.py").write_text("import serving.decision\nfrom stats import pca\n")
    for layer in ("stats", "serving", "jobs"):
        (tmp_path / layer).mkdir()
    assert against_the_flow(tmp_path) == ["lakehouse.a -> ml.scoring", "lakehouse.schemas.t -> lakehouse.config",
                                          "ml.b -> serving.decision"]
