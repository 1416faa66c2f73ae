"""Syntax checks for names and addresses, shared by manifests, CLI and DNS.

Regexes are ASCII-only on purpose: ``str.isdigit`` and ``\\d`` accept non-ASCII digits that
``int()`` would happily convert, which would let a fullwidth digit through as a replica count.
"""

from __future__ import annotations

import ipaddress
import re
import socket

__all__ = ["is_dns_label", "is_hostname", "is_ip", "parse_port", "parse_uint"]

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
_UINT = re.compile(r"[0-9]{1,10}", re.ASCII)


def is_dns_label(value: str, *, max_len: int = 63) -> bool:
    """A DNS-1123 label: lowercase, digits and inner hyphens, at most ``max_len`` long."""
    return len(value) <= max_len and _LABEL.fullmatch(value) is not None


def is_hostname(value: str) -> bool:
    """A DNS name (one trailing dot allowed) whose labels are all valid host labels."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def is_ip(value: str) -> bool:
    # inet_pton is C and answers the common cases (plain IPv4, IPv6) quickly; what it refuses
    # (a scope id, a name) gets the full parser, so the answer is ipaddress's own.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except (OSError, ValueError):
            continue
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_uint(value: str, *, low: int, high: int) -> int | None:
    """The integer in ``value`` if it is plain ASCII digits within ``[low, high]``."""
    if _UINT.fullmatch(value) is None:
        return None
    number = int(value)
    return number if low <= number <= high else None


def parse_port(value: str) -> int | None:
    return parse_uint(value, low=1, high=65535)
