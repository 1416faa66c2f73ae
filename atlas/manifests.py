"""Kubernetes Service objects (plain dicts, as the API returns them) → the slim model.

Every check names the object (``namespace/name``), the field and the reason, and one bad
object never hides the others: ``parse_services`` returns the valid clusters *and* the errors.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from atlas.config import DEFAULT_NAMESPACE, DEFAULT_OBSERVABILITY_NODE
from atlas.errors import DuplicateCluster, ManifestError
from atlas.model import (
    ALERTMANAGER_POD_SELECTOR_KEY,
    ANN_ALERTMANAGER_PORT,
    ANN_ALERTMANAGER_SERVICE,
    ANN_ENVOY_ADDRESS,
    ANN_PROMETHEUS_PORT,
    ANN_PROMETHEUS_SERVICE,
    ANN_THANOS_PORT,
    ANN_THANOS_REPLICA_SERVICE,
    ANN_THANOS_SERVICE,
    DEFAULT_ALERTMANAGER,
    DEFAULT_PROMETHEUS,
    DEFAULT_THANOS,
    DEFAULT_THANOS_REPLICA_TEMPLATE,
    KNOWN_ANNOTATIONS,
    KNOWN_LABELS,
    LABEL_CLUSTER,
    LABEL_GROUP,
    LABEL_REPLICAS,
    MAX_REPLICAS,
    PREFIX,
    STOREAPI_PORT,
    Alertmanager,
    DownstreamCluster,
    Upstream,
)
from atlas.names import is_dns_label, is_hostname, is_ip, parse_port, parse_uint

__all__ = [
    "MAX_CLUSTER_NAME",
    "ParseResult",
    "is_alertmanager_service",
    "is_cluster_service",
    "object_ref",
    "parse_alertmanager",
    "parse_cluster",
    "parse_selector",
    "parse_services",
    "unknown_keys",
]

MAX_CLUSTER_NAME = 60
"""63 (a DNS label) less room for ``-<replica>`` in the SRV target ``<cluster>-<i>``."""

Obj = Mapping[str, Any]
_V = TypeVar("_V")


@dataclass(frozen=True)
class ParseResult:
    clusters: tuple[DownstreamCluster, ...]
    alertmanagers: tuple[Alertmanager, ...]
    errors: tuple[ManifestError, ...]
    origins: Mapping[str, str] = field(default_factory=dict)
    """Per cluster, the origin of the definition that won (``in_force`` of the next call)."""
    warnings: tuple[str, ...] = ()
    """Objects accepted with something worth saying (an unknown ``goatlas.io/`` key)."""


def object_ref(obj: Any, *, namespace: str = DEFAULT_NAMESPACE, fallback: str = "?") -> str:
    """``namespace/name`` for messages, tolerant of any shape of input."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return fallback
    name, ns = meta.get("name"), meta.get("namespace", namespace)
    if not isinstance(name, str) or not name:
        return fallback
    ns = ns if isinstance(ns, str) else namespace
    return f"{_cut(ns, 63)}/{_cut(name, 253)}"


def _cut(value: str, limit: int) -> str:
    """Names beyond what Kubernetes allows are cut, so a hostile object can't flood logs."""
    return value if len(value) <= limit else value[:limit] + "…"


class _Reader:
    """Typed access to one object's fields; every failure becomes a ManifestError."""

    def __init__(self, obj: Obj, ref: str) -> None:
        self.obj, self.ref = obj, ref

    def fail(self, field: str, reason: str) -> ManifestError:
        return ManifestError(self.ref, field, reason)

    def mapping(self, path: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, got {_kind(value)}")
        return value

    def string_map(self, path: str, value: Any) -> Mapping[str, str]:
        result = self.mapping(path, value)
        for key, item in result.items():
            if not isinstance(key, str):
                raise self.fail(path, f"key {key!r} must be a string")
            if not isinstance(item, str):
                raise self.fail(
                    f"{path}[{key}]", f"must be a string (quote it in YAML), got {_kind(item)}"
                )
        return result


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _shown(value: str, limit: int = 40) -> str:
    return repr(_cut(value, limit))


def parse_selector(selector: str) -> dict[str, str]:
    """``k=v,k2=v2`` (equality terms only, as goatlas.io/atlas uses)."""
    result: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"selector term {term!r} is not key=value")
        result[key.strip()] = value.strip().lstrip("=")
    return result


