//! Unit tests of `metrics`.

use super::*;
use crate::error::Code;

#[test]
fn every_code_has_its_own_label_index() {
    for (i, code) in CODES.into_iter().enumerate() {
        assert_eq!(code_index(code), i, "{code:?}");
        let outcome = Outcome::Error(code);
        assert_eq!(Outcome::from_index(outcome.index()), outcome);
    }
}

#[test]
fn an_envelope_states_its_outcome() {
    assert_eq!(
        Outcome::of_envelope(br#"{"ok":true,"routeId":"r","result":{"flow":null}}"#),
        Outcome::Ok
    );
    assert_eq!(
        Outcome::of_envelope(br#"{"ok":true,"code":"cancel_pending","result":{}}"#),
        Outcome::CancelPending
    );
    assert_eq!(
        Outcome::of_envelope(br#"{"ok":false,"code":"revision_conflict","error":"x"}"#),
        Outcome::Error(Code::RevisionConflict)
    );
}

#[test]
fn durations_fall_in_the_first_bucket_that_holds_them() {
    let h = DurationHistogram::new();
    h.observe(Duration::from_micros(100));
    h.observe(Duration::from_micros(101));
    h.observe(Duration::from_secs(11));
    let (sum, count, buckets) = h.snapshot();
    assert_eq!(count, 3);
    assert_eq!(buckets[0], (0.0001, 1));
    assert_eq!(buckets[1], (0.00025, 1));
    assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 2);
    assert!((sum - 11.000201).abs() < 1e-9);
}

#[test]
fn a_route_exposes_its_series_from_the_start() {
    let route = RouteMetrics::new("zapier", 1, 2);
    let metrics = Metrics::new(vec![Arc::clone(&route)]);
    let registry = metrics.registry();
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"openclaw_webhooks_requests_total{route="zapier",action="create_flow",code="ok"} 0"#,
        r#"openclaw_webhooks_requests_total{route="zapier",action="none",code="unauthorized"} 0"#,
        r#"openclaw_webhooks_rejections_total{route="zapier",reason="rate_limited"} 0"#,
        r#"openclaw_webhooks_in_flight_requests{route="zapier"} 0"#,
        r#"openclaw_webhooks_waiters{route="zapier"} 0"#,
        r#"openclaw_webhooks_idempotency_keys_total{route="zapier",result="replayed"} 0"#,
        r#"openclaw_webhooks_secret_slot_matches_total{route="zapier",slot="0"} 0"#,
        r#"openclaw_webhooks_signing_key_matches_total{route="zapier",slot="1"} 0"#,
        r#"openclaw_webhooks_callback_deliveries_total{route="zapier",result="dead"} 0"#,
        "openclaw_webhooks_unrouted_requests_total 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // Process-wide, and counted by the shared limiters' tests meanwhile.
    assert!(text.contains("\nopenclaw_webhooks_limiter_backend_errors_total "));
    assert!(!text.contains(r#"action="get_flow",code="revision_conflict""#));
    route.request(
        ActionLabel(1),
        Outcome::Error(Code::RevisionConflict),
        Duration::from_millis(1),
    );
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(
        r#"openclaw_webhooks_requests_total{route="zapier",action="get_flow",code="revision_conflict"} 1"#
    ));
}
