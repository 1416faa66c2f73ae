"""The atlas chart's Atlas Deployment, rendered by Helm, run for real with `podman kube play`
from the image tests/prepare.sh built, against the real API server: it syncs, writes the values
Secrets and the observability Envoy's bootstrap, answers DNS, and real Envoys configured only
from those Secrets carry a Thanos Info call end to end; a Service added through the API then
becomes routable.

What stands in for a kubelet: Podman runs the pod with host networking on loopback; the
service-account files (token, CA, namespace) are mounted where Kubernetes mounts them, with the
token of a user bound to exactly the chart's Role; the pod's ports are moved to loopback ports
this test picked, and its probes are left to the test (Podman would run them with a curl the
image does not have): the test asks /readyz itself.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest
import yaml

from atlas.demo.envoy import Envoy
from atlas.demo.ports import free_port, listener_ports
from atlas.kube import Kube
from tests.charts.render import find, objects, render
from tests.containers.podman import podman, require_image, version
from tests.fakes.thanos import Sidecar, info
from tests.kube.cluster import KubeCluster
from tests.kube.conftest import NAMESPACE, cluster_service
from tests.kube.objects import secret, values_of
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _adapt(
    deployment: dict[str, Any], *, ip: str, ports: dict[str, int], api_port: int, sa: Path
) -> dict[str, Any]:
    pod = copy.deepcopy(deployment)
    spec = pod["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    (container,) = spec["containers"]
    moved = {
        "--ads-listen=": f"{ip}:{ports['ads']}",
        "--dns-listen=": f"{ip}:{ports['dns']}",
        "--http-listen=": f"{ip}:{ports['http']}",
        "--control-plane-service=": f"{ip}:{ports['ads']}",
    }
    args = []
    for arg in container["args"]:
        flag = next((f for f in moved if arg.startswith(f)), None)
        args.append(f"{flag}{moved[flag]}" if flag else arg)
    container["args"] = args
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container.pop(probe)
    container.pop("ports")  # host networking: the sockets are the host's, nothing to map
    container["env"] += [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
    ]
    container["volumeMounts"].append({"name": "sa", "mountPath": SA_DIR, "readOnly": True})
    spec["volumes"].append({"name": "sa", "hostPath": {"path": str(sa), "type": "Directory"}})
    return pod


@dataclass
class Net:
    """127.<net>.0.x: Atlas at .5, the observability Envoy at .10, downstream Envoys at .11-13,
    sidecars at .21-23; every port picked free for this run."""

    net: int = field(default_factory=lambda: random.randint(100, 250))

    def ip(self, last: int) -> str:
        return f"127.{self.net}.0.{last}"

    def __post_init__(self) -> None:
        self.atlas, self.obs = self.ip(5), self.ip(10)
        self.envoy = {"east": self.ip(11), "west": self.ip(12), "north": self.ip(13)}
        self.sidecar = {"east": self.ip(21), "west": self.ip(22), "north": self.ip(23)}
        hosts = [self.obs, *self.envoy.values()]
        self.obs_ports, self.ds_ports = listener_ports(*hosts)
        self.ports = {k: free_port(self.atlas) for k in ("ads", "dns", "http")}
        self.sidecar_port = free_port(*self.sidecar.values())


TIMINGS = {
    "lease": {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.3},
    "watch": {"backoff_initial": 0.1, "backoff_max": 0.5, "reconcile_interval": 0.5},
}


def _image_values(image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    return {
        "replicas": 1,
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
    }


def _service_account(kube_cluster: KubeCluster, sa: Path) -> Path:
    """The files Kubernetes mounts for the pod's ServiceAccount: the token of a user bound to
    exactly the chart's Role."""
    sa.mkdir(mode=0o755)
    (sa / "token").write_text(kube_cluster.tokens["limited"])
    (sa / "ca.crt").write_bytes((kube_cluster.pki / "ca.crt").read_bytes())
    (sa / "namespace").write_text(NAMESPACE)
    for f in sa.iterdir():
        f.chmod(0o644)
    return sa


def test_two_releases_run_side_by_side_in_one_namespace(
    kube_cluster: KubeCluster, admin: Kube, tmp_path: Path
) -> None:
    """Releases atlas and staging in one namespace, each Atlas in its own container: each
    leads through its own Lease and writes its own bootstrap and values, with its own CA."""
    image = require_image()
    sa = _service_account(kube_cluster, tmp_path / "serviceaccount")
    n = Net()
    admin.call(
        "create",
        admin.core.create_namespaced_service,
        NAMESPACE,
        cluster_service("east", n.envoy["east"], n.sidecar["east"], n.sidecar_port),
    )
    plays: list[Path] = []
    try:
        for release, last in (("atlas", 5), ("staging", 6)):
            ip = n.ip(last)
            ports = {k: free_port(ip) for k in ("ads", "dns", "http")}
            values = {**_image_values(image), "observabilityAddress": n.obs, "settings": TIMINGS}
            docs = objects(render("atlas", values, release=release))
            fullname = "atlas" if release == "atlas" else f"{release}-atlas"
            pod = _adapt(
                find(docs, "Deployment", fullname),
                ip=ip,
                ports=ports,
                api_port=kube_cluster.api_port,
                sa=sa,
            )
            play = tmp_path / f"play-{release}.yaml"
            play.write_text(
                yaml.safe_dump_all([find(docs, "ConfigMap", f"{fullname}-config"), pod])
            )
            podman("kube", "play", str(play))
            plays.append(play)
        for instance, values_secret in (
            ("atlas", "east-envoy-values"),
            ("staging-atlas", "staging-atlas-east-envoy-values"),
        ):
            wait_until(
                partial(secret, admin, f"{instance}-envoy-bootstrap"), within=60, what=instance
            )
            wait_until(partial(values_of, admin, values_secret), within=30, what=values_secret)
        leases = admin.call("list", admin.coordination.list_namespaced_lease, NAMESPACE)
        assert {lease["metadata"]["name"] for lease in leases["items"]} == {
            "atlas",
            "staging-atlas",
        }
        cas = {
            (secret(admin, f"{i}-ca") or {})["data"]["ca.crt"] for i in ("atlas", "staging-atlas")
        }
        assert len(cas) == 2
    finally:
        for play in plays:
            podman("kube", "down", str(play), check=False)


