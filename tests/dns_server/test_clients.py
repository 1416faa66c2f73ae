"""Real clients against a live server: dig (UDP, TCP, EDNS sizes, 0x20), dnspython, and
Debian's unbound forwarding only ``atlas.`` to Atlas, in place of CoreDNS's forward stanza."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from atlas.demo.ports import free_port
from atlas.demo.processes import stop_child
from tests.dns_server.live import LiveDns, fleet
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

DIG = shutil.which("dig")
UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists() else None
)
SRV_ALL = "_grpc._tcp.sidecars.thanos.atlas."


def dig(port: int, *args: str, server: str = "127.0.0.1") -> str:
    assert DIG, "dig (Debian bind9-dnsutils) is required; .ci/run installs it"
    result = subprocess.run(
        [DIG, f"@{server}", "-p", str(port), "+time=3", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


def status_of(output: str) -> str:
    for line in output.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    raise AssertionError(f"no status in dig output:\n{output}")


def test_dig_every_record_kind_and_rcode(live: LiveDns) -> None:
    assert status_of(dig(live.port, SRV_ALL, "SRV")) == "SERVFAIL", "before the first sync"
    live.update(fleet(3))
    out = dig(live.port, SRV_ALL, "SRV")
    assert status_of(out) == "NOERROR" and " aa" in out.split("flags:")[1].split(";")[0]
    assert "IN\tSRV\t10 100 10901 c000-0.sidecars.thanos.atlas." in out
    assert "c002-1.sidecars.thanos.atlas. 30 IN\tA\t127.0.0.1" in out
    assert "c002-1.sidecars.thanos.atlas. 30 IN\tAAAA\t::1" in out
    assert "ANSWER: 6," in out and "ADDITIONAL: 13" in out  # 12 addresses + OPT
    answer = out.split("ANSWER SECTION:")[1].split("ADDITIONAL SECTION:")[0]
    assert "\tA\t" not in answer, "only SRV records in the Answer section"
    assert "10901 c001-0" in dig(live.port, "_grpc._tcp.odd.groups.thanos.atlas.", "SRV")
    assert (
        "c001"
        not in dig(live.port, "_grpc._tcp.even.groups.thanos.atlas.", "SRV")
        .split("ANSWER SECTION")[-1]
        .split("ADDITIONAL")[0]
    )
    assert status_of(dig(live.port, "c009-0.sidecars.thanos.atlas.", "A")) == "NXDOMAIN"
    nodata = dig(live.port, "c000-0.sidecars.thanos.atlas.", "TXT")
    assert status_of(nodata) == "NOERROR" and "ANSWER: 0," in nodata and "SOA" in nodata
    assert status_of(dig(live.port, "example.com.", "A")) == "REFUSED"
    soa = dig(live.port, "atlas.", "SOA", "+short")
    assert soa.startswith("ns.atlas. hostmaster.atlas. ")
    assert dig(live.port, "atlas.", "NS", "+short").strip() == "ns.atlas."
    assert status_of(dig(live.port, ".", "NS")) == "REFUSED", (
        "a forwarder's health check gets a prompt answer"
    )


def test_dig_tcp_and_truncation_retry(live: LiveDns) -> None:
    live.update(fleet(100))
    tcp = dig(live.port, SRV_ALL, "SRV", "+tcp")
    assert "ANSWER: 200," in tcp and "flags: qr aa rd;" in tcp
    small = dig(live.port, SRV_ALL, "SRV", "+bufsize=512", "+ignore")
    assert " tc" in small.split("flags:")[1].split(";")[0] and "ANSWER: 0," in small
    retried = dig(live.port, SRV_ALL, "SRV", "+bufsize=512")
    assert "Truncated, retrying in TCP mode" in retried and "ANSWER: 200," in retried
    assert retried.count("IN\tSRV\t") == 200


def test_mixed_case_names_0x20(live: LiveDns) -> None:
    live.update(fleet(2))
    out = dig(live.port, "_GrPc._tCp.SIDECARS.thanos.ATLAS.", "SRV")
    assert status_of(out) == "NOERROR" and out.count("IN\tSRV\t") == 4
    assert ";_GrPc._tCp.SIDECARS.thanos.ATLAS. IN\tSRV" in out
    query = dns.message.make_query("C000-1.SideCars.Thanos.Atlas.", "A")
    response = dns.query.udp(query, "127.0.0.1", port=live.port, timeout=3)
    assert response.rcode() == dns.rcode.NOERROR
    assert str(response.question[0].name) == "C000-1.SideCars.Thanos.Atlas."


def test_ipv6_listener(live: LiveDns) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = live.call(live.server.start("::1", 0))
    live.update(fleet(1))
    out = dig(port, SRV_ALL, "SRV", server="::1")
    assert status_of(out) == "NOERROR" and "10901 c000-0" in out
    assert "ANSWER: 2," in dig(port, SRV_ALL, "SRV", "+tcp", server="::1")


def test_several_queries_on_one_tcp_connection(live: LiveDns) -> None:
    live.update(fleet(2))
    with socket.create_connection(("127.0.0.1", live.port), timeout=3) as sock:
        for name in ("c000-0.sidecars.thanos.atlas.", "c001-1.sidecars.thanos.atlas.", SRV_ALL):
            dns.query.send_tcp(
                sock, dns.message.make_query(name, "SRV" if name == SRV_ALL else "A")
            )
            response, _ = dns.query.receive_tcp(sock, expiration=time.time() + 3)
            assert response.rcode() == dns.rcode.NOERROR and response.answer


def test_idle_tcp_connections_time_out() -> None:
    from dns_server.protocol import TcpHandler

    server = LiveDns()
    try:
        server.call(server.server.stop())

        async def start() -> int:
            import asyncio

            tcp = await asyncio.start_server(
                TcpHandler(server.server.resolver, idle_timeout=0.3), "127.0.0.1", 0
            )
            server.server._servers.append(tcp)
            return int(tcp.sockets[0].getsockname()[1])

        port = server.call(start())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            assert sock.recv(10) == b"", "the server closes an idle connection"
            assert time.monotonic() - started < 3
    finally:
        server.stop()


@pytest.fixture
def unbound(live: LiveDns, tmp_path: Path) -> Iterator[int]:
    assert UNBOUND, "unbound (Debian) is required; .ci/run installs it"
    port = free_port("127.0.0.1")
    conf = tmp_path / "unbound.conf"
    conf.write_text(f"""server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{tmp_path}"
    pidfile: "{tmp_path}/unbound.pid"
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    domain-insecure: "atlas."
    local-zone: "atlas." transparent
    verbosity: 1
forward-zone:
    name: "atlas."
    forward-addr: 127.0.0.1@{live.port}
""")
    proc = subprocess.Popen(
        [UNBOUND, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: "status:" in dig(port, "atlas.", "SOA"), within=15, what="unbound up")
        yield port
    finally:
        stop_child(proc, grace=5)


def test_through_a_forwarding_resolver(live: LiveDns, unbound: int) -> None:
    live.update(fleet(3))
    out = dig(unbound, SRV_ALL, "SRV")
    assert status_of(out) == "NOERROR" and out.count("IN\tSRV\t") == 6
    assert "10 100 10901 c001-1.sidecars.thanos.atlas." in out
    assert dig(unbound, "c001-1.sidecars.thanos.atlas.", "A", "+short").strip() == "127.0.0.1"
    assert status_of(dig(unbound, "c099-0.sidecars.thanos.atlas.", "A")) == "NXDOMAIN"
    assert status_of(dig(unbound, "_grpc._tcp.odd.groups.thanos.atlas.", "SRV")) == "NOERROR"
