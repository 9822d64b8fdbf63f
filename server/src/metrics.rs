//! `GET /metrics`: Prometheus text of what an operator watches — live SSE and WebSocket
//! streams, pushes and changes, push latency, push-to-stream fan-out latency, and rejected
//! requests by code (`rate_limited` among them). One registry per server state, so that
//! several servers in one process (the tests) count apart.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::error::ErrorCode;
use crate::AppState;

pub struct Metrics {
    registry: Registry,
    pub live_sse: IntGauge,
    pub live_ws: IntGauge,
    pub pushes: IntCounter,
    pub changes: IntCounter,
    pub push_seconds: Histogram,
    pub fanout_seconds: Histogram,
    /// Live streams that fell behind the in-process feed and re-read from their cursor.
    pub lagged: IntCounter,
    pub rejected: IntCounterVec,
}

/// Latency buckets from 1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("mana_sync".into()), None).expect("a fixed, valid prefix");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid name");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid name");
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
                .expect("valid name")
        };
        let m = Metrics {
            live_sse: gauge("live_sse_streams", "Open SSE streams"),
            live_ws: gauge("live_websockets", "Authenticated open WebSockets"),
            pushes: counter("pushes_total", "Committed pushes"),
            changes: counter("changes_total", "Changes appended to the log"),
            push_seconds: histogram("push_seconds", "Push latency, request to commit"),
            fanout_seconds: histogram(
                "fanout_seconds",
                "From a push's commit to a live stream sending it on",
            ),
            lagged: counter(
                "stream_resyncs_total",
                "Live streams that fell behind the live feed and re-read from their cursor",
            ),
            rejected: IntCounterVec::new(
                Opts::new("rejected_total", "Requests answered with an error, by code"),
                &["code"],
            )
            .expect("valid name"),
            registry,
        };
        let r = &m.registry;
        for c in [
            Box::new(m.live_sse.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.live_ws.clone()),
            Box::new(m.pushes.clone()),
            Box::new(m.changes.clone()),
            Box::new(m.push_seconds.clone()),
            Box::new(m.fanout_seconds.clone()),
            Box::new(m.lagged.clone()),
            Box::new(m.rejected.clone()),
        ] {
            r.register(c).expect("each metric registered once");
        }
        m
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn reject(&self, code: &str) {
        self.rejected.with_label_values(&[code]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts one live stream for as long as it is held.
pub struct Live(IntGauge);

impl Live {
    pub fn new(gauge: &IntGauge) -> Live {
        gauge.inc();
        Live(gauge.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

/// Counts every error answer by its code (the error marks its response with [`ErrorCode`]).
pub async fn count_rejections(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        st.metrics.reject(code);
    }
    response
}
