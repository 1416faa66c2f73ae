"""Open streams are counted without a Gauge child per node, and read exactly as one was."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from xds_server.metrics import OpenStreams


def test_open_streams_are_exposed_as_the_labelled_gauge_was() -> None:
    streams, registry = OpenStreams(), CollectorRegistry()
    registry.register(streams)
    streams.opened("east", "sotw")
    streams.opened("east", "sotw")
    streams.closed("east", "sotw")
    streams.opened("west", "delta")
    streams.closed("west", "delta")
    text = generate_latest(registry).decode()
    assert "# HELP atlas_xds_connected_streams Open ADS streams" in text
    assert "# TYPE atlas_xds_connected_streams gauge" in text
    assert 'atlas_xds_connected_streams{node="east",protocol="sotw"} 1.0' in text
    assert 'atlas_xds_connected_streams{node="west",protocol="delta"} 0.0' in text
    assert streams.value("east", "sotw") == 1 and streams.value("north", "sotw") == 0
