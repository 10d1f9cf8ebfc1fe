//! Encoding the metrics in the Prometheus text format: one [`Collector`]
//! reads every route's atomics at scrape time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::*;

type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

fn counter<const N: usize>(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &Labels<'_, N>,
    value: u64,
) -> fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, f64>(&value, None)
}

/// One counter series per route and 0-based `slot` of `counts`.
fn slots(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    routes: &[Arc<RouteMetrics>],
    counts: impl Fn(&RouteMetrics) -> &[AtomicU64],
) -> fmt::Result {
    for r in routes {
        for (slot, n) in counts(r).iter().enumerate() {
            let slot = slot.to_string();
            counter(
                m,
                &[("route", r.route.as_str()), ("slot", slot.as_str())],
                n.load(Relaxed),
            )?;
        }
    }
    Ok(())
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

/// A gauge family with one series per route.
fn route_gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    routes: &[Arc<RouteMetrics>],
    value: impl Fn(&RouteMetrics) -> i64,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for r in routes {
        gauge(&mut m, &[("route", r.route.as_str())], value(r))?;
    }
    Ok(())
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
        route_gauge(
            &mut enc,
            "openclaw_webhooks_in_flight_requests",
            "Requests being served on a route",
            routes,
            |r| r.in_flight.load(Relaxed),
        )?;
        route_gauge(
            &mut enc,
            "openclaw_webhooks_waiters",
            "Reads waiting on a route for a flow to change",
            routes,
            |r| r.waiters.load(Relaxed),
        )?;
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
        slots(&mut m, routes, |r| &r.secret_slots)?;
        let mut m = enc.encode_descriptor(
            "openclaw_webhooks_signing_key_matches",
            "Signed requests verified on a route, by the 0-based slot of the signing key that matched",
            None,
            MetricType::Counter,
        )?;
        slots(&mut m, routes, |r| &r.signing_slots)?;
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
