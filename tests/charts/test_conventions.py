"""The atlas chart follows Helm's conventions, with cert-manager's and kube-prometheus-stack's
charts as the anchors: names derived from the release and overridable, ServiceAccount
annotations, extra arguments and environment, pod labels, images pinned by digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from atlas.config import settings_from_mapping
from atlas.instance import InstanceNames
from tests.charts.render import cluster_values, find, objects, render

DIGEST = "sha256:" + "ab" * 32


def names(docs: list[dict[str, Any]]) -> set[str]:
    return {d["metadata"]["name"] for d in docs}


def test_names_follow_the_release_and_the_overrides() -> None:
    assert "observability-atlas" in names(objects(render("atlas", release="observability")))
    assert "observability-hub" in names(
        objects(render("atlas", {"nameOverride": "hub"}, release="observability"))
    )
    overridden = objects(render("atlas", {"fullnameOverride": "edge"}, release="observability"))
    deployments = {d["metadata"]["name"] for d in overridden if d["kind"] == "Deployment"}
    assert deployments == {"edge", "edge-envoy"}


def test_images_can_be_pinned_by_digest() -> None:
    docs = objects(
        render("atlas", {"image": {"digest": DIGEST}, "envoy": {"image": {"digest": DIGEST}}})
    )
    atlas = find(docs, "Deployment", "atlas")["spec"]["template"]["spec"]["containers"][0]
    envoy = find(docs, "Deployment", "atlas-envoy")["spec"]["template"]["spec"]["containers"][0]
    assert atlas["image"] == f"ghcr.io/atlas-xds/atlas@{DIGEST}"
    assert envoy["image"] == f"docker.io/envoyproxy/envoy@{DIGEST}"


def test_extra_args_env_pod_labels_and_service_account_annotations() -> None:
    values = {
        "extraArgs": ["--log-level=debug"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "podLabels": {"team": "observability"},
        "serviceAccount": {"annotations": {"iam.example.net/role": "atlas"}},
    }
    docs = objects(render("atlas", values))
    deployment = find(docs, "Deployment", "atlas")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"][-1] == "--log-level=debug"
    assert {"name": "TZ", "value": "UTC"} in container["env"]
    assert pod["metadata"]["labels"]["team"] == "observability"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"], "the selector stays"
    account = find(docs, "ServiceAccount", "atlas")
    assert account["metadata"]["annotations"] == {"iam.example.net/role": "atlas"}


def test_helm_test_checks_readiness_and_dns_with_atlas_status() -> None:
    """The hook runs ``atlas status`` against the release's own Services; the network
    policy lets it reach the HTTP port."""
    from atlas.cli import build_parser

    docs = objects(render("atlas", release="obs"))
    hook = find(docs, "Pod", "obs-atlas-test-serving")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = hook["spec"]["containers"][0]["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.url == ["http://obs-atlas-metrics.monitoring.svc:9180/status"]
    assert parsed.dns == "obs-atlas-dns.monitoring.svc:53"
    assert parsed.only_atlas and parsed.no_probe
    policy = find(docs, "NetworkPolicy", "obs-atlas")["spec"]["ingress"][2]["from"]
    assert {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "atlas-test",
                "app.kubernetes.io/instance": "obs",
            }
        }
    } in policy


def test_the_envoy_chart_follows_the_same_conventions(tmp_path: Path) -> None:
    values = cluster_values(tmp_path) | {
        "fullnameOverride": "edge-proxy",
        "image": {"digest": DIGEST},
        "extraArgs": ["--component-log-level", "upstream:debug"],
        "podLabels": {"team": "observability"},
    }
    docs = objects(render("envoy", values))
    deployment = find(docs, "Deployment", "edge-proxy")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"docker.io/envoyproxy/envoy@{DIGEST}"
    assert container["args"][-2:] == ["--component-log-level", "upstream:debug"]
    assert pod["metadata"]["labels"]["team"] == "observability"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]


def runtime_names(docs: list[dict[str, Any]]) -> tuple[InstanceNames, set[tuple[str, str]]]:
    """The instance the release's Atlas runs as, and the objects (kind, name) it writes
    itself (for a cluster east), from the settings the chart hands it."""
    config = find(docs, "ConfigMap", next(n for n in names(docs) if n.endswith("-config")))
    settings = settings_from_mapping(yaml.safe_load(config["data"]["config.yaml"]))
    n = settings.names
    secrets = {
        n.ca_secret,
        n.last_good,
        n.observability_values,
        n.observability_bootstrap,
        n.values_secret("east"),
        *(n.credential_secret(c) for c in ("node-east", "bootstrap-east", "observability")),
    }
    return n, {("Lease", n.lease)} | {("Secret", s) for s in secrets}


def test_two_releases_share_a_namespace_without_a_collision() -> None:
    first, second = render("atlas"), render("atlas", release="staging")
    docs = {"atlas": objects(first), "staging": objects(second)}
    kinds = {r: {(d["kind"], d["metadata"]["name"]) for d in found} for r, found in docs.items()}
    assert not kinds["atlas"] & kinds["staging"]
    (a, a_written), (b, b_written) = runtime_names(docs["atlas"]), runtime_names(docs["staging"])
    assert not a_written & b_written
    for release, n, written in (("atlas", a, a_written), ("staging", b, b_written)):
        assert not written & kinds[release], (release, written & kinds[release])
        envoy = find(docs[release], "Deployment", f"{n.instance}-envoy")
        mounted = {
            v["secret"]["secretName"]
            for v in envoy["spec"]["template"]["spec"]["volumes"]
            if "secret" in v
        }
        assert mounted == {n.observability_bootstrap}
    # The release named atlas keeps the names an earlier Atlas (and goatlas.io/atlas) used.
    assert (a.lease, a.ca_secret, a.values_secret("east")) == (
        "atlas",
        "atlas-ca",
        "east-envoy-values",
    )
    assert b.instance == "staging-atlas" and b.lease == "staging-atlas"
    notes = second["atlas/templates/NOTES.txt"]
    assert f"get secret {b.values_secret('east')} " in notes
    assert f"Secret {b.observability_bootstrap} " in notes


def test_an_earlier_release_keeps_its_instance_when_told() -> None:
    docs = objects(render("atlas", {"instance": "atlas"}, release="observability"))
    n, _ = runtime_names(docs)
    assert (n.instance, n.ca_secret) == ("atlas", "atlas-ca")
