"""Every HTTP listener's access log: one JSON line per request on the Envoy's stdout.

Without it a wrong Host shows only as a 404 in the sender's log. The line names the node (from
Envoy's own node id, so the listener stays byte-identical across nodes and is shared), the
listener, the status, gRPC status, response flags (``NR`` no route, ``UF`` upstream connect
failure, ...) and the upstream. By default only errors are logged: HTTP 4xx and 5xx, any
response flag, and gRPC calls that did not end OK (a refusal is HTTP 200 with grpc-status
UNAVAILABLE). ``EnvoySettings.access_log`` switches to ``all`` or ``off``.
"""

from __future__ import annotations

from functools import lru_cache

from envoy.config.accesslog.v3 import accesslog_pb2 as al
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2

from atlas.config import ACCESS_LOG_ALL, ACCESS_LOG_ERRORS, ACCESS_LOG_OFF
from xds_server import wire

__all__ = ["FIELDS", "access_logs"]

FIELDS = {
    "node": "%CEL(xds.node.id)%",
    "start": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "authority": "%REQ(:AUTHORITY)%",
    "path": "%REQ(:PATH)%",
    "code": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "upstream": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "duration_ms": "%DURATION%",
}
"""The line's fields besides ``listener`` (a literal): Envoy substitution commands."""


def _errors_only() -> al.AccessLogFilter:
    status = al.StatusCodeFilter(
        comparison=al.ComparisonFilter(
            op=al.ComparisonFilter.GE,
            value=base_pb2.RuntimeUInt32(default_value=400, runtime_key="atlas.access_log.min"),
        )
    )
    grpc_request = al.HeaderFilter(
        header=rc.HeaderMatcher(
            name="content-type",
            string_match=string_pb2.StringMatcher(prefix="application/grpc"),
        )
    )
    grpc_failed = al.GrpcStatusFilter(statuses=[al.GrpcStatusFilter.OK], exclude=True)
    return al.AccessLogFilter(
        or_filter=al.OrFilter(
            filters=[
                al.AccessLogFilter(status_code_filter=status),
                al.AccessLogFilter(response_flag_filter=al.ResponseFlagFilter()),
                al.AccessLogFilter(
                    and_filter=al.AndFilter(
                        filters=[
                            al.AccessLogFilter(header_filter=grpc_request),
                            al.AccessLogFilter(grpc_status_filter=grpc_failed),
                        ]
                    )
                ),
            ]
        )
    )


@lru_cache(maxsize=64)
def access_logs(listener: str, mode: str) -> tuple[al.AccessLog, ...]:
    """The listener's access logs for ``mode`` (``errors``, ``all`` or ``off``)."""
    if mode == ACCESS_LOG_OFF:
        return ()
    fields = struct_pb2.Struct()
    fields.update({"listener": listener, **FIELDS})
    log = al.AccessLog(
        name="envoy.access_loggers.stdout",
        typed_config=wire.packed(
            stream_pb2.StdoutAccessLog(
                log_format=substitution_format_string_pb2.SubstitutionFormatString(
                    json_format=fields
                )
            )
        ),
    )
    if mode == ACCESS_LOG_ERRORS:
        log.filter.CopyFrom(_errors_only())
    else:
        assert mode == ACCESS_LOG_ALL, mode
    return (log,)