def _labels(obj: Any) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def is_cluster_service(obj: Any) -> bool:
    """Carries the cluster label at all: ``"false"`` opts out, anything else is checked."""
    value = _labels(obj).get(LABEL_CLUSTER)
    return value is not None and value != "false"


def is_alertmanager_service(obj: Any, selector: Mapping[str, str]) -> bool:
    labels = _labels(obj)
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _metadata(r: _Reader, namespace: str) -> tuple[str, Mapping[str, str], Mapping[str, str]]:
    meta = r.mapping("metadata", r.obj.get("metadata"))
    if not meta:
        raise r.fail("metadata", "is missing")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise r.fail("metadata.name", f"must be a non-empty string, got {_kind(name)}")
    ns = meta.get("namespace", namespace)
    if ns != namespace:
        raise r.fail("metadata.namespace", f"must be the Atlas namespace {namespace!r}")
    labels = r.string_map("metadata.labels", meta.get("labels"))
    annotations = r.string_map("metadata.annotations", meta.get("annotations"))
    return name, labels, annotations


def _host(r: _Reader, annotations: Mapping[str, str], key: str, default: str) -> str:
    value = annotations.get(key, default)
    if not is_hostname(value) and not is_ip(value):
        raise r.fail(f"metadata.annotations[{key}]", f"{_shown(value)} is not a DNS name or IP")
    return value.rstrip(".").lower() if is_hostname(value) else value


def _port(r: _Reader, annotations: Mapping[str, str], key: str, default: int) -> int:
    if key not in annotations:
        return default
    port = parse_port(annotations[key])
    if port is None:
        raise r.fail(
            f"metadata.annotations[{key}]",
            f"{_shown(annotations[key])} is not a port number 1..65535",
        )
    return port


def _envoy_address(r: _Reader, annotations: Mapping[str, str]) -> str:
    if ANN_ENVOY_ADDRESS in annotations:
        return _host(r, annotations, ANN_ENVOY_ADDRESS, "")
    spec = r.mapping("spec", r.obj.get("spec"))
    ips = spec.get("externalIPs")
    if ips is None or ips == []:
        raise r.fail("spec.externalIPs", f"is missing (or set {ANN_ENVOY_ADDRESS})")
    if not isinstance(ips, list):
        raise r.fail("spec.externalIPs", f"must be a list, got {_kind(ips)}")
    first = ips[0]
    if not isinstance(first, str) or not is_ip(first):
        shown = _shown(first) if isinstance(first, str) else _kind(first)
        raise r.fail("spec.externalIPs[0]", f"{shown} is not an IP address")
    return first


def _replica_template(r: _Reader, annotations: Mapping[str, str]) -> str:
    template = annotations.get(ANN_THANOS_REPLICA_SERVICE, DEFAULT_THANOS_REPLICA_TEMPLATE)
    field = f"metadata.annotations[{ANN_THANOS_REPLICA_SERVICE}]"
    if "{i}" not in template:
        raise r.fail(field, f"{_shown(template)} must contain the replica placeholder {{i}}")
    if not is_hostname(template.replace("{i}", str(MAX_REPLICAS - 1))):
        raise r.fail(field, f"{_shown(template)} is not a DNS name once {{i}} is filled in")
    return template.rstrip(".").lower()


class _Problems:
    """Collects every ManifestError of one object, so that all of them are reported at once
    (an operator fixing a manifest should not discover its mistakes one reload at a time)."""

    def __init__(self) -> None:
        self.errors: list[ManifestError] = []

    def check(self, read: Callable[[], _V], default: _V) -> _V:
        try:
            return read()
        except ManifestError as err:
            self.errors.append(err)
            return default

    def raise_any(self) -> None:
        if self.errors:
            raise ManifestError.of(self.errors)


