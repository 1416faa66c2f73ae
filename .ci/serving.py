"""Exit 0 once the README's `atlas serve` has read its sources and answers the SRV query.

Run by .ci/run with the project's virtual environment before tests/prepare.sh, on a machine
that may have nothing else: only the standard library and dnslib (a dependency of Atlas).
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request

from dnslib import QTYPE, DNSRecord

STATUS = "http://127.0.0.1:9180/status"
DNS = ("127.0.0.1", 5353)
NAME = "_grpc._tcp.sidecars.thanos.atlas."


def main() -> int:
    with urllib.request.urlopen(STATUS, timeout=2) as response:
        if not json.loads(response.read()).get("synced"):
            return 1
    query = DNSRecord.question(NAME, "SRV")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(query.pack(), DNS)
        answer = DNSRecord.parse(sock.recv(4096))
    targets = [str(r.rdata.target) for r in answer.rr if r.rtype == QTYPE.SRV]
    return 0 if any(t.endswith("sidecars.thanos.atlas.") for t in targets) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError):
        sys.exit(1)
