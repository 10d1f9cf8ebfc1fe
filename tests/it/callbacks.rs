//! Callbacks over real HTTP to a receiver on 127.0.0.1 that verifies every
//! signature with the `standardwebhooks` crate: which events each notify
//! policy sends, retries with the same `webhook-id`, `Retry-After`, 410,
//! dead events, revision order per flow, and delivery after `kill -9`.
//!
//! Retry delays come from `callbacks.retryScheduleMs` (tens of
//! milliseconds here); no test waits for the production schedule.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const KEY_A: &str = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const KEY_B: &str = "whsec_KCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkc=";
const LIMIT: Duration = Duration::from_secs(30);

fn receiver() -> Receiver {
    Receiver::start(&[KEY_A, KEY_B])
}

/// The standard route with callbacks to `receiver`, `extra` merged into
/// `callbacks`.
fn config(receiver: &Receiver, extra: Value) -> Value {
    let mut callbacks = json!({
        "url": receiver.url("/hooks/openclaw?token=t0ps3cret"),
        "allowInsecureHttp": true,
        "signing": {"secrets": [KEY_A, KEY_B]},
        "timeoutMs": 5000,
        "retryScheduleMs": [50],
    });
    merge(&mut callbacks, extra);
    gateway_config(
        json!({"routes": {"zapier": route(json!({"callbacks": callbacks}))}}),
        json!({}),
    )
}

