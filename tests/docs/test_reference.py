"""docs/reference.md against the code: every flag (with its default), setting, label,
annotation, port and metric the code has is on the page, and the page has nothing the code
does not. A change to one without the other fails here, naming what differs."""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import atlas.model
from atlas.cli import build_parser
from atlas.config import DEFAULT_ADS_PORT, Settings
from atlas.serve.daemon import Atlas
from atlas.serve.options import ServeOptions
from atlas.serve.reconcile import ANN_BACKUP_OF
from tests.atlas.cli.test_cli import all_parsers
from tests.atlas.serve.daemons import manifest, options
from tests.conftest import ROOT

PAGE = (ROOT / "docs/reference.md").read_text()


def section(title: str, level: str = "##") -> str:
    """The text under the heading that starts with ``title``, up to the next heading of the
    same or a higher level."""
    lines = PAGE.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{level} {title}")), None)
    assert start is not None, f"docs/reference.md has no section {level} {title}"
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{len(level)}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start + 1 : end])


HEADERS = ("flag", "key", "port", "metric", "name", "path", "code", "node key")
"""First cells of the tables' header rows."""


def rows(text: str) -> list[list[str]]:
    """The body rows of the tables in ``text``, as cells."""
    found = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] not in (
                "flag",
                "key",
                "port",
                "metric",
                "name",
                "path",
                "code",
                "node key",
            ):
                found.append(cells)
    return found


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


GLOBAL = {"--log-level", "--version"}
"""Documented once, under `atlas`: every command also accepts them after its name."""


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.option_strings[-1]: action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and not (parser.prog != "atlas" and action.option_strings[-1] in GLOBAL)
    }


def shown_default(action: argparse.Action) -> str | None:
    """The default the page must show, when the parser has a plain one."""
    if action.default in (None, False, [], "", argparse.SUPPRESS):
        return None
    return str(action.default)


def command_sections() -> dict[str, str]:
    """Command line (``cluster add``) → its section; the ca commands share one."""
    found = {}
    for heading in re.findall(r"^### (.+)$", PAGE, re.MULTILINE):
        text = section(heading, "###")
        for command in re.findall(r"`atlas ?([a-z -]*?)(?: [A-Z]+)?`", heading):
            found[command.strip()] = text
    return found


def test_every_command_flag_and_default_is_documented() -> None:
    documented = command_sections()
    commands = [(c, p) for c, p in all_parsers() if options_of(p)]
    assert {c for c, _ in commands} == set(documented), "commands with options vs sections"
    for command, parser in commands:
        table = {}
        for cells in rows(documented[command]):
            for flag in ticked(cells[0]):
                table[flag] = cells
        for flag, action in options_of(parser).items():
            assert flag in table, f"atlas {command} {flag} is not in docs/reference.md"
            default = shown_default(action)
            if default is not None:
                assert f"`{default}`" in table[flag][1], (
                    f"atlas {command} {flag}: the page says {table[flag][1]}, the code {default}"
                )
        # A section several commands share (the ca commands) documents their options' union.
        every = {
            flag
            for c, p in commands
            if documented[c] is documented[command]
            for action in options_of(p).values()
            for flag in action.option_strings
        }
        extra = {f for f in table if f.startswith("-")} - every
        assert not extra, f"documented for atlas {command} but not an option: {extra}"


def settings_defaults() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif isinstance(value, timedelta):
                found[prefix + f.name] = str(int(value.total_seconds()))
            else:
                found[prefix + f.name] = str(value)

    walk(Settings(), "")
    return found


def test_every_setting_and_its_default_is_documented() -> None:
    table = {ticked(cells[0])[0]: cells for cells in rows(section("Settings file"))}
    expected = settings_defaults()
    assert set(table) == set(expected), (
        f"missing: {set(expected) - set(table)}; not settings: {set(table) - set(expected)}"
    )
    for key, default in expected.items():
        assert table[key][1] == f"`{default}`", f"{key}: page {table[key][1]}, code {default}"


def test_every_label_and_annotation_is_documented() -> None:
    keys = {
        value
        for name, value in vars(atlas.model).items()
        if name.startswith(("LABEL_", "ANN_")) or name == "ALERTMANAGER_POD_SELECTOR_KEY"
    } | {ANN_BACKUP_OF}
    text = section("Labels and annotations")
    documented = {ticked(cells[0])[0] for cells in rows(text)}
    assert documented == keys, f"missing: {keys - documented}; not in the code: {documented - keys}"


