"""A randomized, model-checked run: seeded operator actions and faults against real Atlas,
real Envoys and grpc-go sidecars, with every invariant of ``checks`` judged after each step
and, for what happened between steps, on every observation made meanwhile.

The seed fixes the sequence of actions and the pauses between them; what the processes do
with it may vary in timing, never in what must hold. On a violation the run stops and writes
``report.txt`` in its directory: the seed, the step log, ``/status``, each Envoy's route
tables and clusters with their versions, and the log tails.
"""

from __future__ import annotations

__all__ = ["RandomRun", "Summary", "Violation"]

import json
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.conftest import run_atlas
from tests.e2e.randomized.checks import (
    GRACE,
    Step,
    Timeline,
    Touch,
    Violation,
    judge_alerts,
    judge_calls,
    judge_resolutions,
)
from tests.e2e.randomized.model import CLUSTERS, GROUPS, MAX_REPLICAS, Cluster, Model, Wanted
from tests.e2e.randomized.network import RandomNetwork
from tests.e2e.randomized.observe import AlertSenders, Observations, Prober, no_cluster_flags
from tests.polling import wait_until

SETTLE = 35.0
"""Seconds a step that restarts Envoys, or the observability Envoy whose 10900 carries every
downstream's ADS stream, may take to converge (status as the model): an Envoy whose stream
was lost twice in a row retries with its own backoff, which reaches 30 s. The data plane is
not waiting for it (each Envoy keeps what it has); the other steps get ``GRACE``."""

CLI_EVERY = 10
"""``atlas status`` is run (a process, as an operator runs it) after every this many steps,
and at the end: run only at the end, a short run missed that it called every cluster of a
run with short-lived leaves degraded (the soak found it)."""

WEIGHTS: dict[str, int] = {
    "scale": 20,
    "add": 6,
    "remove": 5,
    "move": 7,
    "regroup": 7,
    "break": 5,
    "fix": 5,
    "duplicate": 4,
    "unduplicate": 4,
    "burst": 8,
    "rotate_ca": 2,
    "drop_previous_ca": 1,
    "kill_atlas": 4,
    "restart_envoy": 5,
    "restart_observability": 2,
}
"""How often each kind of action is drawn (among those that apply to the model)."""


@dataclass
class Summary:
    seed: int
    api_type: str
    steps: list[str] = field(default_factory=list)
    calls: int = 0
    resolutions: int = 0
    alerts: int = 0
    unroutable: dict[str, float] = field(default_factory=dict)
    """Per kind of action, the longest time a replica it touched was not routable."""


