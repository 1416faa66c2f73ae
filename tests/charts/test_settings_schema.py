"""The atlas chart refuses a bad ``settings`` value at install time, with the schema Atlas's
own loader implies: a typo inside ``settings`` used to pass the chart and surface only as a
CrashLoop."""

from __future__ import annotations

from typing import Any

import pytest

from atlas.config import settings_schema
from tests.charts.render import objects, render
from tests.charts.settings_schema import chart_schema


def test_the_chart_carries_atlas_s_own_settings_schema() -> None:
    assert chart_schema()["properties"]["settings"] == settings_schema(), (
        "regenerate it: .venv/bin/python -m tests.charts.settings_schema"
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"dns": {"tll": 3}}, "tll"),
        ({"dns": {"ttl": -5}}, "ttl"),
        ({"pki": {"key_type": "dsa"}}, "key_type"),
        ({"observability_ports": {"thanos": 99999}}, "thanos"),
        ({"envoy": {"access_log": "verbose"}}, "access_log"),
        ({"poll_interval": "fast"}, "poll_interval"),
    ],
)
def test_a_bad_setting_fails_the_install(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(Exception) as failed:
        render("atlas", {"settings": settings})
    assert "values don't meet the specifications of the schema" in str(failed.value)
    assert named in str(failed.value)


def test_good_settings_install() -> None:
    good = {"dns": {"ttl": 60}, "envoy": {"access_log": "all", "metrics_port": 0}}
    docs = objects(render("atlas", {"settings": {**good, "pki": {"leaf_lifetime": 86400}}}))
    assert any(d["kind"] == "ConfigMap" for d in docs)
