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
