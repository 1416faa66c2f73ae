"""The few Thanos StoreAPI and Info API messages Atlas speaks, on the wire, without generated
code: ``atlas status`` probes sidecars with them and ``atlas demo`` serves them.

Field numbers are Thanos's (``proto/thanos/*.proto``, from its storepb and infopb); the tests
check every encoding byte for byte against classes protoc generates from those files.

* ``/thanos.info.Info/Info``: the Info API Thanos Query calls (current Thanos);
* ``/thanos.Store/Info``: the legacy call, served by older sidecars (removed from the newest);
* ``/thanos.Store/Series``: a server stream of series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import grpc

from atlas.protowire import read_varint, varint

__all__ = [
    "INFO_METHOD",
    "SERIES_METHOD",
    "STORE_INFO_METHOD",
    "decode_labels_response",
    "decode_series_request",
    "info_response",
    "probe",
    "series_frame",
    "store_info_response",
]

INFO_METHOD = "/thanos.info.Info/Info"
STORE_INFO_METHOD = "/thanos.Store/Info"
SERIES_METHOD = "/thanos.Store/Series"

_VARINT, _BYTES = 0, 2


def _tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _bytes(field: int, value: bytes) -> bytes:
    return _tag(field, _BYTES) + varint(len(value)) + value


def _scalar(field: int, value: bytes) -> bytes:
    """A string or bytes field: proto3 leaves an empty one out."""
    return _bytes(field, value) if value else b""


def _int(field: int, value: int) -> bytes:
    return _tag(field, _VARINT) + varint(value) if value else b""


def _labels(field: int, labels: Mapping[str, str]) -> bytes:
    """Repeated ``thanos.Label {name = 1; value = 2}``, sorted by name."""
    return b"".join(
        _bytes(field, _scalar(1, k.encode()) + _scalar(2, v.encode()))
        for k, v in sorted(labels.items())
    )


def info_response(labels: Mapping[str, str], *, min_time: int = 0, max_time: int = 2**62) -> bytes:
    """``thanos.info.InfoResponse``: label_sets = 1, ComponentType = 2 ("sidecar"),
    store = 3 (StoreInfo: min_time = 1, max_time = 2)."""
    store = _int(1, min_time) + _int(2, max_time)
    return _bytes(1, _labels(1, labels)) + _bytes(2, b"sidecar") + _bytes(3, store)


def store_info_response(
    labels: Mapping[str, str], *, min_time: int = 0, max_time: int = 2**62
) -> bytes:
    """The legacy ``thanos.InfoResponse``: labels = 1, min_time = 2, max_time = 3,
    storeType = 4 (SIDECAR = 3), label_sets = 5."""
    return (
        _labels(1, labels)
        + _int(2, min_time)
        + _int(3, max_time)
        + _int(4, 3)
        + _bytes(5, _labels(1, labels))
    )


def series_frame(labels: Mapping[str, str], chunk: bytes, *, max_time: int = 2**62) -> bytes:
    """``thanos.SeriesResponse {series = 1}``: Series {labels = 1, chunks = 2: AggrChunk
    {min_time = 1, max_time = 2, raw = 3: Chunk {type = 1 (XOR = 0), data = 2}}}."""
    aggr = _int(2, max_time) + _bytes(3, _scalar(2, chunk))
    return _bytes(1, _labels(1, labels) + _bytes(2, aggr))


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = read_varint(data, i)
            yield field, wire, value
        elif wire == _BYTES:
            length, i = read_varint(data, i)
            if i + length > len(data):
                raise ValueError("truncated message")
            yield field, wire, data[i : i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _label(data: bytes) -> tuple[str, str]:
    name = value = ""
    for field, _, raw in _fields(data):
        if field == 1 and isinstance(raw, bytes):
            name = raw.decode()
        elif field == 2 and isinstance(raw, bytes):
            value = raw.decode()
    return name, value


def decode_labels_response(data: bytes, *, legacy: bool = False) -> dict[str, str]:
    """The external labels of an Info response: the union of its label sets (``legacy``:
    the old ``thanos.InfoResponse``, whose label sets are field 5)."""
    sets_field = 5 if legacy else 1
    labels: dict[str, str] = {}
    for field, _, raw in _fields(data):
        if field == sets_field and isinstance(raw, bytes):
            for inner, _, label in _fields(raw):
                if inner == 1 and isinstance(label, bytes):
                    name, value = _label(label)
                    labels[name] = value
    return labels


def decode_series_request(data: bytes) -> dict[str, str]:
    """The equality matchers of a ``thanos.SeriesRequest`` (matchers = 3: LabelMatcher
    {type = 1, name = 2, value = 3}), name → value."""
    matchers: dict[str, str] = {}
    for field, _, raw in _fields(data):
        if field != 3 or not isinstance(raw, bytes):
            continue
        kind, name, value = 0, "", ""
        for inner, _, part in _fields(raw):
            if inner == 1 and isinstance(part, int):
                kind = part
            elif inner == 2 and isinstance(part, bytes):
                name = part.decode()
            elif inner == 3 and isinstance(part, bytes):
                value = part.decode()
        if kind == 0:
            matchers[name] = value
    return matchers


def _identity(data: bytes) -> bytes:
    return data


def probe(address: str, authority: str, *, timeout: float = 3.0) -> tuple[dict[str, str], str]:
    """Call Info through ``address`` as Thanos Query does, with ``authority``; the external
    labels and the method that answered. The current Info API first; on UNIMPLEMENTED (an
    older sidecar) the legacy ``Store.Info``. Raises grpc.RpcError when neither answers."""
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(address, options=options) as channel:
        for method, legacy in ((INFO_METHOD, False), (STORE_INFO_METHOD, True)):
            call = channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=_identity
            )
            try:
                response = call(b"", timeout=timeout)
            except grpc.RpcError as err:
                if legacy or err.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                continue
            return decode_labels_response(response, legacy=legacy), method
    raise AssertionError("unreachable")
