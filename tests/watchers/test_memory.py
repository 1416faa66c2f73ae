"""What was in force survives a restart; an invalid cluster is held, never taken for removed.

Found by the randomized run: with east's manifest invalid, Atlas was killed and started
again. It no longer knew east's last good definition, so east looked removed: its
credentials were deleted and its Envoy, which had done nothing wrong, was locked out until
re-installed.
"""

from __future__ import annotations

from pathlib import Path

from atlas.manifests import parse_services
from tests.watchers.test_files import manifest
from watchers.memory import FileMemory as Memory
from watchers.source import LastGood


def _parse(*texts: str) -> object:
    import yaml

    return parse_services(
        [(f"m.yaml#{i}", yaml.safe_load(t)) for i, t in enumerate(texts)], in_force={}
    )


def test_a_restart_serves_the_last_good_definition_of_an_invalid_cluster(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "last-good.json")
    before = LastGood(memory)
    good = before.apply(_parse(manifest("east", replicas="2")))  # type: ignore[arg-type]
    assert [c.name for c in good.clusters] == ["east"]
    assert (tmp_path / "last-good.json").exists()

    after_restart = LastGood(Memory(tmp_path / "last-good.json"))
    applied = after_restart.apply(_parse(manifest("east", replicas="two")))  # type: ignore[arg-type]
    assert applied.clusters == good.clusters, "served as before the restart"
    assert applied.held == ()
    assert "its last good definition stays in force" in str(applied.errors[0])


def test_without_a_memory_an_invalid_cluster_is_held_not_removed(tmp_path: Path) -> None:
    applied = LastGood().apply(_parse(manifest("east", replicas="two")))  # type: ignore[arg-type]
    assert applied.clusters == () and applied.held == ("east",)
    assert str(applied.errors[0]).endswith(
        "(no earlier good definition is known: it is not routed, but keeps its membership and "
        "credentials until fixed or deleted)"
    )


def test_a_cluster_deleted_while_down_is_not_brought_back(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "last-good.json")
    LastGood(memory).apply(_parse(manifest("east"), manifest("west")))  # type: ignore[arg-type]
    applied = LastGood(Memory(tmp_path / "last-good.json")).apply(_parse(manifest("west")))  # type: ignore[arg-type]
    assert [c.name for c in applied.clusters] == ["west"]


def test_a_memory_that_cannot_be_read_is_ignored_whole(tmp_path: Path) -> None:
    (tmp_path / "last-good.json").write_text('{"version": 1, "clusters": {"east": {}}}')
    applied = LastGood(Memory(tmp_path / "last-good.json")).apply(
        _parse(manifest("east", replicas="two"))  # type: ignore[arg-type]
    )
    assert applied.held == ("east",), "nothing trusted from a broken memory"
