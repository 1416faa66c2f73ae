"""``atlas cluster add`` and ``atlas cluster values``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from atlas.cli.common import (
    KUBERNETES,
    Formatter,
    add_kube_args,
    add_source_args,
    directory_pki,
    kube_pki,
    source_directory,
    source_value,
)
from atlas.cli.helm_values import add_values_args, print_values
from atlas.config import Settings
from atlas.documents import load_documents
from atlas.errors import AtlasError, ConfigError
from atlas.manifests import (
    is_cluster_service,
    object_ref,
    parse_cluster,
    parse_selector,
    parse_services,
)
from atlas.model import (
    ANN_ENVOY_ADDRESS,
    LABEL_CLUSTER,
    LABEL_GROUP,
    LABEL_REPLICAS,
    MAX_REPLICAS,
    STOREAPI_PORT,
    Topology,
)
from atlas.names import is_hostname, is_ip
from atlas.pki import cluster_uri
from atlas.values import ui_notes

__all__ = ["add_parser"]

_OBS_ENV = "ATLAS_OBSERVABILITY_ADDRESS"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser(
        "cluster", help="manage downstream clusters", formatter_class=Formatter
    )
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")

    add = csub.add_parser(
        "add",
        help="write a downstream cluster's Service (a manifest, or to Kubernetes)",
        formatter_class=Formatter,
    )
    add.add_argument("name", help="the cluster's name (a DNS label): its SRV targets <name>-<i>")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--external-ip", help="IP where the cluster's Envoy is reachable")
    where.add_argument("--envoy-address", help="DNS name where the cluster's Envoy is reachable")
    add.add_argument(
        "--replicas",
        type=int,
        default=1,
        help=f"Prometheus/Thanos sidecar replicas in that cluster (1..{MAX_REPLICAS}): "
        "one SRV target each",
    )
    add.add_argument("--group", help="DNS group label (goatlas.io/group)")
    add.add_argument(
        "--source",
        required=True,
        type=source_value,
        help="an existing manifests directory, or 'kubernetes' to create the Service",
    )
    add_kube_args(add)
    add.add_argument("--overwrite", action="store_true", help="replace an existing definition")
    add.set_defaults(func=_add)

    values = csub.add_parser(
        "values",
        help="print Helm values for a cluster's Envoy (charts/envoy)",
        formatter_class=Formatter,
    )
    values.add_argument("name", help="the cluster")
    add_source_args(values)
    add_values_args(values)
    values.add_argument(
        "--observability-address",
        default=None,
        help="where downstream Envoys reach the observability Envoy, IP or DNS name "
        f"(required, unless ${_OBS_ENV} gives it)",
    )
    values.add_argument(
        "--ads-port", type=int, default=Settings().observability_ports.ads, help="its ADS port"
    )
    values.set_defaults(func=_values)


def _service(args: argparse.Namespace) -> dict[str, object]:
    labels = {LABEL_CLUSTER: "true", LABEL_REPLICAS: str(args.replicas)}
    if args.group:
        labels[LABEL_GROUP] = args.group
    metadata: dict[str, object] = {"name": args.name, "namespace": args.namespace, "labels": labels}
    spec: dict[str, object] = {
        "type": "ClusterIP",
        "ports": [{"name": "thanos", "port": STOREAPI_PORT}],
    }
    if args.external_ip:
        spec["externalIPs"] = [args.external_ip]
    else:
        metadata["annotations"] = {ANN_ENVOY_ADDRESS: args.envoy_address}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _add(args: argparse.Namespace) -> int:
    if not 1 <= args.replicas <= MAX_REPLICAS:
        raise ConfigError(f"--replicas {args.replicas}: must be 1..{MAX_REPLICAS}")
    service = _service(args)
    parse_cluster(service, namespace=args.namespace)  # never write what serve would reject
    if args.source == KUBERNETES:
        return _kube_add(args, service)
    directory = source_directory(args.source)
    path = directory / f"{args.name}.yaml"
    existing = _defined_elsewhere(directory, args.name, path, args.namespace)
    if existing is not None:
        raise ConfigError(f"cluster {args.name} is already defined in {existing}")
    if path.exists() and not args.overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(service, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


def _kube_add(args: argparse.Namespace, service: dict[str, object]) -> int:
    from atlas.kube import KubeError, connect

    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    try:
        kube.call(
            f"create Service {args.name}",
            kube.core.create_namespaced_service,
            args.namespace,
            service,
        )
    except KubeError as err:
        if err.status != 409:
            raise
        if not args.overwrite:
            raise ConfigError(
                f"Service {args.namespace}/{args.name} exists; pass --overwrite to replace it"
            ) from None
        current = kube.call(
            f"get Service {args.name}", kube.core.read_namespaced_service, args.name, args.namespace
        )
        metadata = service["metadata"]
        assert isinstance(metadata, dict)
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        spec = service["spec"]
        assert isinstance(spec, dict)
        spec["clusterIP"] = current.get("spec", {}).get("clusterIP")
        kube.call(
            f"replace Service {args.name}",
            kube.core.replace_namespaced_service,
            args.name,
            args.namespace,
            service,
        )
    print(f"wrote Service {args.namespace}/{args.name}")
    return 0


def _defined_elsewhere(directory: Path, name: str, own: Path, namespace: str) -> str | None:
    """The file (other than ``own``) whose Service already defines cluster ``name``."""
    for path in sorted(directory.glob("*.y*ml")):
        if path == own or path.name.startswith("."):
            continue
        try:
            docs = load_documents(path, path.read_text(encoding="utf-8"))
        except (AtlasError, OSError, UnicodeDecodeError):
            continue
        for _, obj in docs:
            if is_cluster_service(obj) and object_ref(obj, namespace=namespace).endswith(
                f"/{name}"
            ):
                return str(path)
    return None


def _values(args: argparse.Namespace) -> int:
    from watchers.files import DirectorySource

    settings = Settings()
    address = _observability_address(args)
    if args.source == KUBERNETES:
        alertmanagers = _check_kube_cluster(args, settings)
        pki = kube_pki(args, settings)
    else:
        source_directory(args.source)
        state = DirectorySource(
            args.source,
            namespace=args.namespace,
            alertmanager_selector=settings.alertmanager_selector,
            settle=0,  # one read, now: what the operator just wrote is what they mean
        ).scan()
        if not state.synced:
            raise ConfigError(f"--source {args.source}: cannot be read")
        if state.topology.cluster(args.name) is None:
            raise ConfigError(f"cluster {args.name!r} is not defined in {args.source}")
        alertmanagers = state.topology.alertmanager_replicas
        pki = directory_pki(args.state_dir, settings)
    if alertmanagers == 0:
        print(
            "atlas: warning: no observability Alertmanager found (Services labelled "
            f"{settings.alertmanager_selector} that select one pod): alertmanagerReplicas is 0, "
            "so this cluster's alerts have nowhere to go; add them and print the values again",
            file=sys.stderr,
        )
    header = ui_notes(args.name, address, settings.observability_ports)
    ads = (address, args.ads_port)
    return print_values(
        args,
        pki,
        settings,
        args.name,
        cluster_uri(args.name),
        ads,
        header=header,
        alertmanager_replicas=alertmanagers,
    )


def _observability_address(args: argparse.Namespace) -> str:
    address: str | None = args.observability_address or os.environ.get(_OBS_ENV)
    if not address:
        raise ConfigError(
            f"--observability-address is required (or set ${_OBS_ENV}): where "
            "this cluster's Envoy reaches the observability Envoy, an IP or DNS name"
        )
    if not is_ip(address) and not is_hostname(address):
        raise ConfigError(f"--observability-address {address!r}: not an IP address or DNS name")
    return address


def _check_kube_cluster(args: argparse.Namespace, settings: Settings) -> int:
    """The cluster's Service must exist in the API and be valid; returns the observability
    Alertmanager replicas found there."""
    from atlas.kube import KubeError, connect

    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    try:
        service = kube.call(
            f"get Service {args.name}", kube.core.read_namespaced_service, args.name, args.namespace
        )
    except KubeError as err:
        if err.status == 404:
            raise ConfigError(
                f"cluster {args.name!r} is not defined in namespace {args.namespace}"
            ) from None
        raise
    parse_cluster(service, namespace=args.namespace)
    listed = kube.call(
        "list Services",
        kube.core.list_namespaced_service,
        args.namespace,
        label_selector=settings.alertmanager_selector,
    )
    objects = [(f"kube:{i}", item) for i, item in enumerate(listed.get("items", []))]
    selector = parse_selector(settings.alertmanager_selector)
    result = parse_services(objects, namespace=args.namespace, alertmanager_selector=selector)
    return Topology(alertmanagers=result.alertmanagers).alertmanager_replicas
