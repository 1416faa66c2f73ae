"""The invariants of a randomized run, judged against the timeline of what was done.

Every observation carries its time. A step (an operator action or a fault) has a start, an
end and what it may disturb (``Touch``); ``GRACE`` after its end, what it changed must hold.
Outside every window that touches it, an observation must match the model in force:

* routing: a replica the model has answers Info with its own labels, every call; one it
  does not have gets the documented refusal (or, once its name is gone from DNS, no address),
  never another replica's data (labels are checked inside windows too);
* DNS: each SRV name lists exactly the model's targets; inside a window it may lag, but is
  never empty or NXDOMAIN for a cluster that exists before and after, and never times out or
  fails unless Atlas itself is down;
* alerts: a present cluster's relay delivers (200); a removed one's never does (403 from the
  intake's allow-list, or a TLS failure once a CA rotation left its trust behind);
* status: ``/status`` and ``atlas status`` agree with the model (checked by the runner).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.e2e.randomized.model import Model
from tests.e2e.randomized.observe import Alert, Call, Resolution

GRACE = 2.0
"""Seconds after a step's end within which what it changed must hold everywhere."""
EARLY = 0.05
"""Seconds before a step's start already counted in its window (the clocks of the prober
and of this process are the same, but a call is stamped when it ends)."""

REFUSAL = "atlas: no cluster/replica"
"""The start of the observability Envoy's answer for a name that routes nowhere."""
NO_ADDRESS = ("produced zero addresses", "no such host", "name resolver", "lookup ")
"""grpc-go's words when a target's name does not resolve: a removed cluster's, once a
connection has to be made again (or while Atlas, its DNS server, restarts)."""


class Violation(AssertionError):
    """An invariant did not hold: what, when, and the observation."""


@dataclass(frozen=True)
class Touch:
    """What a step may disturb while it runs and for ``GRACE`` after."""

    targets: frozenset[str] = frozenset()
    alerts: frozenset[str] = frozenset()
    """Clusters whose alert relay may fail."""
    dns: bool = False
    """SRV answers may lag behind the model."""
    dns_down: bool = False
    """Atlas itself is down: DNS may time out or answer SERVFAIL."""
    everything: bool = False
    """The observability Envoy restarts: every route and every relay."""

    def __or__(self, other: Touch) -> Touch:
        return Touch(
            self.targets | other.targets,
            self.alerts | other.alerts,
            self.dns or other.dns,
            self.dns_down or other.dns_down,
            self.everything or other.everything,
        )


@dataclass
class Step:
    name: str
    t0: float
    before: Model
    after: Model
    touch: Touch
    t1: float = 0.0
    """When it ended (0 while it runs)."""
    between: tuple[Model, ...] = ()
    """Models on the way (a burst's edits, each of which Atlas may serve for a moment)."""

    def models(self) -> tuple[Model, ...]:
        return (self.before, *self.between, self.after)

    def window(self, t: float) -> bool:
        return self.t0 - EARLY <= t and (self.t1 == 0.0 or t <= self.t1 + GRACE)


@dataclass
class Timeline:
    start: Model = field(default_factory=Model)
    steps: list[Step] = field(default_factory=list)

    def model_at(self, t: float) -> Model:
        model = self.start
        for step in self.steps:
            if step.t0 <= t:
                model = step.after
        return model

    def active(self, t: float) -> list[Step]:
        return [s for s in self.steps if s.window(t)]


def _replica_labels(target: str) -> dict[str, str]:
    cluster, _, replica = target.rpartition("-")
    return {"cluster": cluster, "replica": replica}


def judge_calls(timeline: Timeline, calls: Iterable[Call]) -> None:
    for call in calls:
        own = _replica_labels(call.target)
        if call.code == "OK" and call.labels != own:
            raise Violation(f"{call.target} answered with another's data {call.labels}: {call}")
        active = timeline.active(call.t)
        if any(s.touch.everything or call.target in s.touch.targets for s in active):
            continue
        if "lookup " in call.error and any(s.touch.dns_down for s in active):
            continue  # a new connection needs the name while Atlas, its DNS server, is down
        expected = call.target in timeline.model_at(call.t).targets()
        if expected and call.code != "OK":
            names = [s.name for s in active]
            raise Violation(f"{call.target} failed outside any change touching it {names}: {call}")
        if not expected:
            refused = call.code == "Unavailable" and call.error.startswith(REFUSAL)
            unresolved = call.code == "Unavailable" and any(w in call.error for w in NO_ADDRESS)
            if not (refused or unresolved):
                raise Violation(f"{call.target} is not in the model but got: {call}")


def judge_resolutions(timeline: Timeline, resolutions: Iterable[Resolution]) -> None:
    for r in resolutions:
        active = [s for s in timeline.active(r.t) if s.touch.dns or s.touch.dns_down]
        down = any(s.touch.dns_down for s in active)
        failed = bool(r.error) or r.rcode not in ("NOERROR", "NXDOMAIN")
        if failed:
            if down and (r.rcode in ("SERVFAIL", "") or "timeout" in r.error):
                continue
            raise Violation(f"DNS {r.name} failed outside an Atlas restart: {r}")
        if active:
            models = [m for s in active for m in s.models()]
            if all(m.srv(r.name) for m in models) and not r.targets:
                raise Violation(f"DNS {r.name} empty while every model has targets: {r}")
            allowed = set().union(*(m.srv(r.name) for m in models))
            if not r.targets <= allowed:
                raise Violation(f"DNS {r.name} lists {set(r.targets) - allowed}, in no model: {r}")
            continue
        expected = timeline.model_at(r.t).srv(r.name)
        if set(r.targets) != expected:
            raise Violation(f"DNS {r.name} lists {sorted(r.targets)}, the model {sorted(expected)}")


def judge_alerts(timeline: Timeline, alerts: Iterable[Alert]) -> None:
    for a in alerts:
        active = timeline.active(a.t)
        if any(s.touch.everything or a.cluster in s.touch.alerts for s in active):
            continue
        present = a.cluster in timeline.model_at(a.t).clusters
        if present and a.status != 200:
            raise Violation(f"alert relay of {a.cluster} (present) answered {a.status}: {a}")
        if not present and a.status in range(200, 300):
            # Refused: 403 by the intake's allow-list, or at TLS once its trust is outdated.
            raise Violation(f"alert relay of {a.cluster} (removed) delivered: {a}")
