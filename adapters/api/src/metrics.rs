//! Prometheus metrics: one process-wide recorder (installed once, even when several apps run in
//! one process, as in the tests), request counts and latencies per route, commands by outcome.
//!
//! Names:
//! - `openvle_http_requests_total{method, route, status}`
//! - `openvle_http_request_duration_seconds{method, route}` (histogram)
//! - `openvle_commands_total{command, outcome}` (`outcome`: `accepted`, `replayed`, `rejected`,
//!   `conflict`, `error`)
//! - `openvle_build_info{version}`: always 1; the workspace version, the one `--version` and the
//!   OpenAPI document show, so a scrape tells which build answers

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Moodle calls: a duplication runs a backup and a restore in the request, up to
/// MOODLE_DUPLICATE_TIMEOUT_SECS (600 by default), so the buckets reach past it.
const MOODLE_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1200.0, 1800.0,
];

/// The process-wide Prometheus handle; installs the global recorder on first use. When another
/// recorder is already installed, metrics go there and this handle renders an empty page.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "openvle_moodle_call_duration_seconds".to_string(),
                    ),
                    MOODLE_BUCKETS,
                )
            })
            .expect("static buckets are valid");
        match builder.install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// Makes sure the recorder is installed (called by [`crate::router`]).
pub fn init() {
    let _ = handle();
    metrics::describe_counter!(
        "openvle_http_requests_total",
        "HTTP requests answered, by method, route and status"
    );
    metrics::describe_histogram!(
        "openvle_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by method and route"
    );
    metrics::describe_counter!(
        "openvle_commands_total",
        "Commands handled through the API, by command and outcome"
    );
    metrics::describe_gauge!(
        "openvle_build_info",
        "The running build (always 1), labelled with its version"
    );
    metrics::gauge!("openvle_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // The other crates' metrics, described here once so every family has its HELP line.
    metrics::describe_histogram!(
        "openvle_moodle_call_duration_seconds",
        metrics::Unit::Seconds,
        "Moodle web-service call latency, by function"
    );
    metrics::describe_counter!(
        "openvle_moodle_calls_total",
        "Moodle web-service calls, by function and outcome (ok, error)"
    );
    metrics::describe_counter!(
        "openvle_moodle_call_errors_total",
        "Failed Moodle web-service calls, by function and error code"
    );
    metrics::describe_counter!(
        "openvle_saga_steps_total",
        "Saga steps run against Moodle, by step and outcome"
    );
    metrics::describe_gauge!(
        "openvle_saga_lag",
        "Log positions between the saga's checkpoint and the head"
    );
    metrics::describe_gauge!(
        "openvle_saga_pending",
        "OpenVLE events with Moodle work to do"
    );
    metrics::describe_gauge!(
        "openvle_saga_in_flight",
        "OpenVLE events a worker is processing now"
    );
    metrics::describe_gauge!(
        "openvle_saga_parked",
        "OpenVLE events parked until a person acts (see status)"
    );
    metrics::describe_gauge!(
        "openvle_moodle_parked",
        "Parked OpenVLE events by the code they are parked with (docs/operations.md says what to do)"
    );
    metrics::describe_gauge!(
        "openvle_moodle_up",
        "1 when the last preflight reached Moodle and its token was accepted"
    );
    metrics::describe_gauge!(
        "openvle_moodle_check_ok",
        "1 when the last preflight (moodle check) found no problem"
    );
    metrics::describe_gauge!(
        "openvle_moodle_check_problems",
        "Problems the last preflight found (GET /api/v1/moodle/check lists them)"
    );
    metrics::describe_gauge!(
        "openvle_moodle_check_timestamp_seconds",
        metrics::Unit::Seconds,
        "When the last preflight ran (unix time)"
    );
    webhooks::describe_metrics();
    metrics::describe_gauge!(
        "openvle_moodle_drift",
        "Differences the last reconcile found between the log and Moodle, by kind"
    );
}

/// The Prometheus text exposition of every metric of the process.
pub fn render() -> String {
    let h = handle();
    h.run_upkeep();
    h.render()
}

/// Counts a command's outcome.
pub fn command(command: &'static str, outcome: &'static str) {
    metrics::counter!("openvle_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
}

/// Middleware: counts and times every request by its route template (never the raw path, so ids
/// do not explode the label set).
pub(crate) async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    tracing::debug!(%method, %route, %status, elapsed_ms = elapsed * 1000.0, "request");
    metrics::counter!(
        "openvle_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "openvle_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(elapsed);
    response
}

#[cfg(test)]
mod doc_tests {
    /// docs/api.md lists every metric this crate describes (and so every one the engine has).
    #[test]
    fn the_api_guide_lists_every_metric() {
        let doc = include_str!("../../../docs/api.md");
        let src = [
            include_str!("metrics.rs"),
            include_str!("../../webhooks/src/run.rs"),
        ]
        .concat();
        let mut missing = Vec::new();
        for part in src.split('"').skip(1).step_by(2) {
            let name = part.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let listed = doc.contains(&format!("`{part}`"));
            if part.starts_with("openvle_") && !part.ends_with('_') && name && !listed {
                missing.push(part.to_string());
            }
        }
        missing.dedup();
        assert!(missing.is_empty(), "docs/api.md lacks {missing:?}");
    }
}
