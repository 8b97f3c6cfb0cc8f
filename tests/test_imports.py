"""Imports follow the flow (ARCHITECTURE.md, "The flow"): every import of finlake's own modules,
at module top or inside a function, points down the flow and never back."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("lakehouse", "ml", "serving", "stats", "reports", "jobs", "bench", "notebooks", "tests")
# What each layer may import of ours (a module's layer: lakehouse.schemas, or its top package).
ALLOWED = {
    "lakehouse.schemas": {"lakehouse.schemas"},
    "lakehouse": {"lakehouse", "lakehouse.schemas"},
    "stats": {"stats"},
    "ml": {"lakehouse", "lakehouse.schemas", "stats", "ml"},
    "serving": {"lakehouse", "lakehouse.schemas", "stats", "ml", "serving"},
    "reports": {"lakehouse", "lakehouse.schemas", "stats", "ml", "serving", "reports"},
    "jobs": {"lakehouse", "lakehouse.schemas", "stats", "ml", "serving", "reports", "jobs"},
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
    for layer in ("lakehouse", "stats", "ml", "serving", "reports", "jobs"):
        for path in sorted((root / layer).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for name in own_imports(path.read_text()):
                if _layer(name) not in ALLOWED[_layer(module)]:
                    bad.append(f"{module} -> {name}")
    return bad


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from package import module`` counts the module)."""
    paths = {}
    for layer in ("lakehouse", "stats", "ml", "serving", "reports", "jobs"):
        for path in (root / layer).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def module_of(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {module_of(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {module_of(node.module)} | {module_of(f"{node.module}.{a.name}") for a in node.names}
        graph[module] = found - {None, module}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty when there is none)."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return []


def test_no_module_imports_itself_through_others():
    assert import_cycle(import_graph()) == []


def test_an_import_cycle_is_found():
    assert sorted(set(import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == ["a", "b", "c"]


def test_every_import_points_down_the_flow():
    assert against_the_flow() == []


def test_an_import_against_the_flow_is_found_even_inside_a_function(tmp_path):
    (tmp_path / "lakehouse" / "schemas").mkdir(parents=True)
    (tmp_path / "lakehouse" / "schemas" / "t.py").write_text("from lakehouse.config import Config\n")
    (tmp_path / "lakehouse" / "a.py").write_text("import os\nfrom lakehouse import silver\n\ndef f():\n    from ml.scoring import x\n")
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "b.py").write_text("import serving.decision\nfrom stats import pca\n")
    for layer in ("stats", "serving", "reports", "jobs"):
        (tmp_path / layer).mkdir()
    assert against_the_flow(tmp_path) == ["lakehouse.a -> ml.scoring", "lakehouse.schemas.t -> lakehouse.config",
                                          "ml.b -> serving.decision"]