def parse_cluster(
    obj: Any,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    reserved: Iterable[str] = (DEFAULT_OBSERVABILITY_NODE,),
    fallback_ref: str = "?",
) -> DownstreamCluster:
    """One downstream cluster from its Service; raises ManifestError naming every bad field."""
    ref = object_ref(obj, namespace=namespace, fallback=fallback_ref)
    if not isinstance(obj, Mapping):
        raise ManifestError(ref, "(object)", f"must be a mapping, got {_kind(obj)}")
    r = _Reader(obj, ref)
    name, labels, annotations = _metadata(r, namespace)
    p = _Problems()
    p.check(lambda: _cluster_name(r, name, reserved), None)
    if labels.get(LABEL_CLUSTER) != "true":
        p.errors.append(
            r.fail(f"metadata.labels[{LABEL_CLUSTER}]", 'must be "true" (or "false" to opt out)')
        )
    replicas = p.check(lambda: _replicas(r, labels), 1)
    group = labels.get(LABEL_GROUP)
    if group is not None and not is_dns_label(group):
        p.errors.append(
            r.fail(f"metadata.labels[{LABEL_GROUP}]", f"{_shown(group)} is not a DNS-1123 label")
        )

    def upstream(host_key: str, port_key: str, default: Upstream) -> Upstream:
        host = p.check(lambda: _host(r, annotations, host_key, default.host), default.host)
        return Upstream(host, p.check(lambda: _port(r, annotations, port_key, default.port), 0))

    cluster = DownstreamCluster(
        name=name,
        envoy_address=p.check(lambda: _envoy_address(r, annotations), ""),
        replicas=replicas,
        thanos=upstream(ANN_THANOS_SERVICE, ANN_THANOS_PORT, DEFAULT_THANOS),
        thanos_replica_template=p.check(lambda: _replica_template(r, annotations), ""),
        prometheus=upstream(ANN_PROMETHEUS_SERVICE, ANN_PROMETHEUS_PORT, DEFAULT_PROMETHEUS),
        alertmanager=upstream(
            ANN_ALERTMANAGER_SERVICE, ANN_ALERTMANAGER_PORT, DEFAULT_ALERTMANAGER
        ),
        group=group,
        srv_services=p.check(lambda: _storeapi_port_names(r), ()),
    )
    p.raise_any()
    return cluster


def _cluster_name(r: _Reader, name: str, reserved: Iterable[str]) -> None:
    if not is_dns_label(name, max_len=MAX_CLUSTER_NAME):
        raise r.fail(
            "metadata.name",
            f"{_shown(name)} must be a DNS-1123 label (a-z, 0-9, '-') of at most "
            f"{MAX_CLUSTER_NAME} characters",
        )
    if name in set(reserved):
        raise r.fail("metadata.name", f"{name!r} is reserved for the observability Envoy")


def _replicas(r: _Reader, labels: Mapping[str, str]) -> int:
    if LABEL_REPLICAS not in labels:
        return 1
    parsed = parse_uint(labels[LABEL_REPLICAS], low=1, high=MAX_REPLICAS)
    if parsed is None:
        raise r.fail(
            f"metadata.labels[{LABEL_REPLICAS}]",
            f"{_shown(labels[LABEL_REPLICAS])} is not a whole number 1..{MAX_REPLICAS}",
        )
    return parsed


def unknown_keys(obj: Any, *, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Warnings for ``goatlas.io/`` labels and annotations Atlas does not know: a misspelt
    key is otherwise ignored without a word (the default it meant to change stays)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return []
    ref = object_ref(obj, namespace=namespace)
    found = []
    for where, known, other in (
        ("labels", KNOWN_LABELS, KNOWN_ANNOTATIONS),
        ("annotations", KNOWN_ANNOTATIONS, KNOWN_LABELS),
    ):
        keys = meta.get(where)
        if not isinstance(keys, Mapping):
            continue
        for key in keys:
            if not isinstance(key, str) or not key.startswith(PREFIX) or key in known:
                continue
            if key in other:
                kind = "an annotation" if where == "labels" else "a label"
                hint = f"it is {kind}, not one of the {where}"
            else:
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7)
                hint = (
                    f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
                )
            found.append(
                f"Service {ref}: metadata.{where}[{_cut(key, 80)}]: unknown key, ignored ({hint})"
            )
    return found


def _storeapi_port_names(r: _Reader) -> tuple[str, ...]:
    """Names of the TCP ports whose port or targetPort is the StoreAPI's (see the model)."""
    spec = r.mapping("spec", r.obj.get("spec"))
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        raise r.fail("spec.ports", f"must be a list, got {_kind(ports)}")
    names: set[str] = set()
    for k, entry in enumerate(ports):
        if not isinstance(entry, Mapping):
            raise r.fail(f"spec.ports[{k}]", f"must be a mapping, got {_kind(entry)}")
        name, protocol = entry.get("name"), entry.get("protocol", "TCP")
        if protocol != "TCP" or STOREAPI_PORT not in (entry.get("port"), entry.get("targetPort")):
            continue
        if name is None or name == "":
            continue  # an unnamed port publishes no _<name>._tcp record
        if not isinstance(name, str) or not is_dns_label(name, max_len=15):
            shown = _shown(name) if isinstance(name, str) else _kind(name)
            raise r.fail(f"spec.ports[{k}].name", f"{shown} is not a port name (IANA_SVC_NAME)")
        names.add(name)
    return tuple(sorted(names))


