"""Every rcode and flag of the brief, with dnspython building and reading the packets."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from atlas.model import DownstreamCluster, Topology
from dns_server.resolver import Resolver
from dns_server.zone import build_zone
from tests.dns_server.live import fleet

SRV_ALL = "_grpc._tcp.sidecars.thanos.atlas."


@pytest.fixture
def resolver() -> Resolver:
    r = Resolver()
    topo = Topology(
        (
            DownstreamCluster("east", "192.0.2.1", replicas=2, group="prod"),
            DownstreamCluster("west", "192.0.2.2"),
        )
    )
    r.set_zone(build_zone(topo, addresses=["10.0.0.5", "fd00::5"], serial=42))
    return r


def ask(
    r: Resolver, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: object
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    wire = r.resolve(query.to_wire(), tcp=tcp)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.id == query.id
    return response


def test_servfail_until_the_first_zone() -> None:
    r = Resolver()
    response = ask(r, SRV_ALL, "SRV")
    assert response.rcode() == dns.rcode.SERVFAIL and not response.answer
    assert not response.flags & dns.flags.AA


def test_srv_answer_holds_only_srv_and_addresses_go_in_additional(resolver: Resolver) -> None:
    response = ask(resolver, SRV_ALL, "SRV", use_edns=0)
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert {rrset.rdtype for rrset in response.answer} == {dns.rdatatype.SRV}
    targets = sorted(str(rd.target) for rd in response.answer[0])
    assert targets == [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
        "west-0.sidecars.thanos.atlas.",
    ]
    assert all(
        rd.port == 10901 and rd.priority == 10 and rd.weight == 100 for rd in response.answer[0]
    )
    extra = {(str(rr.name), rr.rdtype) for rr in response.additional}
    assert ("east-0.sidecars.thanos.atlas.", dns.rdatatype.A) in extra
    assert ("west-0.sidecars.thanos.atlas.", dns.rdatatype.AAAA) in extra


def test_per_cluster_and_group_srv(resolver: Resolver) -> None:
    east = ask(resolver, "_grpc._tcp.east.sidecars.thanos.atlas.", "SRV")
    assert len(east.answer[0]) == 2
    prod = ask(resolver, "_grpc._tcp.prod.groups.thanos.atlas.", "SRV")
    assert sorted(str(rd.target) for rd in prod.answer[0]) == [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
    ]


def test_a_and_aaaa_of_targets(resolver: Resolver) -> None:
    a = ask(resolver, "west-0.sidecars.thanos.atlas.", "A")
    assert [rd.address for rd in a.answer[0]] == ["10.0.0.5"] and a.answer[0].ttl == 30
    aaaa = ask(resolver, "west-0.sidecars.thanos.atlas.", "AAAA")
    assert [rd.address for rd in aaaa.answer[0]] == ["fd00::5"]


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("north-0.sidecars.thanos.atlas.", "A", dns.rcode.NXDOMAIN),
        ("atlas.", "A", dns.rcode.NOERROR),
        ("west-0.sidecars.thanos.atlas.", "TXT", dns.rcode.NOERROR),
        ("sidecars.thanos.atlas.", "A", dns.rcode.NOERROR),
        ("_grpc._tcp.north.sidecars.thanos.atlas.", "SRV", dns.rcode.NXDOMAIN),
    ],
)
def test_nxdomain_and_nodata_carry_the_soa(
    resolver: Resolver, name: str, rdtype: str, rcode: int
) -> None:
    response = ask(resolver, name, rdtype)
    assert response.rcode() == rcode and not response.answer
    assert response.flags & dns.flags.AA
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa[0].serial == 42 and soa[0].minimum == 5


def test_apex_soa_and_ns(resolver: Resolver) -> None:
    soa = ask(resolver, "atlas.", "SOA")
    assert soa.answer[0][0].serial == 42 and str(soa.answer[0][0].mname) == "ns.atlas."
    ns = ask(resolver, "atlas.", "NS")
    assert [str(rd.target) for rd in ns.answer[0]] == ["ns.atlas."]


@pytest.mark.parametrize("name", ["example.com.", "atlas.example.", ".", "xatlas."])
def test_outside_the_zone_is_refused(resolver: Resolver, name: str) -> None:
    response = ask(resolver, name, "NS")
    assert response.rcode() == dns.rcode.REFUSED and not response.answer
    assert not response.flags & dns.flags.AA


def test_other_opcodes_and_classes_are_refused(resolver: Resolver) -> None:
    query = dns.message.make_query(SRV_ALL, "SRV")
    query.set_opcode(dns.opcode.STATUS)
    response = dns.message.from_wire(resolver.resolve(query.to_wire()) or b"")
    assert response.rcode() == dns.rcode.REFUSED
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    assert (
        dns.message.from_wire(resolver.resolve(chaos.to_wire()) or b"").rcode() == dns.rcode.REFUSED
    )
    chaos_in_zone = dns.message.make_query("atlas.", "SOA", rdclass="CH")
    assert (
        dns.message.from_wire(resolver.resolve(chaos_in_zone.to_wire()) or b"").rcode()
        == dns.rcode.REFUSED
    )


def test_case_is_echoed_and_ignored(resolver: Resolver) -> None:
    response = ask(resolver, "_GrPc._TcP.SiDeCaRs.ThAnOs.AtLaS.", "SRV")
    assert str(response.question[0].name) == "_GrPc._TcP.SiDeCaRs.ThAnOs.AtLaS."
    assert len(response.answer[0]) == 3


def test_formerr_and_drops(resolver: Resolver) -> None:
    query = dns.message.make_query(SRV_ALL, "SRV").to_wire()
    truncated = query[:-3]
    response = dns.message.from_wire(resolver.resolve(truncated) or b"", question_only=True)
    assert response.rcode() == dns.rcode.FORMERR
    two_questions = query[:4] + b"\x00\x02" + query[6:]
    assert (
        dns.message.from_wire(resolver.resolve(two_questions) or b"", question_only=True).rcode()
        == dns.rcode.FORMERR
    )
    assert resolver.resolve(b"\x12") is None, "a runt gets no answer"
    as_response = query[:2] + bytes([query[2] | 0x80]) + query[3:]
    assert resolver.resolve(as_response) is None, "responses are never answered"


def test_edns_badvers_and_payload(resolver: Resolver) -> None:
    response = ask(resolver, SRV_ALL, "SRV", use_edns=1)
    assert response.rcode() == dns.rcode.BADVERS
    ok = ask(resolver, SRV_ALL, "SRV", use_edns=0, payload=4096)
    assert ok.edns == 0 and ok.payload == 1232


def test_udp_truncation_and_full_tcp_answer() -> None:
    r = Resolver()
    r.set_zone(build_zone(fleet(100), addresses=["10.0.0.5"], serial=1))
    small = ask(r, SRV_ALL, "SRV", use_edns=0, payload=512)
    assert small.flags & dns.flags.TC and not small.answer
    plain = ask(r, SRV_ALL, "SRV")  # no EDNS: 512 bytes
    assert plain.flags & dns.flags.TC
    full = ask(r, SRV_ALL, "SRV", tcp=True)
    assert not full.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in full.answer) == 200
    assert sum(len(rrset) for rrset in full.additional) == 200


def test_answers_too_big_for_tcp_drop_additional_first() -> None:
    r = Resolver()
    r.set_zone(build_zone(fleet(600), addresses=["10.0.0.5"], serial=1))
    response = ask(r, SRV_ALL, "SRV", tcp=True)
    assert not response.flags & dns.flags.TC and not response.additional
    assert sum(len(rrset) for rrset in response.answer) == 1200


def test_an_answer_beyond_64k_is_flagged_not_silently_cut() -> None:
    """SRV targets are never compressed (RFC 2782): about 1,300 targets fit one TCP answer.
    Past that the answer says TC instead of quietly dropping clusters; use groups."""
    r = Resolver()
    r.set_zone(build_zone(fleet(1500, replicas=1), addresses=["10.0.0.5"], serial=1))
    response = ask(r, SRV_ALL, "SRV", tcp=True)
    assert response.flags & dns.flags.TC and not response.answer
    group = ask(r, "_grpc._tcp.even.groups.thanos.atlas.", "SRV", tcp=True)
    assert not group.flags & dns.flags.TC and sum(len(x) for x in group.answer) == 750


def test_a_new_zone_is_served_at_once(resolver: Resolver) -> None:
    resolver.set_zone(build_zone(Topology(), addresses=[], serial=43))
    response = ask(resolver, SRV_ALL, "SRV")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert ask(resolver, "east-0.sidecars.thanos.atlas.", "A").rcode() == dns.rcode.NXDOMAIN


def srv_targets(response: dns.message.Message) -> list[str]:
    return sorted(str(rd.target) for rrset in response.answer for rd in rrset)


def test_goatlas_port_names_of_the_storeapi_answer_like_grpc() -> None:
    """goatlas.io/atlas published _<port-name>._tcp: its cluster add named the port
    ``thanos``; its docs' Service named it ``grpc``; any name on port 10901 counts."""
    r = Resolver()
    topo = Topology(
        (
            DownstreamCluster("east", "192.0.2.1", replicas=2, group="prod"),
            DownstreamCluster("west", "192.0.2.2", srv_services=("store",)),
        )
    )
    r.set_zone(build_zone(topo, addresses=["10.0.0.5"], serial=1))
    every = [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
        "west-0.sidecars.thanos.atlas.",
    ]
    for service in ("grpc", "thanos", "store", "THANOS"):
        name = f"_{service}._tcp.sidecars.thanos.atlas."
        response = ask(r, name, "SRV")
        assert response.rcode() == dns.rcode.NOERROR, name
        assert srv_targets(response) == every, name
        assert {str(rrset.name) for rrset in response.answer} == {name}, "owner is the question"
        assert response.additional, "the targets' addresses ride along"
    east = ask(r, "_thanos._tcp.east.sidecars.thanos.atlas.", "SRV")
    assert srv_targets(east) == every[:2]
    prod = ask(r, "_thanos._tcp.prod.groups.thanos.atlas.", "SRV")
    assert srv_targets(prod) == every[:2]
    for name in (
        "_prometheus._tcp.sidecars.thanos.atlas.",
        "_alertmanager._tcp.sidecars.thanos.atlas.",
        "_thanos._udp.sidecars.thanos.atlas.",
        "_thanos._tcp.north.sidecars.thanos.atlas.",
    ):
        assert ask(r, name, "SRV").rcode() == dns.rcode.NXDOMAIN, name