def test_the_chart_runs_under_podman_and_carries_thanos_traffic(
    kube_cluster: KubeCluster, admin: Kube, tmp_path: Path
) -> None:
    image = require_image()
    n = Net()
    tag = image.rsplit(":", 1)[1]
    values = {
        **_image_values(image),
        "observabilityAddress": n.obs,
        "settings": {
            "observability_ports": n.obs_ports,
            "downstream_ports": n.ds_ports,
            "network": {
                "observability_listen_address": n.obs,
                "downstream_listen_address": "envoy-address",
                "control_plane_address": n.atlas,
                "control_plane_port": n.ports["ads"],
                "connect_timeout": 1.0,
            },
            "envoy": {"admin_port": 0, "metrics_port": 0, "cert_dir": "certs"},
            **TIMINGS,
        },
    }
    docs = objects(render("atlas", values))
    sa = _service_account(kube_cluster, tmp_path / "serviceaccount")
    play = tmp_path / "play.yaml"
    pod = _adapt(
        find(docs, "Deployment", "atlas"),
        ip=n.atlas,
        ports=n.ports,
        api_port=kube_cluster.api_port,
        sa=sa,
    )
    play.write_text(yaml.safe_dump_all([find(docs, "ConfigMap", "atlas-config"), pod]))

    sidecars = {
        name: Sidecar(host, n.sidecar_port, {"cluster": name}) for name, host in n.sidecar.items()
    }
    envoys: dict[str, Envoy] = {}
    podman("kube", "play", str(play))
    try:
        _exercise(admin, tmp_path, n, envoys)
    except BaseException:
        print(podman("logs", "atlas-pod-0-atlas", check=False).stderr[-6000:])
        raise
    finally:
        for envoy in envoys.values():
            envoy.stop()
        podman("kube", "down", str(play), check=False)
        for sidecar in sidecars.values():
            sidecar.stop()
    assert version() == tag


def _exercise(admin: Kube, root: Path, n: Net, envoys: dict[str, Envoy]) -> None:
    atlas_ip, obs, ports = n.atlas, n.obs, n.ports

    def ready() -> bool:
        url = f"http://{atlas_ip}:{ports['http']}/readyz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    for name in ("east", "west"):
        admin.call(
            "create",
            admin.core.create_namespaced_service,
            NAMESPACE,
            cluster_service(name, n.envoy[name], n.sidecar[name], n.sidecar_port),
        )
    wait_until(ready, within=60, what="Atlas in the container: synced and published (/readyz)")
    with urllib.request.urlopen(f"http://{atlas_ip}:{ports['http']}/status", timeout=2) as r:
        status = json.loads(r.read())
    assert status["leader"] is True and [c["name"] for c in status["clusters"]] == ["east", "west"]

    boot = wait_until(lambda: secret(admin, "atlas-envoy-bootstrap"), within=30, what="bootstrap")
    obs_dir = root / "envoy-atlas"
    (obs_dir / "certs").mkdir(parents=True)
    files = {k: base64.b64decode(v) for k, v in boot["data"].items()}
    for name, content in files.items():  # the whole Secret, as the pod mounts it
        (obs_dir / "certs" / name).write_bytes(content)
    envoys["atlas"] = Envoy("atlas", obs_dir, json.loads(files["bootstrap.json"]))
    envoys["atlas"].start()
    for name in ("east", "west"):
        values = wait_until(partial(values_of, admin, f"{name}-envoy-values"), within=30, what=name)
        envoys[name] = Envoy.from_values(name, root / f"envoy-{name}", values)

    port = n.obs_ports["thanos"]

    def thanos(target: str) -> dict[str, str]:
        return info(f"{obs}:{port}", f"{target}.sidecars.thanos.atlas.:{port}")

    wait_until(
        lambda: thanos("east-0") == {"cluster": "east"}, within=30, what="east through Envoys"
    )
    wait_until(lambda: thanos("west-0") == {"cluster": "west"}, within=30, what="west too")

    def srv_targets() -> list[str]:
        query = dns.message.make_query("_grpc._tcp.sidecars.thanos.atlas.", "SRV")
        response = dns.query.udp(query, atlas_ip, port=ports["dns"], timeout=2)
        return sorted(str(rd.target) for rrset in response.answer for rd in rrset)

    assert srv_targets() == ["east-0.sidecars.thanos.atlas.", "west-0.sidecars.thanos.atlas."]

    admin.call(
        "create",
        admin.core.create_namespaced_service,
        NAMESPACE,
        cluster_service("north", n.envoy["north"], n.sidecar["north"], n.sidecar_port),
    )
    north = wait_until(lambda: values_of(admin, "north-envoy-values"), within=30, what="north")
    envoys["north"] = Envoy.from_values("north", root / "envoy-north", north)
    wait_until(lambda: thanos("north-0") == {"cluster": "north"}, within=30, what="north routable")
    assert "north-0.sidecars.thanos.atlas." in srv_targets()
