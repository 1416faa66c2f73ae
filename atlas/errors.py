"""Every error Atlas raises on purpose, in one tree.

::

    AtlasError
    ├── ConfigError            bad configuration or command-line input
    │   └── ManifestError      one Kubernetes object (Service/Secret) is invalid
    │       └── DuplicateCluster   a second definition of a cluster, ignored
    ├── SourceError            a source (file, directory) could not be read
    ├── ListenError            a server could not listen on its address (in use, not local)
    ├── WatchError             a watch broke; the watcher reconnects
    │   └── ResourceExpired    410 Gone: the watcher lists again
    ├── KubeError              a Kubernetes API call failed (HTTP status, 0 for no response)
    ├── SnapshotInconsistent   a snapshot references a missing resource
    └── PKIError               certificates or keys could not be made, read or stored

Callers catch the level they can handle. Messages never carry key material: PKI code
formats errors from names and paths only.
"""

from __future__ import annotations

__all__ = [
    "AtlasError",
    "ConfigError",
    "DuplicateCluster",
    "KubeError",
    "ListenError",
    "ManifestError",
    "PKIError",
    "ResourceExpired",
    "SnapshotInconsistent",
    "SourceError",
    "WatchError",
]


class AtlasError(Exception):
    """Base of every error Atlas raises deliberately."""


class ConfigError(AtlasError):
    """Configuration or command-line input that Atlas cannot use."""


class ManifestError(ConfigError):
    """One object is invalid: names the object, every bad field and its reason.

    ``obj`` is ``namespace/name`` (or ``<file>#<doc>`` when the object has no usable name),
    ``field`` a JSON-path-like field (``metadata.labels[goatlas.io/replicas]``) and ``reason``
    why; ``problems`` holds every (field, reason) found, the first of them those two.
    ``origin`` names where the object was read (a file and document index in directory mode)
    and ``keeping`` says that the cluster's last good definition stays in force meanwhile.
    ``cluster`` is the cluster's name when the object is a cluster Service with a usable one:
    the cluster exists, invalid as it is; ``held`` says it has no last good definition to
    serve, so it is not routed, but it is no removal either.
    """

    def __init__(
        self,
        obj: str,
        field: str,
        reason: str,
        *,
        kind: str = "Service",
        origin: str = "",
        more: tuple[tuple[str, str], ...] = (),
        keeping: bool = False,
        cluster: str | None = None,
        held: bool = False,
    ) -> None:
        self.obj = obj
        self.field = field
        self.reason = reason
        self.kind = kind
        self.origin = origin
        self.problems: tuple[tuple[str, str], ...] = ((field, reason), *more)
        self.keeping = keeping
        self.cluster = cluster
        self.held = held
        where = f"{origin}: " if origin else ""
        body = "; ".join(f"{f}: {r}" for f, r in self.problems)
        tail = ""
        if keeping:
            tail = " (its last good definition stays in force until fixed or deleted)"
        elif held:
            tail = (
                " (no earlier good definition is known: it is not routed, but keeps its "
                "membership and credentials until fixed or deleted)"
            )
        super().__init__(f"{where}{kind} {obj}: {body}{tail}")

    @classmethod
    def of(cls, errors: list[ManifestError]) -> ManifestError:
        """Every problem of several errors about one object, in one error."""
        first = errors[0]
        more = tuple(p for e in errors for p in e.problems)[1:]
        return cls(first.obj, first.field, first.reason, kind=first.kind, more=more)

    def but(
        self,
        *,
        origin: str | None = None,
        keeping: bool | None = None,
        cluster: str | None = None,
        held: bool | None = None,
    ) -> ManifestError:
        """The same error, read from ``origin``, about ``cluster``, or kept or held."""
        field, reason = self.problems[0]
        return type(self)(
            self.obj,
            field,
            reason,
            kind=self.kind,
            origin=self.origin if origin is None else origin,
            more=self.problems[1:],
            keeping=self.keeping if keeping is None else keeping,
            cluster=self.cluster if cluster is None else cluster,
            held=self.held if held is None else held,
        )


class DuplicateCluster(ManifestError):
    """A second definition of a cluster that is already defined: it is the one ignored."""


class SourceError(AtlasError):
    """A source file or directory could not be read or parsed."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ListenError(AtlasError):
    """A server could not listen: names the face, the address and the reason."""

    def __init__(self, face: str, address: str, reason: str) -> None:
        self.face, self.address, self.reason = face, address, reason
        super().__init__(f"cannot listen on {address} for {face}: {reason}")


class WatchError(AtlasError):
    """A watch stream failed; the watcher reconnects with backoff."""


class ResourceExpired(WatchError):
    """The resourceVersion is too old (410 Gone): list again."""


class SnapshotInconsistent(AtlasError):
    """A snapshot names a resource it does not contain; it is never published."""

    def __init__(self, node: str, resource: str, missing: str) -> None:
        self.node = node
        self.resource = resource
        self.missing = missing
        super().__init__(f"node {node}: {resource} references missing {missing}")


class PKIError(AtlasError):
    """Certificates or keys could not be created, loaded or stored."""


class KubeError(AtlasError):
    """An API call failed; ``status`` is the HTTP status (0 for transport failures)."""

    def __init__(self, action: str, status: int, reason: str) -> None:
        self.status = status
        super().__init__(f"{action}: {status or 'no response'} {reason}".strip())
