//! Waiting reads: `get_flow` with `waitForRevisionAbove` is answered by the
//! commit of a write made on another connection, by its `waitMs`, at once
//! when there is nothing to wait for, and at once when the Gateway stops.
//!
//! A test knows its waiters are registered without sleeping: with
//! `maxWaiters` = n, a probe (a waiting read of a missing flow, answered
//! at once) is refused with `too_many_waiters` exactly when n requests
//! wait. Waiters retry a 429, so a probe that briefly takes a place never
//! fails one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// A route whose limits never refuse the tests' own traffic, with
/// `maxWaiters` set.
fn config(max_waiters: u64, extra_limits: Value) -> Value {
    let mut limits = json!({
        "maxWaiters": max_waiters,
        "maxInFlight": 100_000,
        "rateLimitMaxRequests": 1_000_000,
    });
    merge(&mut limits, extra_limits);
    gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": limits}))}}),
        json!({}),
    )
}

fn wait_body(flow_id: &str, above: u64, wait_ms: Option<u64>) -> Value {
    let mut body = json!({"action": "get_flow", "flowId": flow_id, "waitForRevisionAbove": above});
    if let Some(ms) = wait_ms {
        body["waitMs"] = json!(ms);
    }
    body
}

/// One waiting read on its own connection, read with a timeout longer
/// than any `waitMs`.
fn wait_once(addr: SocketAddr, body: &Value) -> Response {
    wait_on(connect(addr), body)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

fn wait_on(mut stream: TcpStream, body: &Value) -> Response {
    let body = body.to_string();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: application/json\r\nauthorization: Bearer {SECRET}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut stream)
}

/// A waiting read that retries 429s until it is admitted; returns the
/// answer and when it arrived. Its first connection is made here, before
/// the thread starts, so that a thousand waiters never connect at once
/// (a burst beyond the listener's backlog is the kernel's problem, not
/// the one under test).
fn waiter(addr: SocketAddr, body: Value) -> JoinHandle<(Response, Instant)> {
    let first = connect(addr);
    thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut res = wait_on(first, &body);
            while res.status == 429 {
                res = wait_once(addr, &body);
            }
            (res, Instant::now())
        })
        .unwrap()
}

/// Returns once `maxWaiters` requests wait on the route: the refusal the
/// probe got then.
fn until_full(addr: SocketAddr) -> Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = wait_once(addr, &wait_body("probe-no-such-flow", 0, Some(1)));
        if res.json["code"] == "too_many_waiters" {
            return res;
        }
        assert!(
            res.status == 404 || res.status == 429,
            "{} {}",
            res.status,
            res.text
        );
        assert!(Instant::now() < deadline, "the waiters never all waited");
    }
}

fn resume_running(gw: &Gateway, flow: &Value) -> Value {
    let res = gw.action(json!({
        "action": "resume_flow",
        "flowId": flow["flowId"],
        "expectedRevision": flow["revision"],
        "status": "running",
    }));
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["result"]["flow"].clone()
}

fn revision(flow: &Value) -> u64 {
    flow["revision"].as_u64().unwrap()
}

#[test]
fn a_waiter_is_answered_by_the_commit_of_a_write_on_another_connection() {
    let gw = Gateway::start(&config(1, json!({})));
    let flow = gw.create_flow("wait for me");
    let id = flow["flowId"].as_str().unwrap();
    let waiting = waiter(gw.addr, wait_body(id, revision(&flow), Some(20_000)));
    until_full(gw.addr);

    let written = resume_running(&gw, &flow);
    let written_at = Instant::now();
    let (res, answered_at) = waiting.join().unwrap();

    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["ok"], true);
    assert_eq!(res.json["routeId"], "zapier");
    assert_eq!(res.json["result"]["flow"], written);
    assert_eq!(revision(&written), revision(&flow) + 1);
    assert_eq!(written["status"], "running");
    let late = answered_at.saturating_duration_since(written_at);
    assert!(
        late < Duration::from_secs(2),
        "answered {late:?} after the write"
    );
}

#[test]
fn a_wait_that_runs_out_returns_the_unchanged_flow() {
    let gw = Gateway::start(&config(8, json!({})));
    let flow = gw.create_flow("nobody writes");
    let id = flow["flowId"].as_str().unwrap();
    let started = Instant::now();
    let res = wait_once(gw.addr, &wait_body(id, revision(&flow), Some(300)));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"], flow);
}

