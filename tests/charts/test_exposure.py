"""What the atlas chart exposes, rendered with real Helm under every value that shapes a
Service: only ports that authenticate the caller with mutual TLS may be on a Service that
leaves the cluster (NodePort, LoadBalancer, external IPs). The plaintext StoreAPI (10901) on a
LoadBalancer would hand every cluster's metrics to whoever reaches it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from atlas.config import ObservabilityPorts
from tests.charts.render import find, objects, render

MUTUAL_TLS = {ObservabilityPorts().ads, ObservabilityPorts().alert_intake}
"""The observability Envoy's ports that other clusters reach: downstream ADS (TLS passed
through to Atlas, which checks the client certificate) and alert intake (mutual TLS)."""

SERVICE_SHAPES: list[dict[str, Any]] = [
    {"envoy": {"service": {"type": kind, "loadBalancerIP": ip}}, "networkPolicy": {"enabled": np}}
    for kind, ip, np in itertools.product(
        ["ClusterIP", "NodePort", "LoadBalancer"], ["", "203.0.113.7"], [True, False]
    )
] + [
    {},
    {"envoy": {"metricsPort": 19902}},
    {"dns": {"service": {"clusterIP": "10.96.0.53", "port": 5353}}},
    {"envoy": {"service": {"loadBalancerSourceRanges": ["198.51.100.0/24"]}}},
]


def _id(values: dict[str, Any]) -> str:
    return repr(values) if values else "defaults"


def leaves_the_cluster(service: dict[str, Any]) -> bool:
    spec = service["spec"]
    return spec.get("type", "ClusterIP") != "ClusterIP" or bool(spec.get("externalIPs"))


@pytest.mark.parametrize("values", SERVICE_SHAPES, ids=_id)
def test_no_plaintext_port_is_on_a_service_that_leaves_the_cluster(values: dict[str, Any]) -> None:
    services = [d for d in objects(render("atlas", values)) if d["kind"] == "Service"]
    exposed = {
        s["metadata"]["name"]: sorted(p["port"] for p in s["spec"]["ports"])
        for s in services
        if leaves_the_cluster(s)
    }
    assert all(set(ports) <= MUTUAL_TLS for ports in exposed.values()), exposed


def test_the_public_service_is_a_load_balancer_by_default_with_only_the_mtls_ports() -> None:
    docs = objects(render("atlas"))
    public = find(docs, "Service", "atlas-envoy")
    assert public["spec"]["type"] == "LoadBalancer"
    assert {p["port"] for p in public["spec"]["ports"]} == MUTUAL_TLS
    internal = find(docs, "Service", "atlas-envoy-internal")
    assert internal["spec"]["type"] == "ClusterIP"
    assert {p["port"] for p in internal["spec"]["ports"]} == {10901, 10902, 10904, 9902}


def test_atlas_answers_srv_targets_with_the_service_that_has_the_storeapi() -> None:
    """Atlas finds the observability Envoy's address by its Service's labels: that selector
    must pick the in-cluster Service, the one with 10901, and nothing else (both Services have
    a ClusterIP; picking both would send half of Thanos's dials to a Service without 10901)."""
    docs = objects(render("atlas"))
    settings = find(docs, "ConfigMap", "atlas-config")["data"]["config.yaml"]
    selector = dict(p.split("=") for p in yaml.safe_load(settings)["envoy_selector"].split(","))
    matched = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
    ]
    assert matched == ["atlas-envoy-internal"]


def test_the_notes_say_which_service_is_which() -> None:
    notes = render("atlas")["atlas/templates/NOTES.txt"]
    assert "atlas-envoy (LoadBalancer): 10900 and 10903 only, both mutual TLS" in notes
    assert "atlas-envoy-internal (ClusterIP): 10901 (Thanos StoreAPI, plaintext)" in notes