def test_every_port_is_documented() -> None:
    settings = Settings()
    ports = {
        *(
            getattr(settings.observability_ports, f.name)
            for f in fields(settings.observability_ports)
        ),
        *(getattr(settings.downstream_ports, f.name) for f in fields(settings.downstream_ports)),
        settings.envoy.admin_port,
        settings.envoy.metrics_port,
        DEFAULT_ADS_PORT,
        *(int(a.rpartition(":")[2]) for a in ServeOptions.dns_listen),
        int(ServeOptions.http_listen.rpartition(":")[2]),
    }
    documented = {int(cells[0]) for cells in rows(section("Ports"))}
    assert documented == ports, f"missing: {ports - documented}; unknown: {documented - ports}"
    serve = dict(all_parsers())["serve"]
    assert options_of(serve)["--ads-listen"].default.endswith(f":{DEFAULT_ADS_PORT}")


@dataclass
class Running:
    """What a running daemon shows: its metrics (name → type, labels) and its /status."""

    metrics: dict[str, tuple[str, set[str]]]
    status: dict[str, Any]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Running:
    tmp: Path = tmp_path_factory.mktemp("reference")
    (tmp / "clusters").mkdir()
    (tmp / "clusters" / "east.yaml").write_text(manifest("east"))

    async def collect() -> Running:
        daemon = Atlas(options(tmp))
        await daemon.start()
        try:
            while daemon.cache.snapshot("east") is None:
                await asyncio.sleep(0.02)
            found = {}
            for collector in list(REGISTRY._collector_to_names):
                for family in collector.collect():
                    if not family.name.startswith("atlas_"):
                        continue
                    labels = set(getattr(collector, "_labelnames", ()))
                    labels |= {k for s in family.samples for k in s.labels if k != "le"}
                    name = family.name + ("_total" if family.type == "counter" else "")
                    found[name] = (family.type, labels)
            return Running(found, daemon.status())
        finally:
            await daemon.stop()

    return asyncio.run(collect())


@pytest.fixture(scope="module")
def exported(running: Running) -> dict[str, tuple[str, set[str]]]:
    return running.metrics


def test_every_status_key_is_documented(running: Running) -> None:
    text = section("`/status`", "###")
    top: set[str] = set()
    node: set[str] = set()
    for cells in rows(text):
        names = ticked(cells[0])
        (node if cells[0] in {c[0] for c in rows(text.split("| node key |")[1])} else top).update(
            names
        )
    assert top == set(running.status), (
        f"missing: {set(running.status) - top}; not keys: {top - set(running.status)}"
    )
    keys = set(running.status["nodes"][0])
    assert node == keys, f"missing: {keys - node}; not keys: {node - keys}"


def test_the_exit_codes_are_documented_as_the_code_has_them() -> None:
    from atlas import cli
    from atlas.cli import status

    table = {int(ticked(cells[0])[0]): cells[1] for cells in rows(section("Exit codes"))}
    assert set(table) == {
        cli.EXIT_OK,
        cli.EXIT_FAILED,
        cli.EXIT_CONFIG,
        status.HEALTHY,
        status.DEGRADED,
        status.UNREACHABLE,
    }
    assert "degraded" in table[status.DEGRADED] and "usage" in table[cli.EXIT_CONFIG]
    assert "no replica answered" in table[status.UNREACHABLE]
    readme = (ROOT / "README.md").read_text()
    assert (
        f"exit {status.HEALTHY} healthy, {status.DEGRADED} degraded, "
        f"{status.UNREACHABLE} unreachable" in readme
    )


def test_the_readme_summarises_the_rbac_rules_as_they_are() -> None:
    import yaml

    rules = yaml.safe_load((ROOT / "charts/atlas/files/rbac-rules.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    summary = re.search(r"<!-- rbac -->(.*?)<!-- /rbac -->", readme, re.DOTALL)
    assert summary is not None, "README.md has no <!-- rbac --> summary"
    said = {
        kind.strip().rstrip("s").lower(): set(verbs.split("/"))
        for verbs, kind in re.findall(r"([a-z/]+) ([A-Za-z]+)", summary.group(1).replace("\n", " "))
    }
    actual = {r["resources"][0].rstrip("s"): set(r["verbs"]) for r in rules}
    assert said == actual


def test_every_metric_its_type_and_labels_are_documented(
    exported: dict[str, tuple[str, set[str]]],
) -> None:
    table = {
        ticked(cells[0])[0]: cells
        for cells in rows(section("Metrics"))
        if ticked(cells[0])[0].startswith("atlas_")
    }
    assert set(table) == set(exported), (
        f"missing: {set(exported) - set(table)}; not exported: {set(table) - set(exported)}"
    )
    for name, (kind, labels) in exported.items():
        cells = table[name]
        assert cells[1] == kind, f"{name}: page says {cells[1]}, it is a {kind}"
        assert set(ticked(cells[2])) == labels, f"{name}: page {cells[2]}, labels {labels}"


def test_the_global_options_are_documented() -> None:
    documented = {f for cells in rows(section("`atlas`", "###")) for f in ticked(cells[0])}
    assert documented == set(options_of(build_parser()))
