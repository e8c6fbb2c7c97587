"""The layers stay apart: the engine (gan_core) and the job backend (gan_core.live) never load
Streamlit or plotly; only the Streamlit layer (gan_core.app) and the pages do (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from gan_test_utils import REPO

PACKAGE = REPO / "gan_core"
UI_LIBRARIES = ("streamlit", "plotly")


def engine_modules() -> list[str]:
    """Every module of gan_core outside the Streamlit layer, as dotted names."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[:2] == ("gan_core", "app") or parts[-1] == "__main__":  # __main__ runs the CLI
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module a file imports, anywhere in it (inside functions too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            roots |= {a.value.split(".")[0] for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return roots


def test_no_engine_or_backend_file_imports_streamlit_or_plotly():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "app":
            continue
        found = imported_roots(path) & set(UI_LIBRARIES)
        if found:
            offenders[str(path.relative_to(REPO))] = sorted(found)
    assert not offenders, f"only gan_core/app may import streamlit or plotly: {offenders}"


def test_importing_every_engine_and_backend_module_loads_neither():
    modules = engine_modules()
    assert "gan_core.live.manager" in modules and "gan_core.trainer" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {UI_LIBRARIES!r})\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_plotly_lives_in_the_streamlit_layer_only():
    outside = [str(p.relative_to(REPO)) for p in [REPO / "playground.py", *sorted((REPO / "pages").glob("*.py"))]
               if "plotly" in imported_roots(p)]
    assert not outside, f"pages draw charts through gan_core.app.charts, not plotly directly: {outside}"


def test_pages_are_thin():
    """Pages hold layout, not logic: each stays small and imports no torch training code."""
    for page in sorted((REPO / "pages").glob("*.py")):
        lines = page.read_text().count("\n")
        assert lines < 200, f"{page.name} has {lines} lines: move its logic into gan_core"
        assert "gan_core.trainer" not in page.read_text(), f"{page.name} builds a trainer: use gan_core.generator"
