"""What ``atlas status`` concludes about certificates: a bootstrap certificate (installed by
the operator) near its end is a problem; a leaf is Atlas's to renew, so it is one only when
its renewal is overdue. The randomized soak found the old rule wrong: with leaves shorter
than the warning window (36 s there), every cluster was always degraded. (A real leaf's
lifetime is 30 days; these are minutes, so the clock moving during the test changes nothing.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.cli.status_report import DnsCheck, Report, build_report


def _at(seconds: float) -> str:
    """``seconds`` from now (the report reads the clock itself)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def report(dns: DnsCheck | None = None, **east: Any) -> Report:
    versions = {"cluster": "v"}
    node = {"connected": True, "in_sync": True, "serving": versions, "acked": versions}
    document = {
        "ready": True,
        "observability_node": "atlas",
        "clusters": [{"name": "east", "replicas": 1}],
        "nodes": [{**node, "node": "atlas"}, {**node, "node": "east", **east}],
    }
    return build_report({"http://127.0.0.1:9180/status": document}, [], errors={}, dns=dns)


def east_problems(result: Report) -> list[str]:
    return next(r.problems for r in result.rows if r.name == "east")


def test_a_short_lived_leaf_that_is_renewed_in_time_is_healthy() -> None:
    result = report(leaf_expires=_at(1200), leaf_renew_by=_at(600))
    assert east_problems(result) == [] and result.healthy


def test_a_leaf_whose_renewal_is_overdue_is_a_problem() -> None:
    due, expires = _at(-600), _at(600)
    result = report(leaf_expires=expires, leaf_renew_by=due)
    assert east_problems(result) == [
        f"leaf certificate not renewed (due by {due}), expires {expires}"
    ]
    assert not result.healthy


def test_a_bootstrap_certificate_near_its_end_is_a_problem() -> None:
    soon = _at(3 * 86400)
    result = report(client_certificate={"expires": soon}, leaf_renew_by=_at(600))
    assert east_problems(result) == [f"bootstrap certificate expires {soon}"]
    later = _at(30 * 86400)
    assert east_problems(report(client_certificate={"expires": later})) == []


def test_dns_must_answer_every_served_sidecar_and_nothing_else() -> None:
    east = ["east-0.sidecars.thanos.atlas."]
    assert report(DnsCheck("10.0.0.53:53", rcode="NOERROR", targets=east)).healthy
    stale = DnsCheck(
        "10.0.0.53:53", rcode="NOERROR", targets=[*east, "west-0.sidecars.thanos.atlas."]
    )
    result = report(stale)
    assert not result.healthy and result.dns is not None
    assert result.dns.problems == [
        "DNS 10.0.0.53:53: answers ['east-0.sidecars.thanos.atlas.', "
        "'west-0.sidecars.thanos.atlas.'], /status serves ['east-0.sidecars.thanos.atlas.']"
    ]
    failing = report(DnsCheck("10.0.0.53:53", rcode="SERVFAIL"))
    assert failing.dns is not None
    assert failing.dns.problems == ["DNS 10.0.0.53:53: SERVFAIL for the sidecars' SRV name"]


def test_only_atlas_is_judged_when_asked() -> None:
    """``--only-atlas`` (the chart's helm test): an Envoy not connected yet is reported but
    does not make Atlas unhealthy."""
    versions = {"cluster": "v"}
    document = {
        "ready": True,
        "observability_node": "atlas",
        "clusters": [{"name": "east", "replicas": 1}],
        "nodes": [
            {
                "node": "atlas",
                "connected": True,
                "in_sync": True,
                "serving": versions,
                "acked": versions,
            }
        ],
    }
    urls = {"http://127.0.0.1:9180/status": document}
    assert not build_report(urls, [], errors={}).healthy, "east's Envoy is not connected"
    alone = build_report(urls, [], errors={}, judge_clusters=False)
    assert alone.healthy
    assert next(r for r in alone.rows if r.name == "east").problems
