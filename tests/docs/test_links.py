"""Links between the docs (and from the README) lead somewhere: the file exists and, for
``file.md#anchor``, the file has that heading (GitHub's anchor rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in _LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {linked.name} has no #{anchor}"


def test_runbook_urls_point_at_this_repository_layout() -> None:
    rules = (ROOT / "charts/atlas/files/prometheus-rules.yaml").read_text()
    for url in re.findall(r"runbook_url: (\S+)", rules):
        path, _, anchor = url.split("/blob/main/", 1)[1].partition("#")
        assert anchor in anchors(ROOT / path), url
