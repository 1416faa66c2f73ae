"""The layers import-linter enforces (.importlinter) name every module: a module added to
``atlas/`` and left out of the contract would sit in no layer, and nothing would stop it from
importing the daemon. ``lint-imports`` itself runs in ``.ci/run``; this test runs it too, so
that a broken contract fails the suite, not only CI."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CONTRACT = "importlinter:contract:layers"


def layers() -> list[list[str]]:
    """The contract's layers, top first, each as the modules it names."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    lines = parser[CONTRACT]["layers"].strip().splitlines()
    return [[m.strip() for m in re.split(r"[|:]", line)] for line in lines]


def modules_of_atlas() -> set[str]:
    """``atlas``'s modules and subpackages, as the contract names them."""
    found: set[str] = set()
    for path in (ROOT / "atlas").iterdir():
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            found.add(f"atlas.{path.stem}")
    return found


def test_every_module_of_atlas_is_in_exactly_one_layer() -> None:
    named = [m for layer in layers() for m in layer]
    twice = sorted({m for m in named if named.count(m) > 1})
    assert not twice, f"named in two layers: {twice}"
    atlas = {m for m in named if m.startswith("atlas.")}
    assert modules_of_atlas() - atlas == set(), "modules in no layer of .importlinter"
    assert atlas - modules_of_atlas() == set(), "layers name modules that do not exist"


def test_the_other_packages_are_layers_too() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    roots = parser["importlinter"]["root_packages"].split()
    named = {m for layer in layers() for m in layer}
    assert set(roots) - {"atlas"} <= named


def test_the_contract_is_kept() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    run = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "1 kept, 0 broken" in run.stdout


def import_cycles() -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's strongly
    connected components over grimp's graph, which counts imports under TYPE_CHECKING too)."""
    import grimp

    graph = grimp.build_graph("atlas", "watchers", "xds_server", "dns_server")
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            if group:
                cycles.append(sorted([module, *group]))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_around_a_loop() -> None:
    assert import_cycles() == []


def test_the_benchmarks_stand_on_their_own() -> None:
    """``bench/`` imports the package and its own helpers, never the tests, and runs as
    ``python -m bench.<name>`` without editing ``sys.path``."""
    import ast

    for path in sorted((ROOT / "bench").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "tests", f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "tests", f"{path.name} imports tests"
            if isinstance(node, ast.Attribute) and node.attr == "path":
                value = node.value
                assert not (isinstance(value, ast.Name) and value.id == "sys"), (
                    f"{path.name} uses sys.path"
                )
