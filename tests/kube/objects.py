"""Reading what Atlas wrote to the API server, as the tests check it: a Secret (None while
there is none), one of its keys, and the Helm values a values Secret carries."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from atlas.kube import Kube, KubeError
from tests.kube.conftest import NAMESPACE
from tests.polling import until

__all__ = ["data", "secret", "values_of", "written"]


def secret(admin: Kube, name: str) -> dict[str, Any] | None:
    try:
        return dict(admin.call("get", admin.core.read_namespaced_secret, name, NAMESPACE))
    except KubeError as err:
        if err.status == 404:
            return None
        raise


def data(obj: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(obj["data"][key])


def values_of(admin: Kube, name: str) -> dict[str, Any] | None:
    obj = secret(admin, name)
    return None if obj is None else dict(yaml.safe_load(data(obj, "values.yaml")))


async def written(admin: Kube, name: str, *, within: float = 10) -> dict[str, Any]:
    """The Secret ``name`` once Atlas has written it."""
    return await until(
        lambda: secret(admin, name), within=within, what=f"Secret {name}", blocking=True
    )
