"""Every error Atlas raises on purpose, in one tree.

::

    AtlasError
    ├── ConfigError            bad configuration or command-line input
    │   └── ManifestError      one Kubernetes object (Service/Secret) is invalid
    ├── SourceError            a source (file, directory) could not be read
    ├── WatchError             a watch broke; the watcher reconnects
    │   └── ResourceExpired    410 Gone: the watcher lists again
    ├── SnapshotInconsistent   a snapshot references a missing resource
    └── PKIError               certificates or keys could not be made, read or stored

Callers catch the level they can handle. Messages never carry key material: PKI code
formats errors from names and paths only.
"""

from __future__ import annotations

__all__ = [
    "AtlasError",
    "ConfigError",
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
    """One object is invalid: names the object, the field and the reason.

    ``obj`` is ``namespace/name`` (or ``<file>#<doc>`` when the object has no usable name),
    ``field`` a JSON-path-like field (``metadata.labels[goatlas.io/replicas]``).
    """

    def __init__(self, obj: str, field: str, reason: str, *, kind: str = "Service") -> None:
        self.obj = obj
        self.field = field
        self.reason = reason
        self.kind = kind
        super().__init__(f"{kind} {obj}: {field}: {reason}")


class SourceError(AtlasError):
    """A source file or directory could not be read or parsed."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


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
