"""The ``atlas`` command: argument parsing only; each command calls into the library."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from atlas.bootstrap import BootstrapSpec, CertPaths
from atlas.config import DEFAULT_ADS_PORT, DEFAULT_NAMESPACE, Settings, settings_from_mapping
from atlas.errors import AtlasError, ConfigError
from atlas.manifests import is_cluster_service, object_ref, parse_cluster
from atlas.model import ANN_ENVOY_ADDRESS, LABEL_CLUSTER, LABEL_GROUP, LABEL_REPLICAS
from atlas.names import is_ip
from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore
from atlas.values import FORMATS, envoy_values, render

__all__ = ["main"]

DEFAULT_STATE_DIR = ".atlas"
KUBERNETES = "kubernetes"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="atlas",
        description="Envoy xDS control plane and authoritative DNS for Thanos across clusters.",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon")
    _source_args(serve)
    serve.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the Atlas namespace")
    serve.add_argument("--config", help="YAML settings file (ports, addresses, lifetimes)")
    serve.add_argument(
        "--envoy-service-ip",
        action="append",
        default=[],
        metavar="IP",
        help="in-cluster address of the observability Envoy, answered in DNS (repeatable)",
    )
    serve.add_argument(
        "--observability-address",
        help="where downstream Envoys reach the observability Envoy (alert relay)",
    )
    serve.add_argument(
        "--control-plane-address",
        help="where the observability Envoy reaches Atlas's gRPC port (HOST:PORT)",
    )
    serve.add_argument("--ads-listen", default="0.0.0.0:18000", help="gRPC (ADS) HOST:PORT")
    serve.add_argument("--identity", help="this replica's name in the leader Lease")
    serve.add_argument(
        "--control-plane-service",
        help="Atlas's gRPC HOST:PORT as the observability Envoy sees it (for its values)",
    )
    serve.add_argument(
        "--ads-insecure",
        action="store_true",
        help="plaintext ADS without client certificates (tests, demos only)",
    )
    serve.add_argument(
        "--dns-listen",
        action="append",
        default=None,
        metavar="HOST:PORT",
        help="DNS over UDP and TCP (repeatable; default 0.0.0.0:5353, the container uses :53)",
    )
    serve.add_argument(
        "--http-listen", default="0.0.0.0:9180", help="metrics and status HOST:PORT ('' disables)"
    )

    cluster = sub.add_parser("cluster", help="manage downstream clusters")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")
    add = csub.add_parser("add", help="write a downstream cluster's Service manifest")
    add.add_argument("name")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--external-ip", help="IP where the cluster's Envoy is reachable")
    where.add_argument("--envoy-address", help="DNS name where the cluster's Envoy is reachable")
    add.add_argument("--replicas", type=int, default=1)
    add.add_argument("--group", help="DNS group label (goatlas.io/group)")
    add.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    add.add_argument(
        "--source", required=True, help="manifests directory, or 'kubernetes' to create the Service"
    )
    _kube_args(add)
    add.add_argument("--overwrite", action="store_true", help="replace an existing manifest")

    values = csub.add_parser("values", help="print Helm values for a cluster's Envoy")
    values.add_argument("name")
    _source_args(values)
    _values_args(values)
    values.add_argument(
        "--observability-address",
        default=os.environ.get("ATLAS_OBSERVABILITY_ADDRESS"),
        required="ATLAS_OBSERVABILITY_ADDRESS" not in os.environ,
        help="where downstream Envoys reach the observability Envoy (IP or DNS name)",
    )
    values.add_argument("--ads-port", type=int, default=Settings().observability_ports.ads)

    obs = sub.add_parser("observability", help="the observability Envoy")
    osub = obs.add_subparsers(dest="obs_command", required=True, metavar="COMMAND")
    ovalues = osub.add_parser("values", help="print Helm values for the observability Envoy")
    ovalues.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    _values_args(ovalues)
    ovalues.add_argument(
        "--ads-address",
        default=f"atlas.{DEFAULT_NAMESPACE}.svc.cluster.local",
        help="Atlas's gRPC address as seen from the observability Envoy",
    )
    ovalues.add_argument("--ads-port", type=int, default=DEFAULT_ADS_PORT)

    ca = sub.add_parser("ca", help="the Atlas CA")
    casub = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    for name, text in (
        ("rotate", "issue a new CA; the old one stays trusted until drop-previous"),
        ("drop-previous", "stop trusting earlier CAs (after every leaf was re-issued)"),
    ):
        c = casub.add_parser(name, help=text)
        c.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
        c.add_argument("--source", default="", help="'kubernetes' to act on the atlas-ca Secret")
        c.add_argument("--namespace", default=DEFAULT_NAMESPACE)
        _kube_args(c)
    return p


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source", required=True, help="manifests directory, or 'kubernetes' to use the API"
    )
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="PKI state directory")
    _kube_args(p)


def _kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    p.add_argument("--kube-context", help="kubeconfig context")


def _values_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="raw")
    p.add_argument(
        "--cert-dir",
        default=CertPaths().directory,
        help="where the chart mounts the certificates in the Envoy pod",
    )
    p.add_argument("--api-type", choices=["GRPC", "DELTA_GRPC"], default="GRPC")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE)


def _cmd_serve(args: argparse.Namespace) -> int:
    from atlas.daemon import ServeOptions, run

    if args.source != KUBERNETES and not Path(args.source).is_dir():
        raise ConfigError(f"--source {args.source}: not a directory (or 'kubernetes')")
    for address in args.envoy_service_ip:
        if not is_ip(address):
            raise ConfigError(f"--envoy-service-ip {address!r}: not an IP address")
    settings = _load_settings(args.config)
    network = settings.network
    if args.observability_address:
        network = dataclasses.replace(network, observability_address=args.observability_address)
    if args.control_plane_address:
        host, _, port = args.control_plane_address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"--control-plane-address {args.control_plane_address!r}: not HOST:PORT"
            )
        network = dataclasses.replace(
            network, control_plane_address=host.strip("[]"), control_plane_port=int(port)
        )
    settings = dataclasses.replace(settings, namespace=args.namespace, network=network)
    return run(
        ServeOptions(
            source=args.source,
            state_dir=args.state_dir,
            settings=settings,
            dns_addresses=tuple(args.envoy_service_ip),
            ads_listen=args.ads_listen,
            ads_tls=not args.ads_insecure,
            http_listen=args.http_listen,
            dns_listen=tuple(args.dns_listen or ["0.0.0.0:5353"]),
            kubeconfig=args.kubeconfig,
            kube_context=args.kube_context,
            identity=args.identity,
            control_plane_service=args.control_plane_service,
        )
    )


def _load_settings(path: str | None) -> Settings:
    if not path:
        return Settings()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--config {path}: {err}") from None
    return settings_from_mapping(data, source=path)


def _cmd_cluster_add(args: argparse.Namespace) -> int:
    labels = {LABEL_CLUSTER: "true", LABEL_REPLICAS: str(args.replicas)}
    if args.group:
        labels[LABEL_GROUP] = args.group
    metadata: dict[str, object] = {"name": args.name, "namespace": args.namespace, "labels": labels}
    spec: dict[str, object] = {"type": "ClusterIP", "ports": [{"name": "thanos", "port": 10901}]}
    if args.external_ip:
        spec["externalIPs"] = [args.external_ip]
    else:
        metadata["annotations"] = {ANN_ENVOY_ADDRESS: args.envoy_address}
    service: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": spec,
    }
    parse_cluster(service, namespace=args.namespace)  # never write what serve would reject
    if args.source == KUBERNETES:
        return _kube_cluster_add(args, service)

    directory = Path(args.source)
    directory.mkdir(parents=True, exist_ok=True)
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


def _kube_cluster_add(args: argparse.Namespace, service: dict[str, object]) -> int:
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
    from watchers.files import load_documents

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


def _cmd_cluster_values(args: argparse.Namespace) -> int:
    from watchers.files import DirectorySource

    settings = Settings()
    if args.source == KUBERNETES:
        pki = _kube_pki(args, settings)
    else:
        state = DirectorySource(args.source, namespace=args.namespace).scan()
        if not state.synced:
            raise ConfigError(f"--source {args.source}: cannot be read")
        if state.topology.cluster(args.name) is None:
            raise ConfigError(f"cluster {args.name!r} is not defined in {args.source}")
        pki = CertificateManager(DirectoryStore(args.state_dir), settings.pki)
    return _print_values(args, pki, args.name, cluster_uri(args.name), args.observability_address)


def _kube_pki(args: argparse.Namespace, settings: Settings) -> CertificateManager:
    """Check the cluster's Service in the API; PKI material lives in the namespace's Secrets."""
    from atlas.kube import KubeError, connect
    from atlas.pki_kube import KubeSecretStore

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
    return CertificateManager(KubeSecretStore(kube, args.namespace), settings.pki)


def _cmd_observability_values(args: argparse.Namespace) -> int:
    pki = CertificateManager(DirectoryStore(args.state_dir), Settings().pki)
    node = Settings().observability_node
    return _print_values(args, pki, node, OBSERVABILITY_URI, args.ads_address)


def _print_values(
    args: argparse.Namespace, pki: CertificateManager, node: str, uri: str, ads_host: str
) -> int:
    """Issue (or reuse) the node's bootstrap credential and print its Helm values."""
    settings = Settings()
    credential = pki.credential(
        f"bootstrap-{node}", uri, server=False, lifetime=settings.pki.bootstrap_lifetime
    )
    spec = BootstrapSpec(
        node_id=node,
        ads_host=ads_host,
        ads_port=args.ads_port,
        certs=CertPaths(args.cert_dir),
        api_type=args.api_type,
    )
    values = envoy_values(spec, credential, pki.ca())
    sys.stdout.write(render(values, args.format, namespace=args.namespace, release="atlas-envoy"))
    return 0


