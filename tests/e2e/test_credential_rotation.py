"""The observability Envoy's ADS credential is renewed under traffic without a restart: the
kubelet swaps the renewed Secret into its volume, Envoy reads the new certificate through its
file-watched SDS sources, and its next ADS connection presents it. Before, the credential was
read once from plain files: Envoy kept presenting the first one until restarted, and lost ADS
when that one expired."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from atlas.bootstrap import CertPaths, credential_watch_files, local_bootstrap
from atlas.demo.envoy import Envoy
from atlas.demo.ports import free_port
from atlas.pki import OBSERVABILITY_URI, Credential
from tests.e2e.clients import Traffic, thanos
from tests.e2e.conftest import running_network
from tests.e2e.network import AtlasNetwork
from tests.fakes.secret_volume import SecretVolume
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

CREDENTIAL = "bootstrap-observability"


@pytest.fixture
def net(tmp_path: Path) -> Iterator[AtlasNetwork]:
    with running_network(tmp_path) as network:
        yield network


def volume_files(net: AtlasNetwork, credential: Credential, certs: CertPaths) -> dict[str, bytes]:
    files = {
        "tls.crt": credential.cert_pem,
        "tls.key": credential.key_pem,
        "ca.crt": net.pki.ca().bundle_pem,
    }
    return files | {k: v.encode() for k, v in credential_watch_files(certs).items()}


def serials(envoy: Envoy) -> set[int]:
    """The serial numbers of every certificate the Envoy holds (``/certs``)."""
    found = set()
    for context in json.loads(envoy.admin_get("/certs"))["certificates"]:
        for chain in context.get("cert_chain", []):
            found.add(int(chain["serial_number"], 16))
    return found


def connected_with(net: AtlasNetwork, credential: Credential) -> bool:
    node = next(n for n in net.status()["nodes"] if n["node"] == "atlas")
    presented = (node.get("client_certificate") or {}).get("expires")
    return bool(node["connected"]) and presented == credential.not_after.isoformat()


def test_the_observability_envoys_ads_credential_rotates_under_traffic(
    net: AtlasNetwork,
) -> None:
    wait_until(lambda: thanos(net, "east-0"), within=30, what="network up")
    net.envoys.pop("atlas").stop()
    # The observability Envoy again, its credential in a Secret volume as the chart mounts it.
    volume = SecretVolume(net.root / "envoy-atlas-volume" / "certs")
    certs = CertPaths(str(volume.directory))
    first = net.pki.credential(CREDENTIAL, OBSERVABILITY_URI, server=False)
    volume.write(volume_files(net, first, certs))
    admin = (net.obs_ip, free_port(net.obs_ip))
    bootstrap = local_bootstrap("atlas", (net.atlas_ip, net.ads_port), volume.directory, admin)
    envoy = Envoy("atlas", net.root / "envoy-atlas-volume", bootstrap, admin)
    envoy.start()
    net.envoys["atlas"] = envoy
    wait_until(lambda: connected_with(net, first), within=30, what="connected with the first")
    wait_until(lambda: thanos(net, "east-0"), within=30, what="traffic through it")

    with Traffic(net, ("east-0", "east-1", "west-0")) as traffic:
        net.pki.store.delete(CREDENTIAL)  # renewed: a new key, a new certificate
        renewed = net.pki.credential(
            CREDENTIAL, OBSERVABILITY_URI, server=False, lifetime=timedelta(days=90)
        )
        volume.write(volume_files(net, renewed, certs))
        wait_until(
            lambda: renewed.certificate.serial_number in serials(envoy),
            within=10,
            what="Envoy read the renewed certificate",
        )
        assert first.certificate.serial_number not in serials(envoy)
        assert net.atlas is not None
        net.atlas.stop()  # its ADS connection drops; the next one presents the new credential
        net.start_atlas()
        wait_until(
            lambda: connected_with(net, renewed), within=40, what="connected with the renewed"
        )
    traffic.assert_all_succeeded(at_least=50)
    assert envoy.running, "no restart"
