"""Kubernetes client set-up and the one place its exceptions are translated.

Everything that talks to the API server goes through ``connect``; callers catch
``WatchError``/``ResourceExpired``/``KubeError`` and never the client's own exceptions.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from atlas import metrics
from atlas.documents import yaml_problem
from atlas.errors import ConfigError, KubeError

__all__ = ["Kube", "KubeError", "Outage", "connect", "status_of"]

_WRITES = frozenset({"create", "replace", "update", "patch", "delete"})


class Outage:
    """Logs an API outage once: a warning at the first failure, an info line with the count
    when calls work again. Failures in between are counted, not logged, so a ten-minute
    outage is two lines, not hundreds."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what, self.log = what, logger
        self.failures = 0
        self._since = 0.0

    def failed(self, err: BaseException) -> None:
        if self.failures == 0:
            self._since = time.monotonic()
            self.log.warning(
                "%s: %s (retrying with backoff; reported again when it works)", self.what, err
            )
        else:
            self.log.debug("%s: %s (failure %d)", self.what, err, self.failures + 1)
        self.failures += 1

    def ok(self) -> None:
        if self.failures:
            self.log.info(
                "%s: working again after %d failed attempt(s) in %.0fs",
                self.what,
                self.failures,
                time.monotonic() - self._since,
            )
            self.failures = 0


def status_of(err: BaseException) -> int:
    return int(getattr(err, "status", 0) or 0)


@dataclass
class Kube:
    """The typed API groups Atlas uses, sharing one ApiClient."""

    api: client.ApiClient
    core: client.CoreV1Api
    coordination: client.CoordinationV1Api

    def call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` returning raw JSON (dict), mapping failures to KubeError."""
        verb, _, rest = action.partition(" ")
        if verb in _WRITES:
            metrics.KUBE_WRITES.labels(verb, rest.split(" ", 1)[0]).inc()
        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except ApiException as err:
            raise KubeError(action, status_of(err), _reason(err)) from None
        except Exception as err:  # urllib3 transport errors: connection refused, reset...
            raise KubeError(action, 0, type(err).__name__) from None
        data = response.data
        return json.loads(data) if data else {}

    def apply_secret(self, namespace: str, body: dict[str, Any]) -> None:
        """Replace the Secret, or create it when it does not exist yet."""
        name = body["metadata"]["name"]
        try:
            self.call(
                f"replace Secret {name}", self.core.replace_namespaced_secret, name, namespace, body
            )
        except KubeError as err:
            if err.status != 404:
                raise
            self.call(f"create Secret {name}", self.core.create_namespaced_secret, namespace, body)


def _load_kubeconfig(path: str, context: str | None, configuration: Any) -> None:
    if not Path(path).is_file():
        raise ConfigError(f"--kubeconfig {path}: no such file")
    try:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
    except (config.ConfigException, ValueError, TypeError, OSError) as err:
        what = f"context {context!r} of {path}" if context else path
        raise ConfigError(f"--kubeconfig {what}: cannot be used: {_first_line(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--kubeconfig {path}: not valid YAML: {yaml_problem(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _reason(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message", err.reason))
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """In-cluster configuration when running in a pod, else the kubeconfig.

    Raises ConfigError naming what was looked for (the client's own errors are tracebacks
    several exceptions deep)."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        _load_kubeconfig(kubeconfig, context, configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            named = (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
            default = Path(named)
            if not default.expanduser().is_file():
                raise ConfigError(
                    "no Kubernetes configuration: not running in a pod "
                    "(KUBERNETES_SERVICE_HOST is unset) and no kubeconfig at "
                    f"{default}; pass --kubeconfig FILE"
                ) from None
            _load_kubeconfig(str(default.expanduser()), context, configuration)
    # No retries inside the client: every caller retries with its own backoff, and urllib3's
    # retries each log a warning, three per failed call during an API server outage.
    configuration.retries = 0
    api = client.ApiClient(configuration)
    return Kube(api, client.CoreV1Api(api), client.CoordinationV1Api(api))
