//! Prometheus metrics: request counts and latency histograms by route pattern and status.
//! Labels are route patterns (`/v1/keys/{id}`), never raw paths, so no identifier can leak.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The service's metrics, in a registry of their own.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    tracking: IntCounterVec,
    links: IntCounterVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("custodia_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )
        .expect("metric options are valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "custodia_http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("metric options are valid");
        let tracking = IntCounterVec::new(
            Opts::new(
                "custodia_tracking_total",
                "Tracking-protocol messages by outcome, and the properties dropped from them",
            ),
            &["outcome"],
        )
        .expect("metric options are valid");
        let links = IntCounterVec::new(
            Opts::new(
                "custodia_identity_links_total",
                "Links of anonymous ids to users (identity resolution) by outcome",
            ),
            &["outcome"],
        )
        .expect("metric options are valid");
        registry
            .register(Box::new(tracking.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(links.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric names are unique");
        Metrics {
            registry,
            requests,
            duration,
            tracking,
            links,
        }
    }

    /// The registry, for other parts' metrics (the periodic jobs').
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered request.
    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// Counts tracking-protocol outcomes: messages `stored`, `duplicate`, `refused` (no purpose
    /// had a legal basis, or the person is suppressed), `no_purpose` (the consent context left
    /// none), `identified`, `consented` (statements from consent events), `ignored`, and
    /// `properties_dropped` (undeclared, or of a shape no field holds).
    pub(crate) fn tracked(&self, outcome: &str, count: usize) {
        if count > 0 {
            self.tracking
                .with_label_values(&[outcome])
                .inc_by(count as u64);
        }
    }

    /// Counts links of anonymous ids to users: `linked`, `merged` (an anonymous person merged
    /// into the user's), `already_linked`, `claimed` (refused: the anonymous id is another
    /// person's, the over-merge guard) and `suppressed` (refused: an id was erased with
    /// suppression).
    pub(crate) fn linked(&self, outcome: &str, count: usize) {
        if count > 0 {
            self.links
                .with_label_values(&[outcome])
                .inc_by(count as u64);
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding metrics into memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
