"""The tree drawn in ``atlas/errors.py`` is the classes' own: a reader picks the level to
catch from the drawing, so an error left out of it, or drawn under the wrong parent, misleads."""

from __future__ import annotations

import re

import atlas.errors
from atlas.errors import AtlasError


def drawn() -> dict[str, str]:
    """Each class in the docstring's tree, with the class drawn above it."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (atlas.errors.__doc__ or "").splitlines():
        found = re.match(r"^[\s│├└─]*([A-Z][A-Za-z]+)(\s|$)", line)
        if not found or not line.startswith("    "):
            continue
        depth = found.start(1)  # how far right the name is drawn
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[found.group(1)] = stack[-1][1]
        stack.append((depth, found.group(1)))
    return parents


def defined() -> dict[str, str]:
    classes = [getattr(atlas.errors, name) for name in atlas.errors.__all__]
    return {c.__name__: c.__bases__[0].__name__ for c in classes if c is not AtlasError}


def test_the_drawn_tree_is_the_class_tree() -> None:
    assert drawn() == defined()


def test_every_error_atlas_raises_on_purpose_is_in_the_tree() -> None:
    from atlas.kube import KubeError

    assert KubeError is atlas.errors.KubeError
    assert set(defined()) == set(atlas.errors.__all__) - {"AtlasError"}
