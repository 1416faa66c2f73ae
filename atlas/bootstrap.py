"""Envoy bootstrap documents for the observability and downstream proxies (pure functions).

A bootstrap only says who the proxy is and how to reach Atlas's ADS over mutual TLS; every
listener, route, cluster and leaf certificate then arrives over ADS/SDS. The proxy accepts
only Atlas's control-plane identity as the ADS server.

The ADS credential itself (certificate, key, trust bundle) is read through SDS from files
(``credential_watch_files``) in the directory the pod mounts it from, which Envoy watches: when
the kubelet swaps a renewed Secret in, or an operator moves new files in, Envoy takes the new
credential for its next ADS connection without a restart. Read as plain files, it kept the
first one until restarted, and lost ADS once that one expired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.config import EnvoySettings, Settings
from atlas.names import is_ip
from atlas.pki import CONTROL_PLANE_URI

__all__ = [
    "ADS_CERTIFICATE",
    "ADS_CLUSTER",
    "ADS_TRUST",
    "BootstrapSpec",
    "CertPaths",
    "bootstrap_spec",
    "build_bootstrap",
    "credential_watch_files",
    "local_bootstrap",
]

ADS_CLUSTER = "atlas_ads"
ADS_CERTIFICATE = "atlas_ads_certificate"
"""The SDS secret of the ADS client certificate and key, read from a file."""
ADS_TRUST = "atlas_ads_trust"
"""The SDS secret of the trust bundle that Atlas's ADS server certificate is checked against."""
_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_HTTP_OPTS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_ENVOY = EnvoySettings()
"""Defaults of the admin interface and certificate directory (``atlas.config``)."""


@dataclass(frozen=True)
class CertPaths:
    """Where the proxy finds its bootstrap credential on disk (mounted from a Secret)."""

    directory: str = _ENVOY.cert_dir

    @property
    def ca(self) -> str:
        return f"{self.directory}/ca.crt"

    @property
    def cert(self) -> str:
        return f"{self.directory}/tls.crt"

    @property
    def key(self) -> str:
        return f"{self.directory}/tls.key"

    @property
    def certificate_source(self) -> str:
        """The SDS file naming the certificate and key (``credential_watch_files``)."""
        return f"{self.directory}/{CERTIFICATE_SOURCE}"

    @property
    def trust_source(self) -> str:
        """The SDS file naming the trust bundle."""
        return f"{self.directory}/{TRUST_SOURCE}"


CERTIFICATE_SOURCE = "ads-certificate.json"
TRUST_SOURCE = "ads-trust.json"


def credential_watch_files(certs: CertPaths) -> dict[str, str]:
    """The two SDS files the bootstrap reads its credential through, by file name: they name
    the credential's files and the directory whose changes make Envoy read them again. They
    hold no key; they go where the credential goes (the same Secret, the same directory)."""
    watched = {"path": certs.directory}
    certificate = {
        "@type": _SECRET,
        "name": ADS_CERTIFICATE,
        "tls_certificate": {
            "certificate_chain": {"filename": certs.cert},
            "private_key": {"filename": certs.key},
            "watched_directory": watched,
        },
    }
    trust = {
        "@type": _SECRET,
        "name": ADS_TRUST,
        "validation_context": {"trusted_ca": {"filename": certs.ca}, "watched_directory": watched},
    }
    return {
        CERTIFICATE_SOURCE: json.dumps({"resources": [certificate]}, indent=2),
        TRUST_SOURCE: json.dumps({"resources": [trust]}, indent=2),
    }


def _watched_file(path: str, directory: str) -> dict[str, Any]:
    """An SDS source read from ``path``, read again when an entry is moved into
    ``directory`` (the kubelet's atomic swap of a Secret volume, or a rename)."""
    return {
        "path_config_source": {"path": path, "watched_directory": {"path": directory}},
        "resource_api_version": "V3",
    }


@dataclass(frozen=True, kw_only=True)
class BootstrapSpec:
    node_id: str
    ads_host: str
    ads_port: int
    certs: CertPaths = CertPaths()
    api_type: str = "GRPC"
    """``GRPC`` (state of the world) or ``DELTA_GRPC``."""
    admin_address: str = _ENVOY.admin_address
    admin_port: int = _ENVOY.admin_port
    metrics_port: int = 0
    """A listener on all addresses serving only ``/stats/prometheus`` and ``/ready`` from the
    admin interface (which stays on loopback); 0: none."""
    max_downstream_connections: int = EnvoySettings().max_downstream_connections
    """The overload manager's limit on connections over all listeners (0: no overload
    manager). Every Envoy has one: each is a front door to something (the observability
    Envoy to every cluster, a downstream Envoy to its sidecars and Prometheus)."""
    max_heap_bytes: int = 0
    """The overload manager's heap limit (0: heap not watched)."""
    ads_retry_max: float = _ENVOY.ads_retry_max
    """Seconds at most between attempts to reach Atlas again (``envoy.ads_retry_max``)."""


def bootstrap_spec(
    settings: Settings, node: str, ads_host: str, ads_port: int, *, api_type: str | None = None
) -> BootstrapSpec:
    """A node's bootstrap with the admin interface and certificate directory of ``settings``.
    ``api_type`` None: ``envoy.observability_api_type`` for the observability node, state of
    the world for a downstream one."""
    envoy = settings.envoy
    front_door = node == settings.observability_node
    if api_type is None:
        api_type = envoy.observability_api_type if front_door else "GRPC"
    return BootstrapSpec(
        node_id=node,
        ads_host=ads_host,
        ads_port=ads_port,
        certs=CertPaths(envoy.cert_dir),
        api_type=api_type,
        admin_address=envoy.admin_address,
        admin_port=envoy.admin_port,
        metrics_port=envoy.metrics_port,
        max_downstream_connections=envoy.max_downstream_connections,
        max_heap_bytes=envoy.max_heap_bytes if front_door else 0,
        ads_retry_max=envoy.ads_retry_max,
    )


