"""Service objects → model: every label/annotation, and every way an object can be wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from atlas.errors import ManifestError
from atlas.manifests import parse_cluster, parse_selector, parse_services
from atlas.model import DEFAULT_THANOS, DownstreamCluster, Upstream


def service(name: Any = "east", **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "monitoring",
            "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": "2"},
            "annotations": {},
        },
        "spec": {"externalIPs": ["192.0.2.10"]},
    }
    for path, value in changes.items():
        _set(obj, path, value)
    return obj


DELETE = object()
"""A change that removes the key (``service(name, spec__externalIPs=DELETE)``)."""


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    """``metadata__labels__goatlas.io/replicas`` style paths (``__`` separates keys)."""
    keys = path.split("__")
    target = obj
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = value


LABELS = "metadata__labels__"
ANN = "metadata__annotations__"

# (case id, object, expected field named in the error, fragment of the reason)
BAD: list[tuple[str, Any, str, str]] = [
    ("not-a-mapping", ["a", "list"], "(object)", "mapping"),
    ("metadata-missing", {"kind": "Service", "metadata": None}, "metadata", "missing"),
    ("metadata-not-mapping", service(metadata="x"), "metadata", "mapping"),
    ("name-missing", service(**{"metadata__name": DELETE}), "metadata.name", "non-empty"),
    ("name-empty", service(""), "metadata.name", "non-empty"),
    ("name-int", service(42), "metadata.name", "non-empty"),
    ("name-uppercase", service("East"), "metadata.name", "DNS-1123"),
    ("name-underscore", service("east_1"), "metadata.name", "DNS-1123"),
    ("name-leading-dash", service("-east"), "metadata.name", "DNS-1123"),
    ("name-trailing-dash", service("east-"), "metadata.name", "DNS-1123"),
    ("name-dot", service("east.prod"), "metadata.name", "DNS-1123"),
    ("name-too-long", service("a" * 61), "metadata.name", "at most 60"),
    ("name-huge", service("a" * 100_000), "metadata.name", "DNS-1123"),
    ("name-unicode", service("östra"), "metadata.name", "DNS-1123"),
    ("name-reserved", service("atlas"), "metadata.name", "reserved"),
    (
        "wrong-namespace",
        service(**{"metadata__namespace": "default"}),
        "metadata.namespace",
        "Atlas namespace",
    ),
    ("labels-not-mapping", service(**{"metadata__labels": ["x"]}), "metadata.labels", "mapping"),
    (
        "cluster-label-bool",
        service(**{LABELS + "goatlas.io/cluster": True}),
        "metadata.labels[goatlas.io/cluster]",
        "must be a string",
    ),
    (
        "cluster-label-yes",
        service(**{LABELS + "goatlas.io/cluster": "yes"}),
        "metadata.labels[goatlas.io/cluster]",
        '"true"',
    ),
    (
        "replicas-int",
        service(**{LABELS + "goatlas.io/replicas": 2}),
        "metadata.labels[goatlas.io/replicas]",
        "quote it",
    ),
    (
        "replicas-word",
        service(**{LABELS + "goatlas.io/replicas": "two"}),
        "metadata.labels[goatlas.io/replicas]",
        "whole number",
    ),
    (
        "replicas-zero",
        service(**{LABELS + "goatlas.io/replicas": "0"}),
        "metadata.labels[goatlas.io/replicas]",
        "1..64",
    ),
    (
        "replicas-negative",
        service(**{LABELS + "goatlas.io/replicas": "-1"}),
        "metadata.labels[goatlas.io/replicas]",
        "1..64",
    ),
    (
        "replicas-65",
        service(**{LABELS + "goatlas.io/replicas": "65"}),
        "metadata.labels[goatlas.io/replicas]",
        "1..64",
    ),
    (
        "replicas-huge",
        service(**{LABELS + "goatlas.io/replicas": "9" * 400}),
        "metadata.labels[goatlas.io/replicas]",
        "1..64",
    ),
    (
        "replicas-fullwidth-digit",
        service(**{LABELS + "goatlas.io/replicas": "\uff12"}),
        "metadata.labels[goatlas.io/replicas]",
        "whole number",
    ),
    (
        "replicas-float",
        service(**{LABELS + "goatlas.io/replicas": "1.5"}),
        "metadata.labels[goatlas.io/replicas]",
        "whole number",
    ),
    (
        "group-bad",
        service(**{LABELS + "goatlas.io/group": "Prod Team"}),
        "metadata.labels[goatlas.io/group]",
        "DNS-1123",
    ),
    (
        "external-ips-missing",
        service(**{"spec__externalIPs": DELETE}),
        "spec.externalIPs",
        "missing",
    ),
    ("external-ips-empty", service(**{"spec__externalIPs": []}), "spec.externalIPs", "missing"),
    (
        "external-ips-string",
        service(**{"spec__externalIPs": "192.0.2.1"}),
        "spec.externalIPs",
        "must be a list",
    ),
    (
        "external-ip-bad",
        service(**{"spec__externalIPs": ["192.0.2.300"]}),
        "spec.externalIPs[0]",
        "not an IP",
    ),
    (
        "external-ip-hostname",
        service(**{"spec__externalIPs": ["envoy.example.com"]}),
        "spec.externalIPs[0]",
        "not an IP",
    ),
    (
        "external-ip-int",
        service(**{"spec__externalIPs": [3232235777]}),
        "spec.externalIPs[0]",
        "not an IP",
    ),
    ("spec-not-mapping", service(**{"spec": "nope"}), "spec", "mapping"),
    (
        "envoy-address-bad",
        service(**{ANN + "goatlas.io/envoy-address": "bad host!"}),
        "metadata.annotations[goatlas.io/envoy-address]",
        "not a DNS name",
    ),
    (
        "annotations-not-mapping",
        service(**{"metadata__annotations": "x"}),
        "metadata.annotations",
        "mapping",
    ),
    (
        "thanos-service-bad",
        service(**{ANN + "goatlas.io/thanos-service": "a..b"}),
        "metadata.annotations[goatlas.io/thanos-service]",
        "not a DNS name",
    ),
    (
        "thanos-service-too-long",
        service(**{ANN + "goatlas.io/thanos-service": "a." * 130}),
        "metadata.annotations[goatlas.io/thanos-service]",
        "not a DNS name",
    ),
    (
        "thanos-port-zero",
        service(**{ANN + "goatlas.io/thanos-service-port": "0"}),
        "metadata.annotations[goatlas.io/thanos-service-port]",
        "1..65535",
    ),
    (
        "thanos-port-big",
        service(**{ANN + "goatlas.io/thanos-service-port": "65536"}),
        "metadata.annotations[goatlas.io/thanos-service-port]",
        "1..65535",
    ),
    (
        "thanos-port-int",
        service(**{ANN + "goatlas.io/thanos-service-port": 10901}),
        "metadata.annotations[goatlas.io/thanos-service-port]",
        "must be a string",
    ),
    (
        "prometheus-port-word",
        service(**{ANN + "goatlas.io/prometheus-service-port": "http"}),
        "metadata.annotations[goatlas.io/prometheus-service-port]",
        "1..65535",
    ),
    (
        "prometheus-service-unicode",
        service(**{ANN + "goatlas.io/prometheus-service": "prö.svc"}),
        "metadata.annotations[goatlas.io/prometheus-service]",
        "not a DNS name",
    ),
    (
        "alertmanager-port-space",
        service(**{ANN + "goatlas.io/alertmanager-service-port": " 9093"}),
        "metadata.annotations[goatlas.io/alertmanager-service-port]",
        "1..65535",
    ),
    (
        "alertmanager-service-null",
        service(**{ANN + "goatlas.io/alertmanager-service": None}),
        "metadata.annotations[goatlas.io/alertmanager-service]",
        "null",
    ),
    (
        "replica-template-no-placeholder",
        service(**{ANN + "goatlas.io/thanos-replica-service": "prom.svc"}),
        "metadata.annotations[goatlas.io/thanos-replica-service]",
        "{i}",
    ),
    (
        "replica-template-bad",
        service(**{ANN + "goatlas.io/thanos-replica-service": "prom_{i}.svc"}),
        "metadata.annotations[goatlas.io/thanos-replica-service]",
        "not a DNS name",
    ),
]


@pytest.mark.parametrize(("obj", "field", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_manifest_names_object_and_field(obj: Any, field: str, reason: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_cluster(obj, fallback_ref="clusters/bad.yaml#0")
    err = info.value
    assert err.field == field
    assert reason in err.reason
    expected_obj = (
        f"monitoring/{obj['metadata']['name']}"
        if isinstance(obj, dict)
        and isinstance(obj.get("metadata"), dict)
        and isinstance(obj["metadata"].get("name"), str)
        and obj["metadata"]["name"]
        else "clusters/bad.yaml#0"
    )
    if len(expected_obj) > 300:
        assert err.obj == expected_obj[:264] + "…"
    elif field != "metadata.namespace":
        assert err.obj == expected_obj
    assert str(err).startswith("Service ")
    assert len(str(err)) < 500, "huge values must be cut in messages"


def test_there_are_at_least_thirty_bad_cases() -> None:
    assert len(BAD) >= 30


def test_defaults_follow_goatlas() -> None:
    obj = service(**{LABELS + "goatlas.io/replicas": DELETE})
    cluster = parse_cluster(obj)
    assert cluster == DownstreamCluster(name="east", envoy_address="192.0.2.10")
    assert cluster.replicas == 1
    assert cluster.thanos == Upstream("prometheus-operated.monitoring.svc.cluster.local", 10901)
    assert cluster.prometheus == Upstream("prometheus-operated.monitoring.svc.cluster.local", 9090)
    assert cluster.alertmanager == Upstream(
        "alertmanager-operated.monitoring.svc.cluster.local", 9093
    )
    assert cluster.group is None


def test_every_annotation_is_read() -> None:
    obj = service(
        **{
            ANN + "goatlas.io/envoy-address": "Envoy.East.Example.NET.",
            ANN + "goatlas.io/thanos-service": "sidecar.mon.svc",
            ANN + "goatlas.io/thanos-service-port": "10911",
            ANN + "goatlas.io/thanos-replica-service": "prom-{i}.mon.svc",
            ANN + "goatlas.io/prometheus-service": "prom.mon.svc",
            ANN + "goatlas.io/prometheus-service-port": "9091",
            ANN + "goatlas.io/alertmanager-service": "am.mon.svc",
            ANN + "goatlas.io/alertmanager-service-port": "9094",
            LABELS + "goatlas.io/group": "prod",
        }
    )
    c = parse_cluster(obj)
    assert c.envoy_address == "envoy.east.example.net"  # annotation wins over externalIPs
    assert c.thanos == Upstream("sidecar.mon.svc", 10911)
    assert c.prometheus == Upstream("prom.mon.svc", 9091)
    assert c.alertmanager == Upstream("am.mon.svc", 9094)
    assert c.group == "prod"
    assert c.thanos_replica(0) == Upstream("prom-0.mon.svc", 10911)
    assert c.thanos_replica(1) == Upstream("prom-1.mon.svc", 10911)
    with pytest.raises(IndexError):
        c.thanos_replica(2)


def test_single_replica_uses_the_plain_thanos_service() -> None:
    c = parse_cluster(service(**{LABELS + "goatlas.io/replicas": "1"}))
    assert c.thanos_replica(0) == DEFAULT_THANOS


def test_ipv6_external_ip_and_missing_namespace_accepted() -> None:
    obj = service(**{"spec__externalIPs": ["2001:db8::1"], "metadata__namespace": DELETE})
    assert parse_cluster(obj).envoy_address == "2001:db8::1"


def test_one_bad_object_never_hides_the_others() -> None:
    good_a, good_b = service("east"), service("west")
    bad = service("north", **{"spec__externalIPs": ["nope"]})
    dup = copy.deepcopy(good_a)
    dup["spec"]["externalIPs"] = ["192.0.2.99"]
    plain = {"kind": "Service", "metadata": {"name": "kube-dns", "labels": {"k8s-app": "dns"}}}
    opted_out = service("south", **{LABELS + "goatlas.io/cluster": "false"})
    result = parse_services(
        [
            ("a.yaml#0", good_a),
            ("a.yaml#1", bad),
            ("b.yaml#0", dup),
            ("b.yaml#1", good_b),
            ("c.yaml#0", plain),
            ("c.yaml#1", opted_out),
            ("c.yaml#2", "garbage"),
        ]
    )
    assert [c.name for c in result.clusters] == ["east", "west"]
    assert result.clusters[0].envoy_address == "192.0.2.10", "the first definition wins"
    messages = [str(e) for e in result.errors]
    assert len(messages) == 2
    assert messages[0].startswith("Service monitoring/north: spec.externalIPs[0]:")
    assert "duplicate cluster 'east': a.yaml#0 defines it and stays in force" in messages[1]


def test_alertmanager_services_by_selector() -> None:
    def am(name: str, pod: str | None, ip: str = "10.0.0.5") -> dict[str, Any]:
        selector = {"app.kubernetes.io/name": "alertmanager"}
        if pod:
            selector["statefulset.kubernetes.io/pod-name"] = pod
        return {
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": "monitoring",
                "labels": {"app": "kube-prometheus-stack-alertmanager"},
            },
            "spec": {
                "clusterIP": ip,
                "selector": selector,
                "ports": [{"name": "reloader", "port": 8080}, {"name": "http-web", "port": 9093}],
            },
        }

    result = parse_services(
        [
            ("x", am("am-1", "alertmanager-main-1")),
            ("x", am("am-0", "alertmanager-main-0", "None")),
            ("x", am("am-shared", None)),
            ("x", am("am-odd", "alertmanager-main")),
        ],
        alertmanager_selector=parse_selector("app=kube-prometheus-stack-alertmanager"),
    )
    assert [(a.name, a.replica, a.address, a.port) for a in result.alertmanagers] == [
        ("am-0", 0, "am-0.monitoring.svc.cluster.local", 9093),
        ("am-1", 1, "10.0.0.5", 9093),
    ]
    # kube-prometheus-stack's main Service (same app label, selects every replica) is no
    # replica and no error; a pod selector without an ordinal is an error.
    assert [str(e) for e in result.errors] == [
        "Service monitoring/am-odd: spec.selector[statefulset.kubernetes.io/pod-name]: "
        "'alertmanager-main' does not end in a StatefulSet ordinal (-N)"
    ]


def test_selector_parsing() -> None:
    assert parse_selector("app=a, release = b") == {"app": "a", "release": "b"}
    assert parse_selector("a==b") == {"a": "b"}
    with pytest.raises(ValueError, match="not key=value"):
        parse_selector("app")


def test_memo_parses_only_new_objects_and_keeps_unchanged_ones_identical(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import atlas.manifests as manifests

    calls: list[str] = []
    real = manifests.parse_cluster

    def counting(obj: Any, **kw: Any) -> DownstreamCluster:
        calls.append(obj["metadata"]["name"])
        return real(obj, **kw)

    monkeypatch.setattr(manifests, "parse_cluster", counting)
    memo = manifests.ParseMemo()
    east, west = service("east"), service("west")
    bad = service("broken", **{LABELS + "goatlas.io/replicas": "x"})
    first = parse_services([("a", east), ("b", west), ("c", bad)], memo=memo)
    assert sorted(calls) == ["broken", "east", "west"]
    west2 = service("west", **{LABELS + "goatlas.io/replicas": "3"})
    second = parse_services([("a", east), ("b", west2), ("c", bad)], memo=memo)
    assert sorted(calls) == ["broken", "east", "west", "west"], "only the new object is parsed"
    assert second.clusters[0] is first.clusters[0]
    assert second.clusters[1].replicas == 3
    assert [e.obj for e in first.errors] == ["monitoring/broken"]
    assert second.errors == first.errors, "an invalid object stays reported"
    third = parse_services([("a", east), ("d", copy.deepcopy(east))], memo=memo)
    assert [e.field for e in third.errors] == ["metadata.name"], "duplicates still found"
    assert "duplicate cluster 'east'" in third.errors[0].reason


def test_storeapi_port_names_come_from_the_services_ports() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "east",
            "namespace": "monitoring",
            "labels": {"goatlas.io/cluster": "true"},
        },
        "spec": {
            "externalIPs": ["192.0.2.1"],
            "ports": [
                {"name": "prometheus", "port": 9090, "protocol": "TCP", "targetPort": 9090},
                {"name": "grpc", "port": 10901, "protocol": "TCP", "targetPort": 10901},
                {"name": "store", "port": 443, "targetPort": 10901},
                {"name": "dns", "port": 10901, "protocol": "UDP"},
                {"port": 10901},
            ],
        },
    }
    assert parse_cluster(service).srv_services == ("grpc", "store")
    service["spec"]["ports"] = [{"name": "Bad_Name", "port": 10901}]  # type: ignore[index]
    with pytest.raises(ManifestError, match=r"spec\.ports\[0\]\.name: 'Bad_Name' is not a port"):
        parse_cluster(service)
