from __future__ import annotations

from tests.monitoring.promql import exported_names, metric_names


def test_metric_names_skip_functions_labels_and_keywords() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, type) (rate(atlas_xds_push_ack_seconds_bucket"
        '{job=~"$job", type="cds"}[$__rate_interval]))) > 0 and on (instance) atlas_ready == 1'
        " or vector(0) unless time() - atlas_xds_last_build_timestamp_seconds > 7 * 86400"
    )
    assert metric_names(expr) == {
        "atlas_xds_push_ack_seconds_bucket",
        "atlas_ready",
        "atlas_xds_last_build_timestamp_seconds",
    }


def test_exported_names_expand_histograms_and_keep_empty_families() -> None:
    text = "\n".join(
        [
            "# HELP atlas_xds_nacks_total Responses Envoy rejected",
            "# TYPE atlas_xds_nacks_total counter",
            "# TYPE atlas_dns_answer_seconds histogram",
            'atlas_dns_answer_seconds_bucket{le="0.001"} 3.0',
            "# TYPE envoy_server_live gauge",
            "envoy_server_live{} 1",
        ]
    )
    assert exported_names(text) == {
        "atlas_xds_nacks_total",
        "atlas_dns_answer_seconds",
        "atlas_dns_answer_seconds_bucket",
        "atlas_dns_answer_seconds_sum",
        "atlas_dns_answer_seconds_count",
        "envoy_server_live",
    }