fn create(gw: &Gateway, goal: &str, policy: &str) -> String {
    let res = gw.action(json!({"action": "create_flow", "goal": goal, "notifyPolicy": policy}));
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["result"]["flow"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Applies a write and returns the revision it produced.
fn write(gw: &Gateway, action: &str, id: &str, rev: u64, extra: Value) -> u64 {
    let mut body = json!({"action": action, "flowId": id, "expectedRevision": rev});
    merge(&mut body, extra);
    let res = gw.action(body);
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["result"]["flow"]["revision"].as_u64().unwrap()
}

/// running, waiting, running, succeeded: revisions 1 to 4.
fn lifecycle(gw: &Gateway, id: &str) {
    write(gw, "resume_flow", id, 0, json!({"status": "running"}));
    write(gw, "set_waiting", id, 1, json!({}));
    write(gw, "resume_flow", id, 2, json!({"status": "running"}));
    write(gw, "finish_flow", id, 3, json!({}));
}

/// (type, revision) of each delivery of `flow`, in arrival order.
fn events_of(deliveries: &[Delivery], flow: &str) -> Vec<(String, u64)> {
    deliveries
        .iter()
        .filter(|d| d.flow_id() == flow)
        .map(|d| (d.kind().to_owned(), d.revision()))
        .collect()
}

fn has_event(deliveries: &[Delivery], flow: &str, kind: &str) -> bool {
    deliveries
        .iter()
        .any(|d| d.flow_id() == flow && d.kind() == kind)
}

#[test]
fn done_only_state_changes_and_silent_each_send_exactly_their_events() {
    let rx = receiver();
    let gw = Gateway::start(&config(&rx, json!({})));
    let changes = create(&gw, "every change", "state_changes");
    let done = create(&gw, "only the end", "done_only");
    let silent = create(&gw, "nothing", "silent");
    let default = {
        let res = gw.action(json!({"action": "create_flow", "goal": "default policy"}));
        res.json["result"]["flow"]["flowId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for id in [&changes, &done, &silent, &default] {
        lifecycle(&gw, id);
    }
    // A last event, written after all the others: once it has arrived,
    // every earlier event was claimed before it.
    let marker = create(&gw, "marker", "done_only");
    write(&gw, "fail_flow", &marker, 0, json!({}));
    rx.wait_until(LIMIT, |d| {
        has_event(d, &marker, "flow.failed")
            && events_of(d, &changes).len() >= 5
            && has_event(d, &done, "flow.succeeded")
            && has_event(d, &default, "flow.succeeded")
    });
    // Room for a straggler that should not exist.
    std::thread::sleep(Duration::from_millis(300));
    let all = &rx.deliveries()[..];
    assert_eq!(
        events_of(all, &changes),
        [
            ("flow.created".to_owned(), 0),
            ("flow.running".to_owned(), 1),
            ("flow.waiting".to_owned(), 2),
            ("flow.running".to_owned(), 3),
            ("flow.succeeded".to_owned(), 4),
        ]
    );
    assert_eq!(events_of(all, &done), [("flow.succeeded".to_owned(), 4)]);
    assert_eq!(
        events_of(all, &default),
        [("flow.succeeded".to_owned(), 4)],
        "done_only is the default"
    );
    assert_eq!(events_of(all, &silent), []);
    assert_eq!(all.len(), 5 + 1 + 1 + 1, "nothing else was sent");

    for d in all {
        assert!(d.verified, "signature of {} verified with every key", d.id);
        assert_eq!(d.path, "/hooks/openclaw?token=t0ps3cret");
        assert_eq!(d.headers["content-type"], "application/json");
        assert_eq!(d.headers["webhook-signature"].split(' ').count(), 2);
        assert_eq!(d.id, format!("evt_{}_{}", d.flow_id(), d.revision()));
        assert_eq!(d.attempt, 1);
        let body = d.body.as_object().unwrap();
        assert_eq!(
            body.keys().collect::<Vec<_>>(),
            ["type", "timestamp", "data"]
        );
        let ts = body["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        assert_eq!(d.body["data"]["routeId"], "zapier");
        let status = d.body["data"]["flow"]["status"].as_str().unwrap();
        if d.kind() != "flow.created" {
            assert_eq!(d.kind(), format!("flow.{status}"));
        }
    }
    // The flow in the event is the client view as of that revision.
    let last = gw.action(json!({"action": "get_flow", "flowId": changes}));
    let final_event = all
        .iter()
        .find(|d| d.flow_id() == changes && d.revision() == 4)
        .unwrap();
    assert_eq!(
        final_event.body["data"]["flow"],
        last.json["result"]["flow"]
    );
    // Logs name the receiver's origin, never its path or query.
    assert!(!gw.logs().contains("t0ps3cret"));
    assert!(gw
        .logs()
        .contains(&format!("sends flow events to http://{}", rx.addr)));
}

#[test]
fn a_receiver_that_fails_first_gets_the_event_later_with_the_same_id() {
    let rx = receiver();
    // 503 with Retry-After: 1, then 500, then accepted.
    rx.respond_with(|d| match d.attempt {
        1 => Reply::With(503, vec![("Retry-After".into(), "1".into())]),
        2 => Reply::Status(500),
        _ => Reply::Status(204),
    });
    let gw = Gateway::start(&config(&rx, json!({})));
    let id = create(&gw, "flaky receiver", "done_only");
    write(&gw, "finish_flow", &id, 0, json!({}));
    let got = rx.wait_for(3, LIMIT);
    assert!(got
        .iter()
        .all(|d| d.id == format!("evt_{id}_1") && d.verified));
    assert_eq!(got.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        got.iter().all(|d| d.raw == got[0].raw),
        "the same body every time"
    );
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After was honoured ({waited:?})"
    );
    gw.wait_for_log(&format!(
        "callback evt_{id}_1 attempt 1/8 to http://{} failed (HTTP 503); retrying in 1 s",
        rx.addr
    ));
    gw.wait_for_log(&format!("callback evt_{id}_1 attempt 2/8"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.deliveries().len(), 3, "delivered once accepted");
}

#[test]
fn gone_410_stops_retries_and_the_flow_s_next_event_still_goes() {
    let rx = receiver();
    rx.respond_with(|d| {
        if d.kind() == "flow.created" {
            Reply::Status(410)
        } else {
            Reply::Status(200)
        }
    });
    let gw = Gateway::start(&config(&rx, json!({})));
    let id = create(&gw, "gone", "state_changes");
    write(&gw, "finish_flow", &id, 0, json!({}));
    let got = rx.wait_until(LIMIT, |d| has_event(d, &id, "flow.succeeded"));
    assert_eq!(
        events_of(&got, &id),
        [
            ("flow.created".to_owned(), 0),
            ("flow.succeeded".to_owned(), 1)
        ]
    );
    gw.wait_for_log(&format!("callback evt_{id}_0 dropped"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.deliveries().len(), 2, "the 410 event was not retried");
}

#[test]
fn max_attempts_ends_in_a_dead_event_that_is_logged() {
    let rx = receiver();
    rx.respond_with(|_| Reply::Status(500));
    let gw = Gateway::start(&config(
        &rx,
        json!({"maxAttempts": 3, "retryScheduleMs": [20, 40]}),
    ));
    let id = create(&gw, "dead", "done_only");
    write(&gw, "fail_flow", &id, 0, json!({}));
    gw.wait_for_log(&format!(
        "callback evt_{id}_1 is dead after 3 attempts to http://{}; last: HTTP 500",
        rx.addr
    ));
    std::thread::sleep(Duration::from_millis(300));
    let got = rx.deliveries();
    assert_eq!(got.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(got.iter().all(|d| d.id == format!("evt_{id}_1")));
}

#[test]
fn events_of_one_flow_arrive_in_revision_order_even_when_attempts_fail() {
    let rx = receiver();
    // Every other event's first attempt fails.
    rx.respond_with(|d| {
        if d.attempt == 1 && d.revision() % 2 == 1 {
            Reply::Status(502)
        } else {
            Reply::Status(200)
        }
    });
    let gw = Gateway::start(&config(&rx, json!({"retryScheduleMs": [10]})));
    let flows: Vec<String> = (0..4)
        .map(|i| create(&gw, &format!("f{i}"), "state_changes"))
        .collect();
    let rounds = 10u64;
    std::thread::scope(|s| {
        for id in &flows {
            let gw = &gw;
            s.spawn(move || {
                let mut rev = 0;
                for _ in 0..rounds {
                    rev = write(gw, "resume_flow", id, rev, json!({"status": "running"}));
                    rev = write(gw, "set_waiting", id, rev, json!({}));
                }
            });
        }
    });
    let expected = 1 + 2 * rounds as usize;
    let got = rx.wait_until(LIMIT, |d| {
        flows.iter().all(|f| {
            d.iter()
                .filter(|x| x.flow_id() == f && !(x.attempt == 1 && x.revision() % 2 == 1))
                .count()
                >= expected
        })
    });
    for f in &flows {
        let revisions: Vec<u64> = got
            .iter()
            .filter(|d| d.flow_id() == f)
            .map(Delivery::revision)
            .collect();
        assert!(
            revisions.windows(2).all(|w| w[0] <= w[1]),
            "flow {f}: every attempt in revision order: {revisions:?}"
        );
        let delivered: Vec<u64> = got
            .iter()
            .filter(|d| d.flow_id() == f && !(d.attempt == 1 && d.revision() % 2 == 1))
            .map(Delivery::revision)
            .collect();
        assert_eq!(delivered, (0..=2 * rounds).collect::<Vec<_>>());
    }
    assert!(got.iter().all(|d| d.verified));
}

#[test]
fn kill_9_right_after_acknowledged_writes_and_every_event_is_delivered_after_a_restart() {
    let rx = receiver();
    // Nothing is answered before the crash: every event is either still
    // queued or in flight when the Gateway dies.
    rx.respond_with(|_| Reply::Hang);
    let config = config(&rx, json!({"timeoutMs": 60000}));
    // Events claimed before a kill are due at once after a restart on the
    // embedded store (its leases live in memory); on PostgreSQL a claim
    // outlives its node until its lease ends (`cluster_faults`).
    let gw = Gateway::start_embedded(&config);
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    for i in 0..40 {
        let id = create(&gw, &format!("crash {i}"), "state_changes");
        acknowledged.push((id.clone(), 0));
        if i % 2 == 0 {
            acknowledged.push((id.clone(), write(&gw, "finish_flow", &id, 0, json!({}))));
        }
    }
    let dir = gw.kill9();
    // What arrived before the crash was never answered.
    let before = rx.deliveries().len();
    rx.respond_with(|_| Reply::Status(200));
    let gw = Gateway::start_in(dir, &config, &[]);
    let delivered = |d: &[Delivery], (id, rev): &(String, u64)| {
        d[before..]
            .iter()
            .any(|x| x.flow_id() == id && x.revision() == *rev)
    };
    let got = rx.wait_until(LIMIT, |d| {
        acknowledged.iter().all(|event| delivered(d, event))
    });
    assert!(got.iter().all(|d| d.verified));
    gw.wait_for_log("undelivered events");
}

#[test]
fn callback_config_mistakes_are_all_refused_at_their_paths_and_check_names_the_origin() {
    let rx = receiver();
    let bad = gateway_config(
        json!({"routes": {
            "zapier": route(json!({"callbacks": {
                "url": "http://hooks.example.com/x",
                "signing": {"secrets": ["whsec_c2hvcnQ="]},
                "maxAttempts": 0,
            }})),
            "other": route(json!({"path": "/other", "callbacks": {"signing": {"secrets": []}}})),
        }}),
        json!({}),
    );
    let out = Gateway::run_to_exit(&bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let base = "plugins.entries.webhooks.config.routes";
    for expected in [
        format!("{base}.zapier.callbacks.url: must use https:// (set allowInsecureHttp: true to allow http://)"),
        format!("{base}.zapier.callbacks.signing.secrets.0: decodes to 5 bytes; at least 24 are required"),
        format!("{base}.zapier.callbacks.maxAttempts: expected a whole number from 1 to 50"),
        format!("{base}.other.callbacks.url: is required"),
        format!("{base}.other.callbacks.signing.secrets: expected 1 to 4 entries, got 0"),
    ] {
        assert!(out.stderr.contains(&expected), "missing {expected:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("c2hvcnQ"), "no secret is echoed");
    let checked = Gateway::run_to_exit(&config(&rx, json!({})), &["--check"]);
    assert_eq!(checked.status.code(), Some(0), "{}", checked.stderr);
    assert!(
        checked
            .stdout
            .contains(&format!("callbacks to http://{}", rx.addr)),
        "{}",
        checked.stdout
    );
    assert!(!checked.stdout.contains("t0ps3cret"));
}

#[test]
fn a_callback_secret_that_cannot_be_resolved_skips_the_route() {
    let rx = receiver();
    let mut config = config(
        &rx,
        json!({"signing": {"secrets": [{"source": "env", "provider": "default", "id": "OPENCLAW_TEST_NO_SUCH_CALLBACK_KEY"}]}}),
    );
    config["secrets"] = json!({"providers": {"default": {"source": "env"}}});
    // `--check` says so before a start does.
    let checked = Gateway::run_to_exit(&config, &["--check"]);
    assert!(
        checked
            .stdout
            .contains("route zapier: skipped: callbacks.signing.secrets.0"),
        "{}",
        checked.stdout
    );
    let gw = Gateway::start(&config);
    gw.wait_for_log("skipping route zapier: callbacks.signing.secrets.0");
    let res = gw.action(json!({"action": "list_flows"}));
    assert_eq!(res.status, 404, "the route does not serve");
}

#[test]
fn a_receiver_that_hangs_does_not_delay_another_route() {
    let stuck = receiver();
    stuck.respond_with(|_| Reply::Hang);
    let fine = receiver();
    let callbacks = |rx: &Receiver| {
        json!({
            "url": rx.url("/hook"), "allowInsecureHttp": true,
            "signing": {"secrets": [KEY_A, KEY_B]}, "timeoutMs": 60000,
        })
    };
    let config = gateway_config(
        json!({"routes": {
            "zapier": route(json!({"callbacks": callbacks(&stuck)})),
            "n8n": route(json!({"path": "/hooks/n8n", "sessionKey": "agent:n8n:main", "callbacks": callbacks(&fine)})),
        }}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    for i in 0..40 {
        create(&gw, &format!("stuck {i}"), "state_changes");
    }
    stuck.wait_for(32, LIMIT);
    let res = gw.post_json(
        "/hooks/n8n",
        SECRET,
        &[],
        &json!({"action": "create_flow", "goal": "fine", "notifyPolicy": "state_changes"})
            .to_string(),
    );
    assert_eq!(res.status, 200);
    let got = fine.wait_for(1, Duration::from_secs(5));
    assert_eq!(got[0].kind(), "flow.created");
    assert_eq!(got[0].body["data"]["routeId"], "n8n");
    assert_eq!(
        stuck.deliveries().len(),
        32,
        "at most 32 attempts in flight"
    );
}
