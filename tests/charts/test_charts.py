"""charts/atlas and charts/envoy, rendered by Helm's own library: strict lint, every manifest
valid against Kubernetes 1.30 and the newest schemas (kubernetes-validate, strict), the schema
refusing bad values, the Role the Kubernetes tests run with, and real Envoy accepting both
Envoys' configuration."""

from __future__ import annotations

import base64
import json
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from atlas.config import settings_from_mapping
from atlas.pki import OBSERVABILITY_URI, CAState, create_ca, issue
from tests.charts.render import (
    CHARTS,
    cluster_values,
    envoy_validate,
    find,
    objects,
    render,
)
from tests.conftest import ROOT

KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_GROUPS = ("monitoring.coreos.com/",)
"""prometheus-operator's kinds: kubernetes-validate has no schema for custom resources."""

ATLAS_VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "network-policy-off": {"networkPolicy": {"enabled": False}},
    "fixed-dns-cluster-ip": {"dns": {"service": {"clusterIP": "10.96.0.53"}}},
    "service-monitor-on": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
    "one-replica": {
        "replicas": 1,
        "envoy": {"replicas": 1},
        "podDisruptionBudget": {"enabled": False},
    },
    "load-balancer": {
        "observabilityAddress": "obs.example.net",
        "envoy": {"service": {"type": "LoadBalancer", "loadBalancerIP": "192.0.2.80"}},
        "settings": {"dns": {"ttl": 60}, "envoy": {"access_log": "all"}},
    },
}
ENVOY_VARIANTS = {
    "defaults": {},
    "host-network": {"hostNetwork": True, "service": {"type": "ClusterIP"}},
    "host-ports": {"hostPorts": True, "service": {"type": "ClusterIP"}},
    "ha": {"replicas": 2, "alertmanagerReplicas": 3, "podDisruptionBudget": {"enabled": True}},
}


def validate(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_chart_versions_follow_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for chart in ("atlas", "envoy"):
        meta = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
        assert (meta["version"], meta["appVersion"]) == (project, project), chart
    deployment = find(objects(render("atlas")), "Deployment", "atlas")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(f":{project}"), "the image tag defaults to appVersion"


@pytest.mark.parametrize("variant", sorted(ATLAS_VARIANTS))
def test_atlas_chart_renders_valid_manifests(variant: str) -> None:
    docs = objects(render("atlas", ATLAS_VARIANTS[variant]))
    validate(docs)
    kinds = sorted({d["kind"] for d in docs})
    assert {"Deployment", "Service", "Role", "RoleBinding", "ServiceAccount", "ConfigMap"} <= set(
        kinds
    )
    assert ("NetworkPolicy" in kinds) == (variant != "network-policy-off")
    assert ("ServiceMonitor" in kinds) == (variant == "service-monitor-on")


@pytest.mark.parametrize("variant", sorted(ENVOY_VARIANTS))
def test_envoy_chart_renders_valid_manifests(variant: str, tmp_path: Path) -> None:
    values = {**cluster_values(tmp_path), **ENVOY_VARIANTS[variant]}
    docs = objects(render("envoy", values, release="envoy"))
    validate(docs)
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    replicas = values.get("alertmanagerReplicas", 1)
    for i in range(replicas):
        assert {f"alertmanager-{i}", f"alertmanager{i}"} <= services, "both Host spellings"


def test_both_charts_lint_clean_in_strict_mode(tmp_path: Path) -> None:
    for chart, values in (("atlas", None), ("envoy", cluster_values(tmp_path))):
        for version in ("v1.30.0", "v" + KUBE_VERSIONS[1]):
            report = helm.lint(CHARTS / chart, values, strict=True, kube_version=version)
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            assert report["errors"] == [] and problems == [], (chart, version, report)


def test_the_role_is_the_one_the_kubernetes_tests_run_with() -> None:
    role = find(objects(render("atlas")), "Role")
    rules_file = CHARTS / "atlas" / "files" / "rbac-rules.yaml"
    assert role["rules"] == yaml.safe_load(rules_file.read_text())
    conftest = (ROOT / "tests" / "kube" / "conftest.py").read_text()
    assert 'ROOT / "charts/atlas/files/rbac-rules.yaml"' in conftest


def test_pods_are_locked_down() -> None:
    docs = objects(render("atlas")) + objects(
        render("envoy", cluster_values(Path(__import__("tempfile").mkdtemp())), release="envoy")
    )
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 3
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            for port in container["ports"]:
                assert port["containerPort"] >= 1024, "unprivileged ports only"


def test_atlas_pod_probes_and_spread() -> None:
    atlas = find(objects(render("atlas")), "Deployment", "atlas")
    pod = atlas["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    keys = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert atlas["spec"]["replicas"] == 2
    assert "--dns-listen=0.0.0.0:5353" in container["args"], "unprivileged in the container"
    dns = find(objects(render("atlas")), "Service", "atlas-dns")
    assert {(p["port"], p["targetPort"], p["protocol"]) for p in dns["spec"]["ports"]} == {
        (53, "dns-udp", "UDP"),
        (53, "dns-tcp", "TCP"),
    }


def test_network_policy_admits_each_port_from_what_it_is_for() -> None:
    docs = objects(render("atlas"))
    atlas = find(docs, "NetworkPolicy", "atlas")["spec"]["ingress"]
    ads, dns, metrics = atlas
    assert ads["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "atlas-envoy",
                    "app.kubernetes.io/instance": "atlas",
                }
            }
        }
    ]
    assert dns["from"] == [{"namespaceSelector": {}}], "DNS from within the cluster"
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    envoy = find(docs, "NetworkPolicy", "atlas-envoy")["spec"]["ingress"]
    opened, thanos, uis, _ = envoy
    assert "from" not in opened and [p["port"] for p in opened["ports"]] == [10900, 10903]
    assert thanos["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "thanos-query"
    }
    assert [p["port"] for p in uis["ports"]] == [10902, 10904]


