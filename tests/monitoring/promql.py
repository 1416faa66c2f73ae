"""The metric names a PromQL expression reads, so that a test can hold every dashboard panel
and alert to metrics that Atlas and Envoy really export."""

from __future__ import annotations

import re

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset", "inf"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTORS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\(?))")


def metric_names(expr: str) -> set[str]:
    """Identifiers that are not functions, keywords, labels or durations."""
    text = _SELECTORS.sub(" ", _GROUPINGS.sub(" ", _STRINGS.sub('""', expr)))
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(0), match.group(1)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a Prometheus text exposition can carry, from its ``# TYPE`` lines:
    a family with no sample yet (a labelled counter nothing incremented) still counts."""
    names = set()
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[:2] != ["#", "TYPE"]:
            continue
        name, kind = parts[2], parts[3]
        names.add(name)
        if kind in ("histogram", "summary"):
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        if kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names
