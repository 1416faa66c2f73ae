"""Each package's README (the faces' skeleton: Description, Configuration, Metrics, Examples)
names files that exist: a README that cites a moved module sends a reader nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

READMES = sorted(
    p.parent / "README.md" for p in ROOT.glob("*/__init__.py") if (p.parent / "README.md").exists()
)
SECTIONS = ["## Description", "## Configuration", "## Metrics", "## Examples"]
_FILE = re.compile(r"`([A-Za-z0-9_./-]+(?:\.(?:py|md|yaml|sh|json)|/))`")


def named_files(readme: Path) -> list[str]:
    return sorted(set(_FILE.findall(readme.read_text())))


def test_every_package_has_one() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= {r.parent.name for r in READMES}


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_the_sections_are_there_in_order(readme: Path) -> None:
    text = readme.read_text()
    found = [text.find(s) for s in SECTIONS]
    assert -1 not in found and found == sorted(found), readme


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_the_files_it_names_exist(readme: Path) -> None:
    """Relative to the package, or to the checkout (``docs/reference.md``)."""
    missing = [
        name
        for name in named_files(readme)
        if not (readme.parent / name).exists() and not (ROOT / name).exists()
    ]
    assert missing == [], f"{readme.relative_to(ROOT)} names files that do not exist"


def test_the_check_finds_a_moved_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("see `builders/wire.py` and `config.py`")
    assert named_files(readme) == ["builders/wire.py", "config.py"]