def local_bootstrap(
    node: str,
    ads: tuple[str, int],
    certs: Path,
    admin: tuple[str, int],
    *,
    api_type: str = "GRPC",
) -> dict[str, Any]:
    """The bootstrap of an Envoy run outside Kubernetes (the demo, the tests, the benchmarks):
    ADS at ``ads``, the admin interface at ``admin``, and its credential where
    ``CertificateManager.install_bootstrap`` wrote it (``certs``)."""
    spec = BootstrapSpec(
        node_id=node,
        ads_host=ads[0],
        ads_port=ads[1],
        certs=CertPaths(str(certs)),
        api_type=api_type,
        admin_address=admin[0],
        admin_port=admin[1],
    )
    return build_bootstrap(spec)


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def build_bootstrap(spec: BootstrapSpec) -> dict[str, Any]:
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    certs = spec.certs
    tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TLS,
            "sni": "atlas",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [
                    {
                        "name": ADS_CERTIFICATE,
                        "sds_config": _watched_file(certs.certificate_source, certs.directory),
                    }
                ],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": CONTROL_PLANE_URI}}
                        ],
                    },
                    "validation_context_sds_secret_config": {
                        "name": ADS_TRUST,
                        "sds_config": _watched_file(certs.trust_source, certs.directory),
                    },
                },
            },
        },
    }
    ads_cluster = {
        "name": ADS_CLUSTER,
        # A DNS name may point anywhere over time; an IP needs no resolution at all.
        "type": "STATIC" if is_ip(spec.ads_host) else "LOGICAL_DNS",
        "connect_timeout": "5s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTS,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "15s", "timeout": "5s"}
                    }
                },
            }
        },
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket(spec.ads_host, spec.ads_port)}}]}
            ],
        },
        "transport_socket": tls,
    }
    bootstrap = {
        "node": {"id": spec.node_id, "cluster": spec.node_id},
        "admin": {"address": _socket(spec.admin_address, spec.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": spec.api_type,
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": _ads_grpc(spec)}],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": _with_metrics({"clusters": [ads_cluster]}, spec),
    }
    if spec.max_downstream_connections:
        bootstrap["overload_manager"] = _overload_manager(spec)
    return bootstrap


_ADS_RETRY_BASE = 0.5
"""Envoy's own first retry interval, kept; only its cap (30 s) is lowered."""


def _ads_grpc(spec: BootstrapSpec) -> dict[str, Any]:
    back_off = {
        "base_interval": f"{_ADS_RETRY_BASE}s",
        "max_interval": f"{spec.ads_retry_max:g}s",
    }
    return {"cluster_name": ADS_CLUSTER, "retry_policy": {"retry_back_off": back_off}}


_MONITORS = "type.googleapis.com/envoy.extensions.resource_monitors"
_HEAP = "envoy.resource_monitors.fixed_heap"


def _overload_manager(spec: BootstrapSpec) -> dict[str, Any]:
    """Envoy protects itself before the kernel or the kubelet does: past the connection limit
    new connections are refused; near the heap limit it frees memory (90 %), stops keep-alive
    (95 %) and answers 503 (98 %) instead of being killed for memory with every stream."""
    monitors: list[dict[str, Any]] = [
        {
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": f"{_MONITORS}.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": spec.max_downstream_connections,
            },
        }
    ]
    actions: list[dict[str, Any]] = []
    if spec.max_heap_bytes:
        monitors.append(
            {
                "name": _HEAP,
                "typed_config": {
                    "@type": f"{_MONITORS}.fixed_heap.v3.FixedHeapConfig",
                    "max_heap_size_bytes": spec.max_heap_bytes,
                },
            }
        )
        actions = [
            {
                "name": f"envoy.overload_actions.{action}",
                "triggers": [{"name": _HEAP, "threshold": {"value": value}}],
            }
            for action, value in (
                ("shrink_heap", 0.90),
                ("disable_http_keepalive", 0.95),
                ("stop_accepting_requests", 0.98),
            )
        ]
    return {"refresh_interval": "0.25s", "resource_monitors": monitors, "actions": actions}


ADMIN_CLUSTER = "envoy_admin"
_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _with_metrics(static: dict[str, Any], spec: BootstrapSpec) -> dict[str, Any]:
    """Prometheus scrapes ``/stats/prometheus`` and the kubelet probes ``/ready`` on
    ``metrics_port``, while the admin interface (which can also stop the proxy) stays on
    loopback: two paths routed to it, nothing else."""
    if not spec.metrics_port or not spec.admin_port:
        return static
    admin = {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket(spec.admin_address, spec.admin_port)}}
                    ]
                }
            ],
        },
    }
    routes = [
        {"match": {"path": path}, "route": {"cluster": ADMIN_CLUSTER}}
        for path in ("/stats/prometheus", "/ready")
    ]
    listener = {
        "name": "metrics",
        "address": _socket("0.0.0.0", spec.metrics_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "metrics",
                            "route_config": {
                                "virtual_hosts": [
                                    {"name": "metrics", "domains": ["*"], "routes": routes}
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
    return {"clusters": [*static["clusters"], admin], "listeners": [listener]}
