//! The plugin's metrics: per-route counters, gauges and latency histograms
//! kept as plain atomics, encoded in the Prometheus text format by
//! `prometheus-client` when the Gateway scrapes.
//!
//! Every route's handles are created with the route ([`RouteMetrics::new`]),
//! before the server starts, so recording a request is a few relaxed atomic
//! additions: no lookup, no lock, no allocation. A scrape reads the atomics
//! through one [`Collector`]; a series that a route can produce is present
//! from the start with the value 0, and a combination not foreseen appears
//! once it happens.
//!
//! Labels are bounded by the config and the code: route ids, the thirteen
//! actions, response codes, secret slots. Never a flow id, a session key or
//! a client address.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use labels::*;

mod labels;

/// Upper bounds of the request duration buckets, in seconds: OpenTelemetry's
/// `http.server.request.duration` boundaries, with five more below 5 ms,
/// where reads are answered.
const DURATION_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A latency histogram of atomics: one bucket and the sum move per
/// observation.
#[derive(Debug)]
struct DurationHistogram {
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = DURATION_BUCKETS.partition_point(|upper| *upper < secs);
        self.buckets[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Sum in seconds, count, and the finite buckets; the count is the sum
    /// of the buckets read, so the exposition stays cumulative even while
    /// requests are recorded during the scrape.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len());
        for (i, bucket) in self.buckets.iter().enumerate() {
            let n = bucket.load(Relaxed);
            count += n;
            if let Some(upper) = DURATION_BUCKETS.get(i) {
                buckets.push((*upper, n));
            }
        }
        let sum = Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64();
        (sum, count, buckets)
    }
}

