"""The names of the objects one Atlas installation keeps in its Kubernetes namespace.

Every name derives from the instance (setting ``instance``; the chart sets its full name), so
two installations can share a namespace: each has its own Lease, CA, credentials, last good
definitions and Helm values Secrets, and neither touches the other's. The default instance,
``atlas``, keeps the names goatlas.io/atlas used (``atlas-ca``, ``<cluster>-envoy-values``),
so an installation that adopts the Go original's namespace finds its objects where they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas.model import LABEL_INSTANCE

__all__ = ["DEFAULT_INSTANCE", "InstanceNames"]

DEFAULT_INSTANCE = "atlas"


@dataclass(frozen=True)
class InstanceNames:
    instance: str = DEFAULT_INSTANCE

    @property
    def lease(self) -> str:
        return self.instance

    @property
    def ca_secret(self) -> str:
        return f"{self.instance}-ca"

    @property
    def credential_prefix(self) -> str:
        return f"{self.instance}-"

    def credential_secret(self, name: str) -> str:
        """The Secret (kubernetes.io/tls) of the PKI store's credential ``name``."""
        return f"{self.credential_prefix}{name}"

    @property
    def last_good(self) -> str:
        """Every cluster's last good definition, kept by the leader (``watchers.memory``)."""
        return f"{self.instance}-last-good"

    @property
    def observability_values(self) -> str:
        return f"{self.instance}-envoy-values"

    @property
    def observability_bootstrap(self) -> str:
        """The observability Envoy's bootstrap and credential as files, which the chart's
        Envoy Deployment mounts."""
        return f"{self.instance}-envoy-bootstrap"

    def values_secret(self, cluster: str) -> str:
        """A downstream cluster's Helm values (``atlas cluster values --source kubernetes``)."""
        if self.instance == DEFAULT_INSTANCE:
            return f"{cluster}-envoy-values"
        return f"{self.instance}-{cluster}-envoy-values"

    def owns(self, labels: dict[str, str]) -> bool:
        """A values Secret with these labels is this instance's; one without the instance
        label was written before instances existed, by the default one."""
        return labels.get(LABEL_INSTANCE, DEFAULT_INSTANCE) == self.instance