def test_a_fixed_dns_address_is_in_the_service_and_the_coredns_stanza() -> None:
    rendered = render("atlas", {"dns": {"service": {"clusterIP": "10.96.0.53"}}})
    assert find(objects(rendered), "Service", "atlas-dns")["spec"]["clusterIP"] == "10.96.0.53"
    notes = rendered["atlas/templates/NOTES.txt"]
    assert "forward . 10.96.0.53:53" in notes
    assert "--endpoint=dnssrvnoa+_grpc._tcp.sidecars.thanos.atlas." in notes
    assert "dnssrv+ dials the Envoy's IP" in notes
    assert "atlas cluster add" in notes and "helm install envoy charts/envoy" in notes


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("atlas", {"replicas": 0}, "at '/replicas': minimum: got 0, want 1"),
        ("atlas", {"unknownKey": True}, "additional properties 'unknownKey' not allowed"),
        ("atlas", {"replicas": "2"}, "at '/replicas': got string, want integer"),
        ("atlas", {"envoy": {"service": {"type": "Ingress"}}}, "at '/envoy/service/type'"),
        ("atlas", {"dns": {"service": {"port": 70000}}}, "at '/dns/service/port'"),
        ("atlas", {"ads": {"port": 0}}, "at '/ads/port': minimum"),
        ("atlas", {"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ("atlas", {"envoy": {"certDir": "relative"}}, "at '/envoy/certDir'"),
        ("atlas", {"serviceMonitor": {"interval": "often"}}, "at '/serviceMonitor/interval'"),
        ("atlas", {"networkPolicy": {"enabled": "yes"}}, "at '/networkPolicy/enabled'"),
        ("atlas", {"observabilityAddress": 42}, "at '/observabilityAddress'"),
        ("envoy", {"nodeId": "East_1"}, "at '/nodeId'"),
        ("envoy", {"certificates": {"tls.crt": "not a cert"}}, "at '/certificates/tls.crt'"),
        ("envoy", {"certificates": {"extra": "x"}}, "additional properties 'extra' not allowed"),
        ("envoy", {"service": {"type": "External"}}, "at '/service/type'"),
        ("envoy", {"alertmanagerReplicas": -1}, "at '/alertmanagerReplicas'"),
        ("envoy", {"hostNetwork": "true"}, "at '/hostNetwork'"),
        ("envoy", {"bootstrap": {"node": {}}}, "at '/bootstrap/node'"),
        ("envoy", {"typo": 1}, "additional properties 'typo' not allowed"),
    ],
)
def test_the_schema_refuses_bad_values(chart: str, values: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHARTS / chart) as loaded, pytest.raises(helm.HelmValuesError) as err:
        loaded.validate_schema(values)
    assert message in str(err.value)


