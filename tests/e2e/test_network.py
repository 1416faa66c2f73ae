"""The whole Atlas network through real Envoys, once with SotW and once with delta ADS."""

from __future__ import annotations

import pytest

from tests.e2e.network import AtlasNetwork, wait_until
from tests.fakes.thanos import info

pytestmark = pytest.mark.e2e


def thanos(net: AtlasNetwork, target: str) -> dict[str, str]:
    return info(f"{net.obs_ip}:{net.obs_ports['thanos']}", f"{target}.sidecars.thanos.atlas:10901")


def test_info_reaches_each_clusters_own_sidecar_replica(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "east-0"), within=30, what="east-0 through the network")
    assert thanos(network, "east-0") == {"cluster": "east", "replica": "0"}
    assert thanos(network, "east-1") == {"cluster": "east", "replica": "1"}
    wait_until(lambda: thanos(network, "west-0"), within=10, what="west-0 through the network")
    assert thanos(network, "west-0") == {"cluster": "west", "replica": "0"}