def _cmd_ca(args: argparse.Namespace) -> int:
    if args.source == KUBERNETES:
        return _kube_ca(args)
    pki = CertificateManager(DirectoryStore(args.state_dir), Settings().pki)
    if args.ca_command == "rotate":
        state = pki.rotate_ca()
        print(
            f"new CA valid until {state.current.not_after:%Y-%m-%d}; "
            f"{len(state.previous)} previous CA(s) still trusted"
        )
    else:
        pki.drop_previous_cas()
        print("previous CAs dropped from the trust bundle")
    return 0


def _kube_ca(args: argparse.Namespace) -> int:
    """Ask the leader (through the CA Secret) rather than race it: it rotates and re-issues."""
    from atlas.kube import connect
    from atlas.model import ANN_CA_ROTATE
    from atlas.pki_kube import CA_SECRET, KubeSecretStore

    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    if args.ca_command == "rotate":
        patch = {"metadata": {"annotations": {ANN_CA_ROTATE: "requested"}}}
        kube.call(
            f"patch Secret {CA_SECRET}",
            kube.core.patch_namespaced_secret,
            CA_SECRET,
            args.namespace,
            patch,
        )
        print(f"rotation requested on Secret {args.namespace}/{CA_SECRET}; the leader rotates")
        return 0
    pki = CertificateManager(KubeSecretStore(kube, args.namespace), Settings().pki)
    pki.drop_previous_cas()
    print("previous CAs dropped from the trust bundle")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handlers = {
        "serve": _cmd_serve,
        "cluster": lambda a: (
            _cmd_cluster_add if a.cluster_command == "add" else _cmd_cluster_values
        )(a),
        "observability": _cmd_observability_values,
        "ca": _cmd_ca,
    }
    try:
        return handlers[args.command](args)
    except AtlasError as err:
        print(f"atlas: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
