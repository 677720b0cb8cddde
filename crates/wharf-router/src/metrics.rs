//! The router's metric families, labelled by app name, status class and error code only (so the
//! label sets stay bounded by the number of apps), and each app's handles into them, cached in
//! the route table so the request path never looks a label set up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::error::Failure;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    app: String,
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    app: String,
    code: &'static str,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The router's metric families. Cheap to clone (the families are shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    requests: Family<ClassLabels, Counter>,
    errors: Family<CodeLabels, Counter>,
    duration: Family<AppLabels, Histogram>,
    in_flight: Family<AppLabels, Gauge>,
    upstreams: Family<AppLabels, Gauge>,
    /// Requests for no known host (or none at all): not labelled, as the host is the client's.
    unrouted: Counter,
}

impl Metrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "wharf_router_requests",
            "Requests routed to an app, by app name and status class",
            self.requests.clone(),
        );
        registry.register(
            "wharf_router_errors",
            "Requests for an app that ended in a router error, by app name and Heroku code",
            self.errors.clone(),
        );
        registry.register(
            "wharf_router_request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by app name",
            self.duration.clone(),
        );
        registry.register(
            "wharf_router_requests_in_flight",
            "Requests for an app whose response has not ended, by app name",
            self.in_flight.clone(),
        );
        registry.register(
            "wharf_router_upstreams",
            "Web instances in the app's rotation, by app name",
            self.upstreams.clone(),
        );
        registry.register(
            "wharf_router_unrouted_requests",
            "Requests for a hostname no app has, or without a host",
            self.unrouted.clone(),
        );
    }

    pub(crate) fn unrouted(&self) {
        self.unrouted.inc();
    }

    /// The handles of one app's label sets.
    pub(crate) fn app(&self, name: &str) -> Arc<AppMetrics> {
        let app = AppLabels {
            app: name.to_owned(),
        };
        let classes = CLASSES.map(|class| {
            self.requests.get_or_create_owned(&ClassLabels {
                app: name.to_owned(),
                class,
            })
        });
        Arc::new(AppMetrics {
            name: name.to_owned(),
            classes,
            duration: self.duration.get_or_create_owned(&app),
            in_flight: self.in_flight.get_or_create_owned(&app),
            upstreams: self.upstreams.get_or_create_owned(&app),
            errors: self.errors.clone(),
        })
    }

    /// Drops an app's label sets (the app is gone, or renamed).
    pub(crate) fn forget(&self, name: &str) {
        let app = AppLabels {
            app: name.to_owned(),
        };
        for class in CLASSES {
            self.requests.remove(&ClassLabels {
                app: name.to_owned(),
                class,
            });
        }
        for failure in Failure::ALL {
            self.errors.remove(&CodeLabels {
                app: name.to_owned(),
                code: failure.code(),
            });
        }
        self.duration.remove(&app);
        self.in_flight.remove(&app);
        self.upstreams.remove(&app);
    }
}

/// One app's metric handles.
#[derive(Debug)]
pub(crate) struct AppMetrics {
    pub(crate) name: String,
    classes: [Counter; 5],
    duration: Histogram,
    in_flight: Gauge,
    upstreams: Gauge,
    errors: Family<CodeLabels, Counter>,
}

impl AppMetrics {
    pub(crate) fn started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn finished(&self, status: u16, failure: Option<Failure>, elapsed: Duration) {
        self.in_flight.dec();
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].inc();
        self.duration.observe(elapsed);
        if let Some(failure) = failure {
            self.errors
                .get_or_create(&CodeLabels {
                    app: self.name.clone(),
                    code: failure.code(),
                })
                .inc();
        }
    }

    pub(crate) fn set_upstreams(&self, n: usize) {
        self.upstreams.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Upper bounds of the duration buckets, in seconds (the last bucket, +Inf, is implied).
const BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A duration histogram updated with atomics only: prometheus-client's own takes a lock per
/// observation, and every request of an app would contend for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    /// Observations per bucket (not cumulative), the last one +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&upper| secs <= upper)
            .unwrap_or(BUCKETS.len());
        self.inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.inner.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.inner.counts[i].load(Ordering::Relaxed);
            count += n;
            *slot = (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n);
        }
        // Precision: microseconds as f64 seconds, exact well past any real uptime.
        #[allow(clippy::cast_precision_loss)]
        let sum = self.inner.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_encoded() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let app = metrics.app("web-app");
        app.started();
        app.finished(200, None, Duration::from_millis(3));
        app.started();
        app.finished(503, Some(Failure::NoInstance), Duration::from_millis(40));
        app.set_upstreams(2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"wharf_router_requests_total{app="web-app",class="2xx"} 1"#,
            r#"wharf_router_requests_total{app="web-app",class="5xx"} 1"#,
            r#"wharf_router_errors_total{app="web-app",code="H14"} 1"#,
            r#"wharf_router_request_duration_seconds_count{app="web-app"} 2"#,
            r#"wharf_router_request_duration_seconds_bucket{le="0.005",app="web-app"} 1"#,
            r#"wharf_router_request_duration_seconds_bucket{le="+Inf",app="web-app"} 2"#,
            r#"wharf_router_requests_in_flight{app="web-app"} 0"#,
            r#"wharf_router_upstreams{app="web-app"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        metrics.forget("web-app");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("web-app"), "{text}");
    }
}
