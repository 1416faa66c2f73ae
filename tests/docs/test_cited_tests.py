"""A doc that says "this test shows it" names a test that exists: the file, and the function
when it names one (``tests/x.py::test_y``). security.md's port table rests on them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CITED = re.compile(r"`(tests/[A-Za-z0-9_/]+\.py)(?:::([A-Za-z0-9_]+))?`")


def cited(page: Path) -> list[tuple[str, str | None]]:
    return [(f, t or None) for f, t in _CITED.findall(page.read_text())]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_cited_test_exists(page: Path) -> None:
    missing = []
    for file, test in cited(page):
        path = ROOT / file
        if not path.exists():
            missing.append(file)
        elif test and not re.search(rf"^(async )?def {test}\(", path.read_text(), re.M):
            missing.append(f"{file}::{test}")
    assert missing == []


def test_the_port_table_cites_a_test_in_every_row() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    table = text.split("## Every port, who may reach it", 1)[1].split("\n\n", 2)[2]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 10
    assert all(_CITED.search(row.rsplit("|", 2)[1]) for row in rows[1:]), "a row without a test"
