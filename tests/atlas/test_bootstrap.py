"""Bootstraps: the observability Envoy subscribes as ``envoy.observability_api_type`` says."""

from __future__ import annotations

import pytest

from atlas.bootstrap import bootstrap_spec, build_bootstrap
from atlas.config import settings_from_mapping
from atlas.errors import ConfigError


def _api_type(bootstrap: dict[str, object]) -> object:
    return bootstrap["dynamic_resources"]["ads_config"]["api_type"]  # type: ignore[index]


def test_the_observability_envoy_subscribes_as_the_setting_says() -> None:
    settings = settings_from_mapping({"envoy": {"observability_api_type": "DELTA_GRPC"}})
    obs = bootstrap_spec(settings, settings.observability_node, "atlas.monitoring.svc", 18000)
    east = bootstrap_spec(settings, "east", "obs.example.net", 10900)
    assert _api_type(build_bootstrap(obs)) == "DELTA_GRPC"
    assert _api_type(build_bootstrap(east)) == "GRPC", "downstream Envoys keep their own flag"
    asked = bootstrap_spec(settings, "atlas", "atlas.monitoring.svc", 18000, api_type="GRPC")
    assert _api_type(build_bootstrap(asked)) == "GRPC", "an explicit --api-type wins"


def test_state_of_the_world_by_default() -> None:
    settings = settings_from_mapping({})
    obs = bootstrap_spec(settings, settings.observability_node, "atlas.monitoring.svc", 18000)
    assert _api_type(build_bootstrap(obs)) == "GRPC"


def test_an_unknown_api_type_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"envoy\.observability_api_type: 'REST': must be one of"):
        settings_from_mapping({"envoy": {"observability_api_type": "REST"}})
