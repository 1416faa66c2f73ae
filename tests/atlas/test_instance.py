"""Names of an Atlas installation's own objects: the default keeps the earlier names (and
goatlas.io/atlas's), any other instance prefixes every one, and a bad instance is refused."""

from __future__ import annotations

import pytest

from atlas.config import settings_from_mapping
from atlas.errors import ConfigError
from atlas.instance import InstanceNames
from atlas.model import LABEL_INSTANCE


def test_the_default_instance_keeps_the_earlier_names() -> None:
    n = InstanceNames()
    assert (n.lease, n.ca_secret, n.last_good) == ("atlas", "atlas-ca", "atlas-last-good")
    assert n.credential_secret("node-east") == "atlas-node-east"
    assert (n.observability_values, n.observability_bootstrap) == (
        "atlas-envoy-values",
        "atlas-envoy-bootstrap",
    )
    assert n.values_secret("east") == "east-envoy-values"


def test_another_instance_prefixes_every_name() -> None:
    n = InstanceNames("staging")
    assert (n.lease, n.ca_secret) == ("staging", "staging-ca")
    assert n.values_secret("east") == "staging-east-envoy-values"
    assert n.observability_bootstrap == "staging-envoy-bootstrap"


def test_stale_values_are_only_an_instances_own() -> None:
    atlas, staging = InstanceNames(), InstanceNames("staging")
    legacy: dict[str, str] = {}  # written before instances existed: the default one's
    assert atlas.owns(legacy) and not staging.owns(legacy)
    assert staging.owns({LABEL_INSTANCE: "staging"}) and not atlas.owns({LABEL_INSTANCE: "staging"})


@pytest.mark.parametrize("value", ["Staging", "a_b", "-x", "x" * 64])
def test_an_instance_must_be_a_dns_label(value: str) -> None:
    with pytest.raises(ConfigError, match=r"atlas.yaml: instance: .*must be a DNS-1123 label"):
        settings_from_mapping({"instance": value}, source="atlas.yaml")


def test_the_lease_follows_the_instance_unless_named() -> None:
    assert settings_from_mapping({"instance": "staging"}).lease.name == ""
    with pytest.raises(ConfigError, match=r"lease\.name: 'A B'"):
        settings_from_mapping({"lease": {"name": "A B"}})
