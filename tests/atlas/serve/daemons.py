"""An Atlas daemon in the test's own event loop, on a directory source under the test's
temporary directory, listening on loopback ports the kernel picks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from atlas.serve.daemon import Atlas
from atlas.serve.options import ServeOptions
from tests.polling import until

__all__ = ["manifest", "options", "started"]


def manifest(name: str) -> str:
    """A cluster Service of two replicas, as a manifest file holds it."""
    return yaml.safe_dump(
        {
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": "monitoring",
                "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": "2"},
            },
            "spec": {"externalIPs": ["192.0.2.1"]},
        }
    )


def options(root: Path, **changes: Any) -> ServeOptions:
    """Manifests in ``root/clusters``, state in ``root/state``, no TLS on ADS."""
    defaults = ServeOptions(
        source=str(root / "clusters"),
        state_dir=str(root / "state"),
        ads_listen="127.0.0.1:0",
        ads_tls=False,
        http_listen="127.0.0.1:0",
        dns_listen=("127.0.0.1:0",),
        dns_addresses=("10.0.0.7",),
        debounce=0.01,
    )
    return dataclasses.replace(defaults, **changes)


async def started(root: Path, **changes: Any) -> Atlas:
    """A daemon serving the cluster ``east``, returned once east is published and the zone is
    synced; the caller stops it."""
    (root / "clusters").mkdir()
    (root / "clusters" / "east.yaml").write_text(manifest("east"))
    atlas = Atlas(options(root, **changes))
    await atlas.start()
    try:
        await until(
            lambda: atlas.cache.snapshot("east") is not None and atlas.dns.resolver.synced,
            within=5,
            what="east published and the zone synced",
        )
    except BaseException:
        await atlas.stop()
        raise
    return atlas
