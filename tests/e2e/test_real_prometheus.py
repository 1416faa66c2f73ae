"""Debian's real Prometheus 2.42 and Alertmanager 0.25 in the Atlas network, through real
Envoys: Prometheus finds the sidecars by a goatlas.io/atlas-style SRV name, its UI works under
``/prom/east/``, and its alerts, sent with the goatlas.io/atlas chart's Host, reach the
observability Alertmanager."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.e2e.conftest import running_network
from tests.e2e.network import AtlasNetwork
from tests.e2e.real import require_real_parts
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtlasNetwork]:
    require_real_parts()
    with running_network(tmp_path_factory.mktemp("real"), real_prometheus=True) as network:
        yield network


def test_prometheus_dns_sd_finds_every_sidecar_by_a_go_style_name(net: AtlasNetwork) -> None:
    """``_thanos._tcp.sidecars.thanos.atlas.``, the name goatlas.io/atlas's demo used."""
    port = net.obs_ports["thanos"]
    expected = {f"{t}.sidecars.thanos.atlas:{port}" for t in ("east-0", "east-1", "west-0")}

    def discovered() -> set[str]:
        assert net.prometheus is not None
        targets = net.prometheus.api("targets?state=any")
        found = {
            t["discoveredLabels"]["__address__"]
            for t in targets["activeTargets"] + targets["droppedTargets"]
            if t["discoveredLabels"].get("job") == "thanos-sidecars"
        }
        return found if found == expected else set()

    assert wait_until(discovered, within=30, what="Prometheus's DNS discovery") == expected


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and value.startswith("/"):
                self.links.append(value)


def ui_ready(net: AtlasNetwork) -> str:
    """The observability Envoy's Prometheus UI base URL, once east's Prometheus answers."""
    base = f"http://{net.obs_ip}:{net.obs_ports['prometheus_ui']}"
    wait_until(
        lambda: urllib.request.urlopen(f"{base}/prom/east/-/ready", timeout=3).status == 200,
        within=30,
        what="east's Prometheus through the tunnel",
    )
    return base


def test_every_asset_of_the_prometheus_ui_loads_through_the_tunnel(net: AtlasNetwork) -> None:
    base = ui_ready(net)
    with urllib.request.urlopen(f"{base}/prom/east/", timeout=5) as page:
        html = page.read().decode()
        landed = page.geturl()
    assert landed == f"{base}/prom/east/classic/graph", "redirects stay under the prefix"
    parser = _Links()
    parser.feed(html)
    assets = [link for link in parser.links if "/static/" in link]
    assert len(assets) >= 15, parser.links
    assert all(link.startswith("/prom/east/") for link in parser.links), parser.links
    failed = []
    for link in parser.links:
        try:
            with urllib.request.urlopen(base + link, timeout=5) as response:
                if response.status != 200 or not response.read():
                    failed.append(f"{link}: {response.status}")
        except urllib.error.HTTPError as err:
            failed.append(f"{link}: {err.code}")
    assert failed == [], failed
    with urllib.request.urlopen(f"{base}/prom/east/api/v1/status/buildinfo", timeout=5) as api:
        assert re.search(rb'"version":"2\.\d+', api.read())


def test_the_redirect_keeps_the_port(net: AtlasNetwork) -> None:
    ui_ready(net)
    port = net.obs_ports["prometheus_ui"]
    request = urllib.request.Request(f"http://{net.obs_ip}:{port}/prom/east")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=5)
    assert caught.value.code == 301
    assert caught.value.headers["Location"] == f"http://{net.obs_ip}:{port}/prom/east/"


def test_alerts_sent_with_the_go_charts_host_reach_the_observability_alertmanager(
    net: AtlasNetwork,
) -> None:
    """East's Prometheus sends to ``alertmanager0.monitoring.svc.cluster.local:<relay>``, the
    Service goatlas.io/atlas's envoy chart made; its Envoy relays over mutual TLS."""
    assert net.alertmanager is not None

    def arrived() -> list[dict[str, Any]]:
        assert net.alertmanager is not None
        return [a for a in net.alertmanager.alerts() if a["labels"].get("alertname") == "AtlasE2E"]

    alerts = wait_until(arrived, within=60, what="the alert at the observability Alertmanager")
    assert alerts[0]["labels"]["cluster"] == "east"
    assert net.prometheus is not None
    (alertmanager,) = net.prometheus.api("alertmanagers")["activeAlertmanagers"]
    assert alertmanager["url"].startswith("http://alertmanager0.monitoring.svc.cluster.local:")
