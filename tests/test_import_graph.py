"""The project's own modules import each other without a circle, lazy imports inside functions
included, and `assets/` and `data_checks/` share code only through `resources/`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cmmm_pipeline", "assets", "data_checks", "resources")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module an import statement names (anywhere in the file, at any depth)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        # `from package import module` imports the submodule; `from module import name` the module.
        return [prefix, *(f"{prefix}.{a.name}" for a in node.names)]
    return []


def import_graph() -> nx.DiGraph:
    """Module → the project modules it imports (a name resolves to its longest known module)."""
    modules = project_modules()
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for name in imported(node, module, path.name == "__init__.py"):
                target = name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    g.add_edge(module, target)
    return g


def test_the_graph_sees_lazy_imports() -> None:
    g = import_graph()
    assert len(g) > 40
    assert g.has_edge("resources.settings", "cmmm_pipeline.core.loading")
    # run.py imports the Definitions inside run_pipeline (a lazy import): it counts
    assert g.has_edge("cmmm_pipeline.run", "cmmm_pipeline.definitions")
    assert g.has_edge("cmmm_pipeline.definitions", "resources.io_manager")


def test_no_module_imports_another_in_a_circle() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], f"import circles: {cycles[:5]}"


def test_assets_and_checks_share_code_only_through_resources() -> None:
    g = import_graph()
    for a, b in g.edges:
        assert not (a.startswith("data_checks") and b.startswith("assets")), (a, b)
        assert not (a.startswith("assets") and b.startswith("data_checks")), (a, b)
        # the domain library never reaches up into the Dagster layer (definitions/cli/run are its composition root)
        if a.startswith("cmmm_pipeline") and a not in ("cmmm_pipeline.definitions", "cmmm_pipeline.cli",
                                                         "cmmm_pipeline.run"):
            assert not b.startswith(("assets", "data_checks", "resources")), (a, b)
        assert not (a.startswith("resources") and b.startswith(("assets", "data_checks"))), (a, b)


def test_the_code_location_loads_without_the_heavy_libraries() -> None:
    """Loading the code location (and so `dagster dev` and every run worker) must not pay for the
    data and statistics libraries: they are imported inside the steps that use them."""
    heavy = ("dowhy", "great_expectations", "statsmodels", "matplotlib", "scipy", "jinja2", "pandas", "numpy",
             "pyarrow", "sklearn")
    probe = ("import sys, cmmm_pipeline.definitions as d; "
             f"print(repr(sorted(m for m in {heavy!r} if m in sys.modules)), "
             "len(d.defs.resolve_asset_graph().get_all_asset_keys()))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    loaded, assets = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert loaded == "[]"
    assert int(assets) >= 6  # the location really loaded: raw_spend .. budget_plan