/// One route's metrics. Created with the route; recording is lock-free.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    /// `[action][outcome]`, flattened.
    requests: Box<[AtomicU64]>,
    /// By outcome index; only rejection codes move.
    rejections: Box<[AtomicU64]>,
    /// By action.
    durations: Box<[DurationHistogram]>,
    in_flight: AtomicI64,
    waiters: AtomicI64,
    key_uses: [AtomicU64; 4],
    secret_slots: Box<[AtomicU64]>,
    deliveries: [AtomicU64; 4],
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl RouteMetrics {
    /// Handles for route `route`, which accepts `secret_slots` secrets.
    pub fn new(route: &str, secret_slots: usize) -> Arc<Self> {
        Arc::new(Self {
            route: route.to_owned(),
            requests: zeros(ACTIONS.len() * OUTCOMES),
            rejections: zeros(OUTCOMES),
            durations: (0..ACTIONS.len())
                .map(|_| DurationHistogram::new())
                .collect(),
            in_flight: AtomicI64::new(0),
            waiters: AtomicI64::new(0),
            key_uses: std::array::from_fn(|_| AtomicU64::new(0)),
            secret_slots: zeros(secret_slots.max(1)),
            deliveries: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    /// Records one answered request: its action and outcome, how long it
    /// took, and, for a refusal, its reason.
    pub fn request(&self, action: ActionLabel, outcome: Outcome, elapsed: Duration) {
        self.requests[action.0 * OUTCOMES + outcome.index()].fetch_add(1, Relaxed);
        self.durations[action.0].observe(elapsed);
        if let Outcome::Error(code) = outcome {
            if is_rejection(code) {
                self.rejections[outcome.index()].fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts a request as in flight until the guard drops.
    pub fn in_flight(&self) -> Tracked<'_> {
        Tracked::new(&self.in_flight)
    }

    /// Counts a waiting read until the guard drops.
    pub fn waiter(&self) -> Tracked<'_> {
        Tracked::new(&self.waiters)
    }

    pub fn key_use(&self, key_use: KeyUse) {
        self.key_uses[key_use as usize].fetch_add(1, Relaxed);
    }

    /// Counts a request authenticated by the secret in `slot` (0-based).
    /// A slot beyond the route's secrets is counted in the last one.
    pub fn secret_slot(&self, slot: usize) {
        let last = self.secret_slots.len() - 1;
        self.secret_slots[slot.min(last)].fetch_add(1, Relaxed);
    }

    pub fn delivery(&self, delivery: Delivery) {
        self.deliveries[delivery as usize].fetch_add(1, Relaxed);
    }

    /// The count of one `requests` series (for tests and benchmarks).
    pub fn requests(&self, action: ActionLabel, outcome: Outcome) -> u64 {
        self.requests[action.0 * OUTCOMES + outcome.index()].load(Relaxed)
    }
}

/// Keeps a gauge raised while it lives.
#[derive(Debug)]
pub struct Tracked<'a>(&'a AtomicI64);

impl<'a> Tracked<'a> {
    fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Self(gauge)
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Every route's metrics and the plugin-wide ones: the one collector
/// registered for a scrape.
#[derive(Debug)]
pub struct Metrics {
    /// Sorted by route id, so the exposition has a stable order.
    routes: Vec<Arc<RouteMetrics>>,
    unrouted: AtomicU64,
}

impl Metrics {
    pub fn new(mut routes: Vec<Arc<RouteMetrics>>) -> Arc<Self> {
        routes.sort_by(|a, b| a.route.cmp(&b.route));
        Arc::new(Self {
            routes,
            unrouted: AtomicU64::new(0),
        })
    }

    /// The metrics of route `id`, for recording off the request path
    /// (callback deliveries).
    pub fn route(&self, id: &str) -> Option<&Arc<RouteMetrics>> {
        self.routes
            .binary_search_by(|r| r.route.as_str().cmp(id))
            .ok()
            .map(|i| &self.routes[i])
    }

    /// Counts a request whose path matched no route.
    pub fn unrouted(&self) {
        self.unrouted.fetch_add(1, Relaxed);
    }

    /// A registry holding these metrics and the build info.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        registry
    }
}

type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

fn counter<const N: usize>(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &Labels<'_, N>,
    value: u64,
) -> fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, f64>(&value, None)
}

/// A counter family with one series per route and `result`, read from the
/// route's counters in the order of `names`.
fn results(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    routes: &[Arc<RouteMetrics>],
    names: &[&str],
    counts: impl Fn(&RouteMetrics) -> &[AtomicU64],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for r in routes {
        for (result, n) in names.iter().zip(counts(r)) {
            counter(
                &mut m,
                &[("route", r.route.as_str()), ("result", result)],
                n.load(Relaxed),
            )?;
        }
    }
    Ok(())
}

fn gauge<const N: usize>(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &Labels<'_, N>,
    value: i64,
) -> fmt::Result {
    m.encode_family(labels)?.encode_gauge(&value)
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let routes = &self.routes;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_requests",
            "Requests answered on a route, by action (none: refused before it was known) and response code",
            None,
            MetricType::Counter,
        )?;
        for r in routes {
            for (a, action) in ACTIONS.iter().enumerate() {
                for o in 0..OUTCOMES {
                    let value = r.requests[a * OUTCOMES + o].load(Relaxed);
                    let outcome = Outcome::from_index(o);
                    if value == 0 && !Outcome::expected(ActionLabel(a), outcome) {
                        continue;
                    }
                    let labels = [
                        ("route", r.route.as_str()),
                        ("action", *action),
                        ("code", outcome.name()),
                    ];
                    counter(&mut m, &labels, value)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_rejections",
            "Requests refused before their action ran, by route and reason (the response code)",
            None,
            MetricType::Counter,
        )?;
        for r in routes {
            for code in CODES.into_iter().filter(|c| is_rejection(*c)) {
                let value = r.rejections[Outcome::Error(code).index()].load(Relaxed);
                counter(
                    &mut m,
                    &[("route", r.route.as_str()), ("reason", code.as_str())],
                    value,
                )?;
            }
        }
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_request_duration_seconds",
            "Time from a request's arrival on a route to its answer, by action",
            None,
            MetricType::Histogram,
        )?;
        for r in routes {
            for (a, histogram) in r.durations.iter().enumerate() {
                let (sum, count, buckets) = histogram.snapshot();
                m.encode_family(&[("route", r.route.as_str()), ("action", ACTIONS[a])])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_in_flight_requests",
            "Requests being served on a route",
            None,
            MetricType::Gauge,
        )?;
        for r in routes {
            gauge(
                &mut m,
                &[("route", r.route.as_str())],
                r.in_flight.load(Relaxed),
            )?;
        }
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_waiters",
            "Reads waiting on a route for a flow to change",
            None,
            MetricType::Gauge,
        )?;
        for r in routes {
            gauge(
                &mut m,
                &[("route", r.route.as_str())],
                r.waiters.load(Relaxed),
            )?;
        }
        results(
            &mut enc,
            "openclaw_webhooks_idempotency_keys",
            "Writes that carried an idempotency key, by what became of the key: first, replayed, in_progress, mismatch",
            routes,
            &KEY_USES,
            |r| &r.key_uses,
        )?;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_secret_slot_matches",
            "Requests authenticated on a route, by the 0-based slot of the secret that matched",
            None,
            MetricType::Counter,
        )?;
        for r in routes {
            for (slot, n) in r.secret_slots.iter().enumerate() {
                let slot = slot.to_string();
                counter(
                    &mut m,
                    &[("route", r.route.as_str()), ("slot", slot.as_str())],
                    n.load(Relaxed),
                )?;
            }
        }
        results(
            &mut enc,
            "openclaw_webhooks_callback_deliveries",
            "Callback delivery attempts of a route, by result: delivered, failed (retried), dropped (410), dead",
            routes,
            &DELIVERIES,
            |r| &r.deliveries,
        )?;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_unrouted_requests",
            "Requests whose path matched no route (404)",
            None,
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, u64, f64>(&self.unrouted.load(Relaxed), None)?;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_limiter_backend_errors",
            "Limit decisions the cluster's Redis did not make (a call failed, came too late or had no connection) and failed connection attempts; those decisions were made by local limits",
            None,
            MetricType::Counter,
        )?;
        let errors = crate::shared_limits::BACKEND_ERRORS.load(Relaxed);
        m.encode_counter::<NoLabelSet, u64, f64>(&errors, None)?;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_build",
            "The plugin's build: package version, git revision and the ffi version it was built against",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("OPENCLAW_GIT_REVISION")),
            ("ffi_version", openclaw_ffi::module::FFI_VERSION),
        ])?;
        Ok(())
    }
}

/// The registry the exported `metrics` function encodes: the running
/// server's, kept after it stops so a scrape during the drain still counts.
static PUBLISHED: Mutex<Option<Arc<Registry>>> = Mutex::new(None);

/// Makes `registry` the one [`exposition`] encodes.
pub fn publish(registry: Registry) {
    *PUBLISHED.lock() = Some(Arc::new(registry));
}

/// The published metrics in the Prometheus text format (version 0.0.4),
/// or nothing before a server was started.
pub fn exposition() -> String {
    let Some(registry) = PUBLISHED.lock().clone() else {
        return String::new();
    };
    let mut text = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_err() {
        log::error!(target: "webhooks", "could not encode the metrics");
        return String::new();
    }
    text
}

#[cfg(test)]
mod tests;
