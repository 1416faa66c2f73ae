"""The Kubernetes source against a real API server, as the RBAC-limited user."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from atlas.config import WatchSettings
from atlas.kube import Kube
from tests.kube.cluster import KubeCluster
from tests.kube.conftest import NAMESPACE, service
from tests.polling import until
from watchers.kube import KubeSource, _KindWatch
from watchers.source import SourceState

pytestmark = pytest.mark.e2e

FAST = WatchSettings(backoff_initial=0.1, backoff_max=0.5, watch_timeout=30)


class Watching:
    def __init__(self, source: KubeSource) -> None:
        self.source = source
        self.states: list[SourceState] = []
        self.queue: asyncio.Queue[SourceState] = asyncio.Queue()

    def publish(self, state: SourceState) -> None:
        self.states.append(state)
        self.queue.put_nowait(state)

    async def until(self, predicate: Callable[[SourceState], bool], within: float) -> float:
        start = time.monotonic()
        while not (self.states and predicate(self.states[-1])):
            left = within - (time.monotonic() - start)
            if left <= 0:
                raise AssertionError(f"not within {within}s; last: {self.states[-1:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.get(), left)
        return time.monotonic() - start


@pytest.fixture
async def watching(admin: Kube, limited: Kube) -> AsyncIterator[Watching]:
    source = KubeSource(
        limited,
        namespace=NAMESPACE,
        settings=FAST,
        alertmanager_selector="app=kube-prometheus-stack-alertmanager",
        envoy_selector="app=envoy,release=atlas",
    )
    w = Watching(source)
    task = asyncio.create_task(source.run(w.publish))
    yield w
    source.stop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def names(state: SourceState) -> tuple[str, ...]:
    return state.topology.cluster_names


def create(admin: Kube, body: dict[str, object]) -> None:
    admin.call("create Service", admin.core.create_namespaced_service, NAMESPACE, body)


async def test_sync_then_every_change_within_a_second(admin: Kube, watching: Watching) -> None:
    create(admin, service("east", replicas="2"))
    await watching.until(lambda s: s.synced, within=10)
    assert not any(s.synced for s in watching.states[:-1]) or names(watching.states[0]) == ("east",)
    await watching.until(lambda s: names(s) == ("east",), within=1)

    create(admin, service("west"))
    took = [await watching.until(lambda s: names(s) == ("east", "west"), within=1)]

    body = admin.call("get", admin.core.read_namespaced_service, "west", NAMESPACE)
    body["metadata"]["labels"]["goatlas.io/replicas"] = "3"
    admin.call("replace Service", admin.core.replace_namespaced_service, "west", NAMESPACE, body)
    took.append(
        await watching.until(
            lambda s: getattr(s.topology.cluster("west"), "replicas", None) == 3,
            within=1,
        )
    )

    admin.call("delete Service", admin.core.delete_namespaced_service, "east", NAMESPACE)
    took.append(await watching.until(lambda s: names(s) == ("west",), within=1))

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1", "namespace": NAMESPACE},
        "data": {"k": base64.b64encode(b"v1").decode()},
    }
    admin.call("create Secret", admin.core.create_namespaced_secret, NAMESPACE, secret)
    start = time.monotonic()
    while "s1" not in watching.source.secrets:
        assert time.monotonic() - start < 1, "Secret add not seen within 1 s"
        await asyncio.sleep(0.02)
    secret["data"] = {"k": base64.b64encode(b"v2").decode()}
    admin.call("replace Secret", admin.core.replace_namespaced_secret, "s1", NAMESPACE, secret)
    while watching.source.secrets["s1"]["data"]["k"] != secret["data"]["k"]:  # type: ignore[index]
        assert time.monotonic() - start < 2, "Secret change not seen within 1 s"
        await asyncio.sleep(0.02)
    admin.call("delete Secret", admin.core.delete_namespaced_secret, "s1", NAMESPACE)
    start = time.monotonic()
    while "s1" in watching.source.secrets:
        assert time.monotonic() - start < 1, "Secret delete not seen within 1 s"
        await asyncio.sleep(0.02)
    print("service changes seen after", [f"{t:.2f}s" for t in took])


async def test_observability_envoy_and_alertmanagers_are_watched(
    admin: Kube, watching: Watching
) -> None:
    create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "envoy",
                "namespace": NAMESPACE,
                "labels": {"app": "envoy", "release": "atlas"},
            },
            "spec": {"ports": [{"port": 10901}], "clusterIP": "10.96.0.50"},
        },
    )
    create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "alertmanager-0",
                "namespace": NAMESPACE,
                "labels": {"app": "kube-prometheus-stack-alertmanager"},
            },
            "spec": {
                "ports": [{"name": "http-web", "port": 9093}],
                "selector": {"statefulset.kubernetes.io/pod-name": "am-0"},
            },
        },
    )
    state_time = await watching.until(
        lambda s: (
            s.topology.observability_addresses == ("10.96.0.50",)
            and len(s.topology.alertmanagers) == 1
        ),
        within=10,
    )
    am = watching.states[-1].topology.alertmanagers[0]
    assert (am.name, am.replica, am.port) == ("alertmanager-0", 0, 9093)
    assert state_time < 10


async def test_410_gone_relists_without_spurious_deletions(
    admin: Kube, limited: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(admin, service("east"))
    create(admin, service("west"))
    stale = admin.call("list", admin.core.list_namespaced_service, NAMESPACE)["metadata"][
        "resourceVersion"
    ]
    # Changes after `stale`, which a watcher that fell behind would have missed.
    create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "churn", "namespace": NAMESPACE},
            "spec": {"ports": [{"port": 1}]},
        },
    )
    for i in range(20):
        body = admin.call("get", admin.core.read_namespaced_service, "churn", NAMESPACE)
        body["metadata"].setdefault("annotations", {})["n"] = str(i)
        admin.call(
            "replace Service", admin.core.replace_namespaced_service, "churn", NAMESPACE, body
        )
    create(admin, service("north"))
    # etcd is compacted every second up to what the previous pass saw: after a few seconds
    # `stale` is behind the compaction and a watch from it gets 410 Gone from etcd.
    await asyncio.sleep(3.5)

    real_list = _KindWatch._list
    calls = {"Service": 0}

    def first_list_is_stale(self: _KindWatch) -> tuple[dict[str, dict[str, object]], str]:
        items, version = real_list(self)
        if self.kind == "Service":
            calls["Service"] += 1
            if calls["Service"] == 1:
                # The list as it was before the churn: what a watcher that fell behind has.
                return {k: v for k, v in items.items() if k in ("east", "west")}, stale
        return items, version

    monkeypatch.setattr(_KindWatch, "_list", first_list_is_stale)
    source = KubeSource(limited, namespace=NAMESPACE, settings=FAST)
    w = Watching(source)
    task = asyncio.create_task(source.run(w.publish))
    try:
        await w.until(lambda s: names(s) == ("east", "north", "west"), within=10)
        assert calls["Service"] >= 2, "the 410 made the watcher list again"
        service_watch = next(x for x in source._watches if x.kind == "Service")
        assert service_watch.relists >= 2
        synced = [s for s in w.states if s.synced]
        for state in synced:
            assert {"east", "west"} <= set(names(state)), f"spurious deletion in {names(state)}"
    finally:
        source.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_api_server_restart_keeps_the_last_topology_then_converges(
    admin: Kube, kube_cluster: KubeCluster, watching: Watching, caplog: pytest.LogCaptureFixture
) -> None:
    create(admin, service("east"))
    await watching.until(lambda s: s.synced and names(s) == ("east",), within=10)
    published = len(watching.states)
    caplog.set_level(logging.INFO)
    kube_cluster.stop_apiserver()
    try:
        await asyncio.sleep(3.0)  # several failed reconnects per kind (backoff 0.1..0.5 s)
        assert len(watching.states) == published, "nothing is published while the API is away"
        assert names(watching.source.state()) == ("east",), "the last topology is kept"
    finally:
        await asyncio.to_thread(kube_cluster.start_apiserver)
    create(admin, service("west"))
    admin.call("delete Service", admin.core.delete_namespaced_service, "east", NAMESPACE)
    await watching.until(lambda s: names(s) == ("west",), within=15)
    server = sorted(
        i["metadata"]["name"]
        for i in admin.call("list", admin.core.list_namespaced_service, NAMESPACE)["items"]
    )
    assert names(watching.states[-1]) == tuple(server)
    # One warning per kind for the whole outage, one line when it works again; no urllib3.
    # (Only this source's threads: a stopped source of an earlier test may still be unwinding.)
    ours = {t.ident for t in watching.source.threads}
    records = [r for r in caplog.records if r.thread in ours or r.name.startswith("urllib3")]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert sorted(r.getMessage().split(":")[0] for r in warnings) == [
        "Secret watch",
        "Service watch",
    ], [r.getMessage() for r in warnings]
    recovered = [r.getMessage() for r in records if "working again after" in r.getMessage()]
    assert len(recovered) == 2 and all("failed attempt(s)" in m for m in recovered)
    failures = [int(m.split("after ")[1].split()[0]) for m in recovered]
    assert all(n >= 3 for n in failures), recovered


async def test_the_definition_in_force_keeps_working(admin: Kube, watching: Watching) -> None:
    """In Kubernetes a cluster is one Service: a second definition is refused by the API
    itself (409), so what stays in force is tested against an edit that makes it invalid,
    and against a re-list (410 Gone), which must not switch anything."""
    from atlas.kube import KubeError

    create(admin, service("east", replicas="2"))
    await watching.until(lambda s: s.synced and names(s) == ("east",), within=10)
    with pytest.raises(KubeError) as duplicate:
        create(admin, service("east", replicas="1"))
    assert duplicate.value.status == 409
    body = admin.call("get", admin.core.read_namespaced_service, "east", NAMESPACE)
    body["metadata"]["labels"]["goatlas.io/replicas"] = "two"
    admin.call("replace Service", admin.core.replace_namespaced_service, "east", NAMESPACE, body)
    await watching.until(lambda s: bool(s.messages), within=2)
    state = watching.states[-1]
    assert state.messages == (
        f"Service {NAMESPACE}/east: metadata.labels[goatlas.io/replicas]: 'two' is not a whole "
        "number 1..64 (its last good definition stays in force until fixed or deleted)",
    )
    east = state.topology.cluster("east")
    assert east is not None and east.replicas == 2
    # A re-list (410 Gone) replaces the cache, its objects in whatever order the API lists.
    watching.source.services = dict(reversed(list(watching.source.services.items())))
    assert watching.source.state().topology.cluster("east") == east, "a re-read keeps it"


async def test_a_failed_watch_is_stale_until_it_has_listed_again(
    admin: Kube, kube_cluster: KubeCluster, watching: Watching
) -> None:
    """A leader writes only from lists made since the last watch failure: after an API
    outage a new leader deleted a cluster's values Secret before its watch worked again."""
    create(admin, service("east"))
    await watching.until(lambda s: s.synced, within=10)
    await until(lambda: watching.source.fresh, within=5, what="a fresh view")
    relists = [w.relists for w in watching.source._watches]
    kube_cluster.stop_apiserver()
    try:
        await until(
            lambda: not watching.source.fresh,
            within=10,
            what="a broken watch makes the view stale",
        )
    finally:
        await asyncio.to_thread(kube_cluster.start_apiserver)
    await until(
        lambda: watching.source.fresh, within=20, what="fresh again once both kinds are listed"
    )
    assert all(w.relists > n for w, n in zip(watching.source._watches, relists, strict=True))
