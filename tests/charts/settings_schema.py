"""Writes atlas/config.py's settings schema into charts/atlas/values.schema.json (under
``settings``); ``tests/charts/test_settings_schema.py`` fails while the two differ.

    .venv/bin/python -m tests.charts.settings_schema
"""

from __future__ import annotations

import json
from typing import Any

from atlas.config import settings_schema
from tests.conftest import ROOT

SCHEMA = ROOT / "charts" / "atlas" / "values.schema.json"


def chart_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA.read_text()))


def write() -> None:
    schema = chart_schema()
    schema["properties"]["settings"] = settings_schema()
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    write()
