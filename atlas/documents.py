"""YAML text → Kubernetes-style documents, with errors that name the file and line.

Shared by the directory source and the CLI (which checks a source directory before writing
to it), so both read a manifest the same way and complain about it in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from atlas.errors import SourceError

__all__ = ["load_documents", "yaml_problem"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's complaint as ``line N, column M: problem``, without its ``in "<unicode
    string>"`` and the quoted text (which may be a secret)."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + (getattr(err, "problem", None) or type(err).__name__)


def load_documents(path: Path, text: str) -> list[tuple[str, Any]]:
    """``(origin, object)`` per YAML document; raises SourceError for unparseable text."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        raise SourceError(str(path), f"not valid YAML: {yaml_problem(err)}") from None
    objects: list[tuple[str, Any]] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        origin = f"{path}#{index}"
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise SourceError(origin, "items of a List must be a list")
            objects.extend((f"{origin}.items[{i}]", item) for i, item in enumerate(items))
        else:
            objects.append((origin, doc))
    return objects
