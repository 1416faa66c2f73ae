"""The Grafana dashboard and the alert rules against what a running network exports: Debian's
real Prometheus scrapes Atlas's /metrics and the observability Envoy's /stats/prometheus (as
the chart's ServiceMonitors do), evaluates every panel's query and every alert, and the
overview shows what `atlas status` says. Grafana itself is not installable here: the queries
are run by Prometheus exactly as Grafana would send them, with its variables substituted."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import grpc
import pytest
import yaml

from atlas.demo.ports import free_port
from tests.conftest import ROOT
from tests.e2e.conftest import running_network
from tests.e2e.network import AtlasNetwork
from tests.e2e.real import PROMETHEUS, RealPrometheus
from tests.fakes.thanos import info
from tests.monitoring.promql import exported_names, metric_names
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "charts/atlas/files/dashboard.json"
RULES = ROOT / "charts/atlas/files/prometheus-rules.yaml"
JOBS = {"atlas": "atlas", "envoy": "atlas-envoy"}
VARIABLES = {
    "$job": JOBS["atlas"],
    "$envoy_job": JOBS["envoy"],
    "$node": ".*",
    "$__rate_interval": "15s",
}
"""What Grafana substitutes: the only jobs, every node, 15 s for the 1 s scrape interval."""


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [p for p in found if p["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for each target and each query variable (``label_values(m, l)``
    is asked as the series query Grafana makes of it)."""
    found = [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
            assert match, var["query"]
            found.append((f"variable {var['name']}", f"group by ({match[2]}) ({match[1]})"))
    return found


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AtlasNetwork, Any]]:
    if PROMETHEUS is None:
        pytest.fail("Debian's prometheus is required (tests/prepare.sh)")
    root: Path = tmp_path_factory.mktemp("monitoring")
    with running_network(root) as net:
        obs = net.envoys["atlas"]
        wait_until(
            lambda: info(net.thanos_address, net.thanos_authority("west-0")),
            within=30,
            what="the tunnel",
        )
        with pytest.raises(grpc.RpcError):  # one refused call: the refusal counters move
            info(net.thanos_address, net.thanos_authority("south-0"))
        query = dns.message.make_query("_grpc._tcp.sidecars.thanos.atlas.", "SRV")
        assert dns.query.udp(query, net.atlas_ip, port=net.dns_port, timeout=2).answer
        host, port = obs.admin
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": JOBS["atlas"],
                    "static_configs": [{"targets": [f"{net.atlas_ip}:{net.http_port}"]}],
                },
                {
                    "job_name": JOBS["envoy"],
                    "metrics_path": "/stats/prometheus",
                    "static_configs": [{"targets": [f"{host}:{port}"]}],
                },
            ],
        }
        address = (net.ip(60), free_port(net.ip(60)))
        prometheus = RealPrometheus(
            root / "prometheus",
            address,
            external_url=f"http://{address[0]}:{address[1]}/",
            config=config,
            rules=yaml.safe_load(RULES.read_text()),
        )
        try:
            wait_until(
                lambda: (
                    len(
                        prometheus.api(
                            "query?query="
                            + urllib.parse.quote("count_over_time(up[1m]) >= 5 and up == 1")
                        )["result"]
                    )
                    == 2
                ),
                within=30,
                what="five scrapes of Atlas and the observability Envoy",
                interval=0.5,
            )
            yield net, prometheus
        finally:
            prometheus.stop()


def evaluate(prometheus: Any, expr: str) -> list[dict[str, Any]]:
    data = prometheus.api("query?query=" + urllib.parse.quote(substitute(expr)))
    return list(data["result"]) if data["resultType"] == "vector" else [data["result"]]


def value(prometheus: Any, expr: str) -> float:
    (result,) = evaluate(prometheus, expr)
    return float(result["value"][1])


def test_every_metric_the_dashboard_and_alerts_read_is_exported(
    scraped: tuple[AtlasNetwork, Any],
) -> None:
    net, _ = scraped
    exported = exported_names(net.metrics()) | exported_names(
        net.envoys["atlas"].admin_get("/stats/prometheus")
    )
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    read = {name: title for title, expr in queries() for name in metric_names(expr)}
    read |= {name: rule["alert"] for rule in rules for name in metric_names(rule["expr"])}
    assert len(read) > 30
    missing = {name: where for name, where in read.items() if name not in exported}
    assert not missing, f"read but not exported: {missing}"


def test_every_query_evaluates_in_prometheus(scraped: tuple[AtlasNetwork, Any]) -> None:
    """Prometheus answers an invalid query with HTTP 400, which raises here."""
    _, prometheus = scraped
    empty = {
        name
        for _, expr in queries()
        if not evaluate(prometheus, expr)
        for name in metric_names(expr)
    }
    # Labelled counters nothing has incremented have no series yet: nothing was NACKed,
    # refused at the ADS server, restarted or written to Kubernetes (directory mode).
    assert empty == {
        "atlas_xds_nacks_total",
        "atlas_xds_refused_streams_total",
        "atlas_task_restarts_total",
        "atlas_kube_writes_total",
    }


def test_the_overview_says_what_atlas_status_says(scraped: tuple[AtlasNetwork, Any]) -> None:
    net, prometheus = scraped
    status = net.status()
    connected = sorted(n["node"] for n in status["nodes"] if n["connected"])
    assert {"atlas", "east", "west"} <= set(connected)
    by_title = {p["title"]: p for p in panels()}

    def overview(title: str) -> float:
        return value(prometheus, by_title[title]["targets"][0]["expr"])

    assert overview("Replicas ready") == 1
    assert overview("Leader") == 1
    assert overview("Sources synced") == 1
    assert overview("Envoys connected") == len(connected)
    assert overview("Envoys out of sync") == 0
    leaf_days = min((n["leaf_expires"] for n in status["nodes"] if n["leaf_expires"]), default=None)
    assert leaf_days is not None
    assert 0 < overview("First certificate expiry") <= 400 * 86400
    rows = evaluate(prometheus, by_title["Envoys"]["targets"][0]["expr"])
    assert {r["metric"]["node"]: r["value"][1] for r in rows if r["value"][1] == "1"}.keys() >= {
        "east",
        "west",
    }
    refused = evaluate(prometheus, by_title["Refused StoreAPI calls"]["targets"][0]["expr"])
    assert {r["metric"]["envoy_local_http_ratelimit_prefix"] for r in refused} >= {
        "atlas_refused_unknown_target"
    }


def test_the_alert_rules_load_and_stay_quiet_on_a_healthy_network(
    scraped: tuple[AtlasNetwork, Any],
) -> None:
    _, prometheus = scraped
    wait_until(
        lambda: all(r.get("lastEvaluation", "").startswith("20") for r in rules(prometheus)),
        within=10,
        what="every rule evaluated once",
    )
    for rule in rules(prometheus):
        assert rule["health"] == "ok", rule
        assert rule["state"] == "inactive", rule


def rules(prometheus: Any) -> list[dict[str, Any]]:
    return [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