class RandomRun:
    def __init__(
        self,
        root: Path,
        *,
        seed: int,
        api_type: str,
        atlas_argv: list[str] | None = None,
    ) -> None:
        self.root, self.seed, self.api_type = root, seed, api_type
        self.rng = random.Random(seed)
        self.net = RandomNetwork(root, api_type=api_type, atlas_argv=atlas_argv)
        self.timeline = Timeline()
        self.model = Model()
        self.seen = Observations()
        self.revoked: set[str] = set()
        """Clusters removed since their Envoy was installed: it is refused until re-installed."""
        self.rotated = False
        self._last_address: dict[str, bool] = {}
        self._judged = [0, 0, 0]
        self.prober: Prober | None = None
        self.senders: AlertSenders | None = None
        self.summary = Summary(seed, api_type)

    # -- the run ---------------------------------------------------------------------------
    def run(self, actions: int) -> Summary:
        try:
            self.net.start()
            wait_until(lambda: self._status(), within=20, what="Atlas answering")
            self.prober = Prober(self.net, self.seen, self.root / "prober.log")
            self.senders = AlertSenders(CLUSTERS, self._relay, self.seen)
            self._do("add east", lambda: self._add("east", Wanted(replicas=2, group="a")))
            self._do("add west", lambda: self._add("west", Wanted(group="b")))
            for _ in range(actions):
                kind = self._draw()
                self._do(kind, getattr(self, "_add_any" if kind == "add" else f"_{kind}"))
                time.sleep(self.rng.choice((0.0, 0.05, 0.2, 0.5)))
            time.sleep(GRACE)
            self._judge(time.time())
            self._cli_agrees()
            return self._summarize()
        except Violation as err:
            report = self._report(err)
            raise Violation(f"seed {self.seed} ({self.api_type}): {err}\n{report}") from None
        finally:
            self.stop()

    def stop(self) -> None:
        if self.senders is not None:
            self.senders.stop()
        if self.prober is not None:
            self.prober.stop()
        self.net.stop()

    def _draw(self) -> str:
        kinds = [k for k in WEIGHTS if self._applies(k)]
        return self.rng.choices(kinds, [WEIGHTS[k] for k in kinds])[0]

    def _applies(self, kind: str) -> bool:
        present = self._changeable()
        return {
            "add": len(self.model.clusters) < len(CLUSTERS),
            "remove": len(self.model.clusters) > 1,
            "fix": any(c.broken for c in self.model.clusters.values()),
            "unduplicate": any(c.duplicate for c in self.model.clusters.values()),
            "duplicate": any(not c.duplicate for c in self.model.clusters.values()),
            "drop_previous_ca": self.rotated,
            "rotate_ca": not self.rotated,  # a second one is refused until the first is done
            "restart_envoy": bool(set(self.model.clusters) - self.revoked),
        }.get(kind, bool(present))

    def _changeable(self) -> list[str]:
        """Present clusters whose manifest is valid: what scale, move and the like act on."""
        return sorted(c for c, s in self.model.clusters.items() if not s.broken)

    def _do(self, name: str, action: Callable[[], tuple[Model, Touch, Callable[[], None]]]) -> None:
        before = self.model
        t0 = time.time()
        self._between: list[Model] = []
        after, touch, finish = action()
        step = Step(name, t0, before, after, touch, between=tuple(self._between))
        self.timeline.steps.append(step)
        self.model = after
        self.summary.steps.append(name)
        try:
            finish()
        except AssertionError as err:  # a wait that timed out: the step did not converge
            if isinstance(err, Violation):
                raise
            raise Violation(f"{name} did not complete: {err}") from None
        step.t1 = time.time()
        self._converged(step)
        self._judge(time.time())
        if len(self.timeline.steps) % CLI_EVERY == 0:
            self._cli_agrees()

    # -- actions: each returns the model after it, what it may disturb, and how to finish ---
    def _write(self, name: str, cluster: Cluster) -> None:
        text = self.net.cluster_manifest(name, cluster.served, broken=cluster.broken)
        path = self.net.source / f"{name}.yaml"
        if self.rng.random() < 0.5:  # as an editor or a redirect does: truncate, then write
            path.write_text(text)
        else:  # as a careful tool does: a new file, renamed over
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text)
            tmp.replace(path)

    def _targets(self, name: str) -> frozenset[str]:
        return frozenset(f"{name}-{i}" for i in range(MAX_REPLICAS))

    def _add(
        self, name: str, wanted: Wanted | None = None
    ) -> tuple[Model, Touch, Callable[[], None]]:
        if not wanted:
            wanted = Wanted(
                replicas=self.rng.randint(1, MAX_REPLICAS),
                alternate_address=self.rng.random() < 0.3,
                by_annotation=self.rng.random() < 0.3,
                group=self.rng.choice((None, *GROUPS)),
            )
        cluster = Cluster(wanted)
        after = self.model.with_cluster(name, cluster)
        touch = Touch(targets=self._targets(name), alerts=frozenset({name}), dns=True)
        self._write(name, cluster)

        def finish() -> None:  # the operator installs its Envoy once Atlas knows the cluster
            wait_until(
                lambda: name in {c["name"] for c in self._status()["clusters"]},
                within=5,
                what=f"Atlas knows {name}",
            )
            old = self.net.envoys.pop(name, None)
            if old is not None:
                old.stop()
            self.net.start_cluster_envoy(name)
            self.revoked.discard(name)
            self._wait_connected([name])

        return after, touch, finish

    def _add_any(self) -> tuple[Model, Touch, Callable[[], None]]:
        return self._add(self.rng.choice([c for c in CLUSTERS if c not in self.model.clusters]))

    def _remove(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(self.model.clusters))
        duplicate = self.net.source / f"dup-{name}.yaml"
        if duplicate.exists():
            duplicate.unlink()
        (self.net.source / f"{name}.yaml").unlink()
        self.revoked.add(name)
        touch = Touch(targets=self._targets(name), alerts=frozenset({name}), dns=True)
        return self.model.with_cluster(name, None), touch, lambda: None

    def _change(self, name: str, **wanted: Any) -> tuple[Model, Touch]:
        before = self.model.clusters[name].served
        after = self.model.change(name, **wanted)
        new = after.clusters[name].served
        self._write(name, after.clusters[name])
        touch = Touch(dns=before != new)
        if new.replicas != before.replicas:
            low, high = sorted((new.replicas, before.replicas))
            touch |= Touch(targets=frozenset(f"{name}-{i}" for i in range(low, high)))
        if (new.alternate_address, new.by_annotation) != (
            before.alternate_address,
            before.by_annotation,
        ):
            touch |= Touch(targets=self._targets(name), alerts=frozenset({name}))
        return after, touch

    def _one_change(self) -> tuple[Model, Touch]:
        name = self.rng.choice(self._changeable())
        served = self.model.clusters[name].served
        kind = self.rng.choice(("scale", "move", "regroup"))
        if kind == "scale":
            choices = [n for n in range(1, MAX_REPLICAS + 1) if n != served.replicas]
            return self._change(name, replicas=self.rng.choice(choices))
        if kind == "move":
            return self._change(
                name,
                alternate_address=self.rng.random() < 0.5,
                by_annotation=not served.by_annotation,
            )
        groups = [g for g in (None, *GROUPS) if g != served.group]
        return self._change(name, group=self.rng.choice(groups))

    def _scale(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(self._changeable())
        current = self.model.clusters[name].served.replicas
        after, touch = self._change(
            name, replicas=self.rng.choice([n for n in range(1, 4) if n != current])
        )
        return after, touch, lambda: None

    def _move(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(self._changeable())
        served = self.model.clusters[name].served
        after, touch = self._change(
            name,
            alternate_address=not served.alternate_address,
            by_annotation=self.rng.random() < 0.5,
        )
        return after, touch, lambda: None

    def _regroup(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(self._changeable())
        groups = [g for g in (None, *GROUPS) if g != self.model.clusters[name].served.group]
        after, touch = self._change(name, group=self.rng.choice(groups))
        return after, touch, lambda: None

    def _burst(self) -> tuple[Model, Touch, Callable[[], None]]:
        """Several changes within the debounce window (50 ms), each of which Atlas may
        serve for a moment (it reads them in more than one scan)."""
        touch = Touch()
        self._between = []
        for _ in range(self.rng.randint(2, 4)):
            self.model, more = self._one_change()
            self._between.append(self.model)
            touch |= more
            time.sleep(self.rng.uniform(0, 0.015))
        return self.model, touch, lambda: None

    def _break(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(self._changeable())
        cluster = replace(self.model.clusters[name], broken=True)
        self._write(name, cluster)
        return self.model.with_cluster(name, cluster), Touch(), lambda: None

    def _fix(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(c for c, s in self.model.clusters.items() if s.broken))
        cluster = replace(self.model.clusters[name], broken=False)
        self._write(name, cluster)
        return self.model.with_cluster(name, cluster), Touch(), lambda: None

    def _duplicate(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(c for c, s in self.model.clusters.items() if not s.duplicate))
        cluster = self.model.clusters[name]
        other = replace(
            cluster.served,
            replicas=MAX_REPLICAS + 1 - cluster.served.replicas,
            alternate_address=not cluster.served.alternate_address,
        )
        path = self.net.source / f"dup-{name}.yaml"  # sorts first: order must not decide
        path.write_text(self.net.cluster_manifest(name, other))
        return (
            self.model.with_cluster(name, replace(cluster, duplicate=True)),
            Touch(),
            lambda: None,
        )

    def _unduplicate(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(c for c, s in self.model.clusters.items() if s.duplicate))
        (self.net.source / f"dup-{name}.yaml").unlink()
        cluster = replace(self.model.clusters[name], duplicate=False)
        return self.model.with_cluster(name, cluster), Touch(), lambda: None

    def _rotate_ca(self) -> tuple[Model, Touch, Callable[[], None]]:
        result = run_atlas(["ca", "rotate", "--state-dir", str(self.net.state)])
        if result.returncode != 0:
            raise Violation(f"atlas ca rotate failed: {result.stderr}")
        self.rotated = True
        return self.model, Touch(), lambda: None

    def _drop_previous_ca(self) -> tuple[Model, Touch, Callable[[], None]]:
        """Every Envoy re-installed with a bootstrap from the new CA, then the old one
        dropped, as the runbook has it."""

        def finish() -> None:
            before = self._peers()
            self.net.restart_observability_envoy()
            for name in sorted(set(self.model.clusters) - self.revoked):
                self.net.envoys.pop(name).stop()
                self.net.start_cluster_envoy(name)
            nodes = ["atlas", *sorted(set(self.model.clusters) - self.revoked)]
            self._wait_connected(nodes, before)
            for name in self.revoked & set(self.net.envoys):
                self.net.envoys.pop(name).stop()  # uninstalled: it would block the drop
            url = f"http://{self.net.atlas_ip}:{self.net.http_port}/status"
            result = run_atlas(
                ["ca", "drop-previous", "--state-dir", str(self.net.state), "--status-url", url]
            )
            if result.returncode != 0:
                raise Violation(f"atlas ca drop-previous refused: {result.stderr}")
            self.rotated = False

        return self.model, Touch(everything=True), finish

    def _kill_atlas(self) -> tuple[Model, Touch, Callable[[], None]]:
        """SIGKILL, then the same command again: Envoys keep serving what they have."""

        def finish() -> None:
            assert self.net.atlas is not None
            self.net.atlas.kill(signal.SIGKILL)
            time.sleep(self.rng.uniform(0, 1))
            self.net.start_atlas()
            self._wait_connected(["atlas", *sorted(set(self.model.clusters) - self.revoked)])

        return self.model, Touch(dns=True, dns_down=True), finish

    def _restart_envoy(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(set(self.model.clusters) - self.revoked))

        def finish() -> None:
            before = self._peers()
            envoy = self.net.envoys[name]
            envoy.kill(self.rng.choice((signal.SIGTERM, signal.SIGKILL)))
            envoy.start()
            self._wait_connected([name], before)

        return self.model, Touch(targets=self._targets(name), alerts=frozenset({name})), finish

    def _restart_observability(self) -> tuple[Model, Touch, Callable[[], None]]:
        def finish() -> None:
            before = self._peers()
            self.net.restart_observability_envoy()
            self._wait_connected(["atlas"], before)

        return self.model, Touch(everything=True), finish

    # -- observation -------------------------------------------------------------------------
    def _relay(self, cluster: str) -> tuple[str, int] | None:
        """Where the cluster's alert relay listens now, if its Envoy runs."""
        envoy = self.net.envoys.get(cluster)
        if envoy is None or envoy.proc is None:
            return None
        served = self.model.clusters.get(cluster)
        if served is not None:  # a removed cluster's Envoy keeps the address it last had
            self._last_address[cluster] = served.served.alternate_address
        alternate = self._last_address.get(cluster, False)
        return self.net.address(cluster, alternate), self.net.ds_ports["alert_relay"]

    def _status(self) -> dict[str, Any]:
        try:
            return self.net.status()
        except OSError:
            return {}

    def _peers(self) -> dict[str, str]:
        """Each node's stream peer now: a restarted Envoy connects from another port."""
        return {n["node"]: n["peer"] for n in self._status().get("nodes", []) if n["connected"]}

    def _wait_connected(self, nodes: list[str], before: dict[str, str] | None = None) -> None:
        """Until each node's Envoy holds a stream (a new one, when ``before`` has its old
        peer) and has ACKed what it is served."""
        before = before or {}

        def connected() -> bool:
            status = {n["node"]: n for n in self._status().get("nodes", [])}
            return all(
                status.get(n, {}).get("connected")
                and status[n]["in_sync"]
                and status[n]["peer"] != before.get(n)
                for n in nodes
            )

        wait_until(connected, within=SETTLE, what=f"{nodes} connected")

    def _converged(self, step: Step) -> None:
        """``/status`` agrees with the model within GRACE of the step's end."""
        deadline = step.t1 + max(GRACE, SETTLE if step.touch.everything else GRACE)
        problems: list[str] = []
        while True:
            problems = self._disagreements(self._status())
            if not problems or time.time() > deadline:
                break
            time.sleep(0.05)
        if problems:
            raise Violation(f"after {step.name}, /status disagrees with the model: {problems}")

    def _disagreements(self, status: dict[str, Any]) -> list[str]:
        if not status:
            return ["no answer"]
        problems = []
        served = {
            c["name"]: (c["replicas"], c["envoy_address"], c["group"]) for c in status["clusters"]
        }
        wanted = {
            name: (
                c.served.replicas,
                self.net.address(name, c.served.alternate_address),
                c.served.group,
            )
            for name, c in self.model.clusters.items()
        }
        if served != wanted:
            problems.append(f"clusters {served} != model {wanted}")
        if len(status["errors"]) != self.model.rejected():
            problems.append(f"errors {status['errors']} != {self.model.rejected()} rejected")
        if not status["ready"]:
            problems.append(f"not ready: {status['problems']}")
        if status["publisher"]["pending"]:
            problems.append("a change read is not published yet")
        nodes = {n["node"]: n for n in status["nodes"]}
        for node in ["atlas", *sorted(set(self.model.clusters) - self.revoked)]:
            entry = nodes.get(node, {})
            if not (entry.get("connected") and entry.get("in_sync")):
                problems.append(f"{node} not connected and in sync: {entry.get('acked')}")
        for entry in status["nodes"]:
            if entry.get("last_nack"):
                raise Violation(f"{entry['node']} NACKed: {entry['last_nack']}")
        return problems

    def _judge(self, until: float) -> None:
        with self.seen.lock:
            calls = self.seen.calls[self._judged[0] :]
            resolutions = self.seen.resolutions[self._judged[1] :]
            alerts = self.seen.alerts[self._judged[2] :]
        calls = [c for c in calls if c.t <= until]
        resolutions = [r for r in resolutions if r.t <= until]
        alerts = [a for a in alerts if a.t <= until]
        judge_calls(self.timeline, calls)
        judge_resolutions(self.timeline, resolutions)
        judge_alerts(self.timeline, alerts)
        self._judged[0] += len(calls)
        self._judged[1] += len(resolutions)
        self._judged[2] += len(alerts)
        logs = [e.log for e in self.net.envoys.values()]
        flagged = no_cluster_flags(logs)
        if flagged:
            raise Violation(f"routed to a cluster its Envoy did not have (NC): {flagged[:3]}")

    def _cli_agrees(self) -> None:
        """``atlas status``, as an operator runs it, says what the model says."""
        url = f"http://{self.net.atlas_ip}:{self.net.http_port}/status"
        result = run_atlas(["status", "--url", url, "-o", "json", "--no-probe"])
        report = json.loads(result.stdout)
        rows = {r["name"]: r for r in report["clusters"]}
        expected = {"(observability)", *self.model.clusters}
        if set(rows) != expected:
            raise Violation(f"atlas status rows {sorted(rows)} != {sorted(expected)}")
        for name in ["(observability)", *sorted(set(self.model.clusters) - self.revoked)]:
            if not (rows[name]["connected"] and rows[name]["in_sync"]):
                raise Violation(f"atlas status: {name} {rows[name]}")
        code = 0 if not self.model.rejected() and not self.revoked & set(rows) else 1
        if result.returncode != code:
            raise Violation(f"atlas status exited {result.returncode}, the model says {code}")

    # -- results -----------------------------------------------------------------------------
    def _summarize(self) -> Summary:
        s = self.summary
        with self.seen.lock:
            s.calls, s.resolutions, s.alerts = (
                len(self.seen.calls),
                len(self.seen.resolutions),
                len(self.seen.alerts),
            )
            calls = list(self.seen.calls)
        by_target: dict[str, list[Any]] = defaultdict(list)
        for call in calls:
            by_target[call.target].append(call)
        steps = self.timeline.steps
        for k, step in enumerate(steps):
            kind = step.name.split()[0]
            worst = 0.0
            wanted = step.touch.targets if not step.touch.everything else step.after.targets()
            for target in wanted & step.after.targets():
                # Until its first good answer after the step began, if it failed before that,
                # and before a later step touched it again (then that one is measured).
                end = next(
                    (
                        later.t0
                        for later in steps[k + 1 :]
                        if later.touch.everything or target in later.touch.targets
                    ),
                    float("inf"),
                )
                after = [c for c in by_target[target] if step.t0 <= c.t < end]
                first_ok = next((c.t for c in after if c.code == "OK"), None)
                if first_ok is not None and any(c.code != "OK" for c in after if c.t < first_ok):
                    worst = max(worst, first_ok - step.t0)
            s.unroutable[kind] = max(s.unroutable.get(kind, 0.0), worst)
        return s

    def _report(self, err: Exception) -> str:
        lines = [f"seed {self.seed}, {self.api_type}: {err}", "steps:"]
        lines += [f"  {s.t0:.3f}-{s.t1:.3f} {s.name} {s.touch}" for s in self.timeline.steps[-30:]]
        lines.append(f"model: {self.model}")
        try:
            lines.append("status: " + json.dumps(self.net.status(), indent=1)[:20000])
        except OSError as e:
            lines.append(f"status: {e}")
        for name, envoy in self.net.envoys.items():
            lines.append(f"--- envoy {name}: routes, clusters and listeners")
            try:
                lines.append(_routes_and_clusters(envoy.admin_get("/config_dump")))
                lines.append(envoy.admin_get("/listeners"))
            except OSError as e:
                lines.append(f"(no admin: {e})")
        with self.seen.lock:
            recent = [*self.seen.alerts[-40:], *self.seen.calls[-60:]]
        lines.append("--- the last observations")
        lines += [f"  {o}" for o in sorted(recent, key=_when)]
        lines.append(self.net.logs())
        text = "\n".join(lines)
        (self.root / "report.txt").write_text(text)
        return f"(full report: {self.root / 'report.txt'})\n" + "\n".join(lines[:40])


def _routes_and_clusters(dump_text: str) -> str:
    dump = json.loads(dump_text)
    out = []
    for config in dump.get("configs", []):
        kind = config.get("@type", "")
        if kind.endswith("ClustersConfigDump"):
            for c in config.get("dynamic_active_clusters", []):
                out.append(f"  cluster {c['cluster']['name']} v{c.get('version_info')}")
            for c in config.get("dynamic_warming_clusters", []):
                out.append(f"  warming {c['cluster']['name']} v{c.get('version_info')}")
        if kind.endswith("RoutesConfigDump"):
            for r in config.get("dynamic_route_configs", []):
                hosts = [v["name"] for v in r["route_config"].get("virtual_hosts", [])]
                out.append(f"  route {r['route_config']['name']} v{r.get('version_info')} {hosts}")
    return "\n".join(out)


def _when(observation: Any) -> float:
    return float(observation.t)