#[test]
fn a_flow_already_above_or_terminal_is_answered_at_once() {
    let gw = Gateway::start(&config(8, json!({})));
    let flow = gw.create_flow("moves on");
    let id = flow["flowId"].as_str().unwrap();
    let moved = resume_running(&gw, &flow);

    let started = Instant::now();
    let res = wait_once(gw.addr, &wait_body(id, revision(&flow), None));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"], moved);

    let done = gw.action(json!({
        "action": "finish_flow", "flowId": id, "expectedRevision": moved["revision"],
    }));
    assert_eq!(done.status, 200, "{}", done.text);
    let done = done.json["result"]["flow"].clone();
    // Nothing can change a terminal flow: waiting for its next revision
    // would only run out.
    let res = wait_once(gw.addr, &wait_body(id, revision(&done), None));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"], done);
    assert_eq!(done["status"], "succeeded");
    // Both without waiting anywhere near the default 25 s.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_flow_is_answered_at_once_and_wait_fields_are_checked() {
    let gw = Gateway::start(&config(8, json!({})));
    let started = Instant::now();
    let res = wait_once(gw.addr, &wait_body("no-such-flow", 0, None));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(res.status, 404, "{}", res.text);
    assert_eq!(
        res.json,
        json!({"ok": false, "routeId": "zapier", "code": "not_found",
               "error": "TaskFlow not found.", "result": {"flow": null}})
    );
    // Without waiting, a missing flow stays an ordinary `flow: null`.
    let res = gw.action(json!({"action": "get_flow", "flowId": "no-such-flow"}));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"], json!({"flow": null}));

    let res = gw.action(json!({"action": "get_flow", "flowId": "f", "waitMs": 10}));
    assert_eq!(res.status, 400);
    assert_eq!(res.json["code"], "invalid_request");
    assert_eq!(
        res.json["issues"],
        json!([{"path": "waitMs", "message": "waitMs is only allowed with waitForRevisionAbove"}])
    );
    let res = gw.action(wait_body("f", 0, Some(25_001)));
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json["error"],
        "waitMs: Too big: expected number to be <=25000"
    );
}

#[test]
fn one_write_wakes_a_thousand_concurrent_waiters() {
    const WAITERS: usize = 1000;
    let gw = Gateway::start(&config(WAITERS as u64, json!({})));
    let flow = gw.create_flow("watched by many");
    let id = flow["flowId"].as_str().unwrap();
    let waiting: Vec<_> = (0..WAITERS)
        .map(|_| waiter(gw.addr, wait_body(id, revision(&flow), Some(25_000))))
        .collect();
    until_full(gw.addr);

    let written = resume_running(&gw, &flow);
    let written_at = Instant::now();
    for w in waiting {
        let (res, answered_at) = w.join().unwrap();
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.json["result"]["flow"], written);
        assert!(answered_at.saturating_duration_since(written_at) < Duration::from_secs(10));
    }
}

#[test]
fn a_waiter_past_max_waiters_is_refused_and_waiters_hold_no_in_flight_slot() {
    // One in-flight slot per client: three waiters from the same client
    // wait at once only because waiting releases it.
    let gw = Gateway::start(&config(3, json!({"maxInFlight": 1})));
    let flow = gw.create_flow("capped");
    let id = flow["flowId"].as_str().unwrap();
    let waiting: Vec<_> = (0..3)
        .map(|_| waiter(gw.addr, wait_body(id, revision(&flow), Some(25_000))))
        .collect();

    let refused = until_full(gw.addr);
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json,
        json!({"ok": false, "routeId": "zapier", "code": "too_many_waiters",
               "error": "too many requests are waiting on this route"})
    );
    assert_eq!(refused.header("retry-after"), Some("1"));

    let listed = gw.action(json!({"action": "list_flows"}));
    assert_eq!(listed.status, 200, "{}", listed.text);

    let written = resume_running(&gw, &flow);
    for w in waiting {
        let (res, _) = w.join().unwrap();
        assert_eq!(res.json["result"]["flow"], written);
    }
    // The places are free again.
    let res = wait_once(gw.addr, &wait_body("no-such-flow", 0, Some(1)));
    assert_eq!(res.status, 404, "{}", res.text);
}

/// actix notices a client that went away only when it writes the answer,
/// so an abandoned wait runs to its end; then nothing of it is left.
#[test]
fn a_waiter_whose_client_went_away_gives_its_place_back_when_its_wait_ends() {
    let gw = Gateway::start(&config(1, json!({})));
    let flow = gw.create_flow("abandoned");
    let body = wait_body(flow["flowId"].as_str().unwrap(), revision(&flow), Some(500)).to_string();
    let framing = format!("content-length: {}\r\n", body.len());
    let mut stream = begin_request(gw.addr, &framing, body.as_bytes());
    // As `until_full`, except that this waiter is resent by hand when a
    // probe took its place first (its answer is then already there).
    loop {
        let res = wait_once(gw.addr, &wait_body("probe-no-such-flow", 0, Some(1)));
        if res.json["code"] == "too_many_waiters" {
            break;
        }
        stream.set_nonblocking(true).unwrap();
        let answered = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
        stream.set_nonblocking(false).unwrap();
        if answered {
            stream = begin_request(gw.addr, &framing, body.as_bytes());
        }
    }
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    drop(stream);
    let started = Instant::now();
    loop {
        let res = wait_once(gw.addr, &wait_body("no-such-flow", 0, Some(1)));
        if res.status == 404 {
            break;
        }
        assert_eq!(res.json["code"], "too_many_waiters");
        assert!(started.elapsed() < Duration::from_secs(10), "still waiting");
    }
}

#[test]
fn sigterm_answers_pending_waiters_at_once_and_exits_promptly() {
    let mut config = config(5, json!({}));
    config["gateway"]["shutdownGraceMs"] = json!(20_000);
    let mut gw = Gateway::start(&config);
    let flow = gw.create_flow("open at shutdown");
    let id = flow["flowId"].as_str().unwrap();
    let waiting: Vec<_> = (0..5)
        .map(|_| waiter(gw.addr, wait_body(id, revision(&flow), Some(25_000))))
        .collect();
    until_full(gw.addr);

    let signalled = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    for w in waiting {
        let (res, _) = w.join().unwrap();
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.json["result"]["flow"], flow);
    }
}