def parse_alertmanager(
    obj: Any, *, namespace: str = DEFAULT_NAMESPACE, fallback_ref: str = "?"
) -> Alertmanager | None:
    """An observability Alertmanager replica: a Service selecting one StatefulSet pod.

    None for a Service that selects no single pod: kube-prometheus-stack's main Alertmanager
    Service carries the same ``app`` label as its per-replica ones and selects them all. It is
    no replica, and no mistake either.
    """
    ref = object_ref(obj, namespace=namespace, fallback=fallback_ref)
    if not isinstance(obj, Mapping):
        raise ManifestError(ref, "(object)", f"must be a mapping, got {_kind(obj)}")
    r = _Reader(obj, ref)
    name, _, _ = _metadata(r, namespace)
    spec = r.mapping("spec", obj.get("spec"))
    selector = r.string_map("spec.selector", spec.get("selector"))
    pod = selector.get(ALERTMANAGER_POD_SELECTOR_KEY)
    field = f"spec.selector[{ALERTMANAGER_POD_SELECTOR_KEY}]"
    if pod is None:
        return None
    ordinal = parse_uint(pod.rpartition("-")[2], low=0, high=10_000)
    if ordinal is None:
        raise r.fail(field, f"{_shown(pod)} does not end in a StatefulSet ordinal (-N)")
    cluster_ip = spec.get("clusterIP")
    address = (
        cluster_ip
        if isinstance(cluster_ip, str) and is_ip(cluster_ip)
        else f"{name}.{namespace}.svc.cluster.local"
    )
    return Alertmanager(name=name, replica=ordinal, address=address, port=_service_port(r, spec))


def _service_port(r: _Reader, spec: Mapping[str, Any]) -> int:
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        raise r.fail("spec.ports", f"must be a list, got {_kind(ports)}")
    chosen: Any = None
    for entry in ports:
        if isinstance(entry, Mapping) and entry.get("name") in ("http-web", "web", "http"):
            chosen = entry
            break
    if chosen is None and ports:
        chosen = ports[0]
    if chosen is None:
        return DEFAULT_ALERTMANAGER.port
    port = chosen.get("port") if isinstance(chosen, Mapping) else None
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise r.fail("spec.ports[].port", "must be a port number 1..65535")
    return port


_Outcome = tuple[DownstreamCluster | Alertmanager | ManifestError | None, tuple[str, ...]]
"""What one object parses to (None for a Service that is neither kind, or another object),
and the warnings about it."""