def test_the_envoy_chart_without_atlas_values_fails_with_a_clear_message() -> None:
    with pytest.raises(
        helm.HelmError, match=r"install with the values `atlas cluster values NAME` prints"
    ):
        render("envoy", {}, release="envoy")


def _write_mounts(docs: list[dict[str, Any]], mounts: dict[str, Path]) -> None:
    """Write a rendered pod's ConfigMap and Secret volumes where the test mounts them."""
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] in mounts:
            for key, text in doc["data"].items():
                (mounts[doc["metadata"]["name"]] / key).write_text(text)
        if doc["kind"] == "Secret" and doc["metadata"]["name"] in mounts:
            for key, value in doc["data"].items():
                (mounts[doc["metadata"]["name"]] / key).write_bytes(base64.b64decode(value))


def test_real_envoy_accepts_the_envoy_chart_rendered_with_atlas_cluster_values(
    tmp_path: Path,
) -> None:
    certs, boot = tmp_path / "certs", tmp_path / "bootstrap"
    certs.mkdir()
    boot.mkdir()
    values = cluster_values(tmp_path, "--cert-dir", str(certs))
    docs = objects(render("envoy", values, release="envoy"))
    _write_mounts(docs, {"envoy-bootstrap": boot, "envoy-certificates": certs})
    deployment = find(docs, "Deployment", "envoy")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["--config-path", "/etc/envoy/bootstrap/bootstrap.json"]
    result = envoy_validate(boot / "bootstrap.json", *container["args"][2:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((boot / "bootstrap.json").read_text())["node"]["id"] == "east"


def test_real_envoy_accepts_the_observability_envoy_of_the_atlas_chart(tmp_path: Path) -> None:
    """The chart's Envoy with the bootstrap Secret the Atlas leader writes from the chart's
    own configuration (atlas.serve.reconcile.bootstrap_files)."""
    from atlas.bootstrap import bootstrap_spec
    from atlas.serve.reconcile import bootstrap_files

    docs = objects(render("atlas", {"envoy": {"certDir": str(tmp_path)}}))
    config = yaml.safe_load(find(docs, "ConfigMap", "atlas-config")["data"]["config.yaml"])
    settings = settings_from_mapping(config)
    assert settings.envoy.cert_dir == str(tmp_path)
    deployment = find(docs, "Deployment", "atlas")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    ads = next(a for a in args if a.startswith("--control-plane-service=")).split("=", 1)[1]
    host, port = ads.rsplit(":", 1)
    ca = create_ca()
    spec = bootstrap_spec(settings, settings.observability_node, host, int(port))
    files = bootstrap_files(spec, issue(ca, OBSERVABILITY_URI, server=False), CAState(ca))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    envoy = find(docs, "Deployment", "atlas-envoy")
    (container,) = envoy["spec"]["template"]["spec"]["containers"]
    volume = envoy["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "atlas-envoy-bootstrap"
    assert container["args"][:2] == ["--config-path", str(tmp_path / "bootstrap.json")]
    result = envoy_validate(tmp_path / "bootstrap.json", *container["args"][2:])
    assert result.returncode == 0, result.stdout + result.stderr
    overload = json.loads(files["bootstrap.json"])["overload_manager"]
    limits = {
        m["name"].rpartition(".")[2]: m["typed_config"] for m in overload["resource_monitors"]
    }
    memory = container["resources"]["limits"]["memory"]
    assert memory == "1Gi" and limits["fixed_heap"]["max_heap_size_bytes"] == int(0.8 * 2**30)
    assert limits["global_downstream_max_connections"]["max_active_downstream_connections"] == 50000
    probe = container["readinessProbe"]["httpGet"]
    listeners = json.loads(files["bootstrap.json"])["static_resources"]["listeners"]
    assert listeners[0]["address"]["socket_address"]["port_value"] == settings.envoy.metrics_port
    assert probe["path"] == "/ready"