class ParseMemo:
    """Remembers what each object parsed to, for a source that hands the same objects in again.

    A source keeps every object it has read and re-parses all of them on each change; at
    10,000 Services that is 0.4 s per change. Objects that are *the same object* as in the
    previous call (a source never mutates an object it handed in: a change replaces it) parse
    the same, so only new objects are parsed. Entries hold their object, so an id is never
    mistaken for a recycled one, and only objects of the latest call are kept.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, str, _Outcome]] = {}
        self._next: dict[int, tuple[Any, str, _Outcome]] = {}

    def outcome(self, origin: str, obj: Any, parse: Callable[[Any, str], _Outcome]) -> _Outcome:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj and entry[1] == origin:
            result = entry[2]
        else:
            result = parse(obj, origin)
        self._next[id(obj)] = (obj, origin, result)
        return result

    def finish(self) -> None:
        """Forget objects not seen in this call."""
        self._entries, self._next = self._next, {}


def _outcome(
    obj: Any,
    origin: str,
    namespace: str,
    selector: Mapping[str, str],
    reserved: tuple[str, ...],
) -> _Outcome:
    try:
        if is_cluster_service(obj):
            cluster = parse_cluster(
                obj, namespace=namespace, reserved=reserved, fallback_ref=origin
            )
            return cluster, tuple(unknown_keys(obj, namespace=namespace))
        if is_alertmanager_service(obj, selector):
            return parse_alertmanager(obj, namespace=namespace, fallback_ref=origin), ()
    except ManifestError as err:
        name = _cluster_named(obj, namespace, reserved)
        err = err.but(cluster=name) if name else err
        return err, tuple(unknown_keys(obj, namespace=namespace))
    return None, ()


def _cluster_named(obj: Any, namespace: str, reserved: tuple[str, ...]) -> str | None:
    """The name of an invalid cluster Service of the Atlas namespace, when it is a usable
    cluster name: the cluster exists, invalid as it is (never mistaken for a removal)."""
    if not is_cluster_service(obj):
        return None
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(meta, Mapping) or meta.get("namespace", namespace) != namespace:
        return None
    if not isinstance(name, str) or not is_dns_label(name, max_len=MAX_CLUSTER_NAME):
        return None
    return None if name in reserved else name


def parse_services(
    objects: Iterable[tuple[str, Any]],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    alertmanager_selector: Mapping[str, str] | None = None,
    reserved: Iterable[str] = (DEFAULT_OBSERVABILITY_NODE,),
    memo: ParseMemo | None = None,
    in_force: Mapping[str, str] | None = None,
    name_origins: bool = False,
) -> ParseResult:
    """Valid clusters and Alertmanagers plus one error per bad object.

    ``objects`` are ``(origin, object)`` pairs in a stable order (origin is a file path and
    document index, or ``kube:<name>``). Two Services for one cluster: the one whose origin
    ``in_force`` names (the definition being served) wins, else the first in that order; the
    other is reported, naming both, so a stray copy cannot take over a working cluster.
    ``name_origins``: every error starts with its object's origin (directory mode, where it
    is a file). A source passes the same ``memo`` (and the same other arguments) on every
    call so unchanged objects are not parsed again.
    """
    selector = alertmanager_selector or {}
    reserved = tuple(reserved)
    candidates: dict[str, list[tuple[str, Any, DownstreamCluster]]] = {}
    alertmanagers: dict[str, Alertmanager] = {}
    errors: list[ManifestError] = []
    warnings: list[str] = []
    in_force = in_force or {}
    invalid_in_force: dict[str, str] = {}
    """Clusters whose served definition is now invalid: it keeps its claim on the name."""
    parse = functools.partial(_outcome, namespace=namespace, selector=selector, reserved=reserved)
    for origin, obj in objects:
        result, warned = memo.outcome(origin, obj, parse) if memo else parse(obj, origin)
        where = f"{origin}: " if name_origins else ""
        warnings += (where + w for w in warned)
        if isinstance(result, ManifestError):
            errors.append(result.but(origin=origin) if name_origins else result)
            name = result.obj.rpartition("/")[2]
            if name in in_force and _same_place(origin, in_force[name]):
                invalid_in_force[name] = origin
        elif isinstance(result, DownstreamCluster):
            candidates.setdefault(result.name, []).append((origin, obj, result))
        elif isinstance(result, Alertmanager):
            alertmanagers.setdefault(result.name, result)
    if memo is not None:
        memo.finish()
    clusters: list[DownstreamCluster] = []
    origins: dict[str, str] = {}
    for name, found in candidates.items():
        if name in invalid_in_force:  # a typo in the served file does not hand it over
            errors += (
                _duplicate(obj, origin, invalid_in_force[name], namespace, name_origins)
                for origin, obj, _ in found
            )
            continue
        winner = _in_force(found, in_force.get(name))
        clusters.append(found[winner][2])
        origins[name] = found[winner][0]
        for k, (origin, obj, _) in enumerate(found):
            if k != winner:
                errors.append(_duplicate(obj, origin, found[winner][0], namespace, name_origins))
    return ParseResult(
        clusters=tuple(sorted(clusters, key=_by_name)),
        alertmanagers=tuple(sorted(alertmanagers.values())),
        errors=tuple(errors),
        origins=origins,
        warnings=tuple(warnings),
    )


def _in_force(found: list[tuple[str, Any, DownstreamCluster]], origin: str | None) -> int:
    """Which of several definitions of one cluster stays: the one served so far (same
    origin, else the same file), else the first."""
    if origin is not None:
        for same in (str.__eq__, _same_place):
            for k, (candidate, _, _) in enumerate(found):
                if same(candidate, origin):
                    return k
    return 0


def _same_place(origin: str, other: str) -> bool:
    """The same file (a document added above it moves its index, not its file)."""
    return origin.partition("#")[0] == other.partition("#")[0]


def _duplicate(
    obj: Any, origin: str, winner: str, namespace: str, name_origins: bool
) -> ManifestError:
    name = object_ref(obj, namespace=namespace).rpartition("/")[2]
    return DuplicateCluster(
        object_ref(obj, namespace=namespace),
        "metadata.name",
        f"duplicate cluster {name!r}: {winner} defines it and stays in force; this definition "
        "is ignored until one of the two is removed",
        origin=origin if name_origins else "",
    )


def _by_name(c: DownstreamCluster) -> str:
    return c.name
