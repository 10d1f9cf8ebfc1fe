//! Startup, plugin loading and shutdown of the Gateway process.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use openclaw_ffi::module::FFI_VERSION;

use crate::support::*;

#[test]
fn the_gateway_starts_on_an_ephemeral_port_and_the_plugin_answers_its_route() {
    let gw = Gateway::start(&default_config());
    assert_ne!(gw.addr.port(), 0);
    let res = gw.action(json!({"action": "list_flows"}));
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json,
        json!({"ok": true, "routeId": "zapier", "result": {"flows": []}})
    );
    let logs = gw.logs();
    assert!(logs.contains("loaded plugin webhooks"), "{logs}");
    assert!(
        logs.contains("registered route zapier on /plugins/webhooks/zapier"),
        "{logs}"
    );
}

#[test]
fn check_validates_and_prints_the_routes_without_serving() {
    let out = Gateway::run_to_exit(&default_config(), &["--check"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("config ok"), "{}", out.stdout);
    // Build metadata the plugin reports through its root module.
    assert!(
        out.stdout
            .contains(&format!("plugin webhooks 0.1.0 (ffi {FFI_VERSION}, rev ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("route zapier: POST /plugins/webhooks/zapier -> session agent:main:main"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("listening on"));
}

#[test]
fn a_disabled_plugin_entry_is_not_loaded() {
    let mut config = default_config();
    config["plugins"]["entries"]["webhooks"]["enabled"] = json!(false);
    // A load path without the library: loading it would fail.
    config["plugins"]["load"]["paths"] = json!(["/nonexistent"]);
    let out = Gateway::run_to_exit(&config, &["--check"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!out.stdout.contains("plugin webhooks"), "{}", out.stdout);
}

#[test]
fn a_missing_plugin_library_is_a_clear_startup_error() {
    let dir = TempDir::new("empty");
    let mut config = default_config();
    config["plugins"]["load"]["paths"] = json!([dir.path()]);
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr
            .contains("plugin library libopenclaw_webhooks.so not found in plugins.load.paths"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening on"));
}

#[test]
fn a_plugin_built_against_an_incompatible_abi_is_refused_with_one_line() {
    // `deps/` first: it holds the fresh build (see `plugin_dirs`).
    let skewed = plugin_dirs()
        .iter()
        .map(|d| d.join("libskewed_plugin.so"))
        .find(|p| p.is_file())
        .expect("the skewed-plugin fixture is built by `cargo test`");
    let dir = TempDir::new("skewed");
    let lib = dir.path().join("libopenclaw_webhooks.so");
    std::fs::copy(&skewed, &lib).unwrap();
    let mut config = default_config();
    config["plugins"]["load"]["paths"] = json!([dir.path()]);
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("incompatible"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let line = lines[0];
    assert!(line.contains(&lib.display().to_string()), "{line}");
    assert!(line.contains("openclaw-ffi 9.0.0"), "{line}");
    assert!(
        line.contains(&format!("openclaw-ffi {FFI_VERSION}")),
        "{line}"
    );
    assert!(
        out.stderr.len() < 2_000,
        "the layout dump must not be printed: {}",
        out.stderr
    );
}

/// The line actix logs (through the Gateway's logger) when a worker starts
/// draining while one connection is still open.
const DRAINING_ONE_CONNECTION: &str = "graceful worker shutdown; finishing 1 connections";

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let mut gw = Gateway::start(&default_config());
    let body = json!({"action": "create_flow", "goal": "finish me"}).to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let framing = format!("Connection: close\r\ncontent-length: {}\r\n", body.len());
    // Admitted and waiting for the rest of its body.
    let mut stream = begin_request_until_continue(gw.addr, &framing, first);
    gw.signal(libc::SIGTERM);
    // The rest of the body arrives only once the drain has begun with this
    // request's connection still open.
    gw.wait_for_log(DRAINING_ONE_CONNECTION);
    stream.write_all(rest).unwrap();
    let res = read_response(&mut stream);
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"]["goal"], "finish me");
    let status = gw.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let logs = gw.logs();
    assert!(logs.contains("draining in-flight requests"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    assert!(TcpStream::connect(gw.addr).is_err(), "no longer accepting");
}

#[test]
fn a_request_that_outlives_the_grace_period_is_closed_and_the_gateway_exits_zero() {
    let mut config = default_config();
    config["gateway"]["shutdownGraceMs"] = json!(1000);
    let mut gw = Gateway::start(&config);
    // Admitted, and its body never completes (its own timeout is 15 s).
    let mut stream = begin_request_until_continue(gw.addr, "content-length: 100\r\n", b"{");
    let started = std::time::Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the grace was not given: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the grace was not enforced: {took:?}"
    );
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
    assert!(
        rest.is_empty(),
        "no response for a request cut off: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    // A long grace and a request that never completes keep the first
    // shutdown waiting; the second signal must not wait for it.
    let mut config = default_config();
    config["gateway"]["shutdownGraceMs"] = json!(60_000);
    let mut gw = Gateway::start(&config);
    let _stream = begin_request_until_continue(gw.addr, "content-length: 100\r\n", b"{");
    gw.signal(libc::SIGTERM);
    gw.wait_for_log(DRAINING_ONE_CONNECTION);
    gw.signal(libc::SIGINT);
    let status = gw.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    let logs = gw.logs();
    assert!(
        logs.contains("received signal 2 again; exiting now"),
        "{logs}"
    );
}

#[test]
fn plugin_log_records_are_forwarded_through_the_gateway_logger() {
    let gw = Gateway::start(&default_config());
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("registered route zapier"))
        .expect("route log line");
    // `<time> INFO  plugin:webhooks:<target>: <message>`
    assert!(line.contains(" INFO  plugin:webhooks:webhooks: "), "{line}");
    assert!(line.starts_with("20"), "{line}");
}

#[test]
fn malformed_requests_are_logged_a_few_times_as_warnings_then_counted() {
    let mut gw = Gateway::start(&default_config());
    let malformed = format!("POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    for _ in 0..2_000 {
        let mut stream = TcpStream::connect(gw.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(malformed.as_bytes()).unwrap();
        assert_eq!(read_response(&mut stream).status, 400);
    }
    // Stopping logs what was left out of the current period.
    gw.signal(libc::SIGTERM);
    assert!(gw.wait(Duration::from_secs(30)).success());
    let logs = gw.logs();
    let cause = "stream error: request parse error: invalid Header provided";
    let shown: Vec<&str> = logs
        .lines()
        .filter(|l| l.ends_with(cause) && !l.contains("not logged"))
        .collect();
    assert_eq!(shown.len(), 5, "{logs}");
    for line in &shown {
        assert!(
            line.contains(" WARN  plugin:webhooks:actix_http::"),
            "{line}"
        );
    }
    assert!(
        !logs.lines().any(|l| l.contains(" ERROR ")),
        "a malformed request is not a server error:\n{logs}"
    );
    let summary = logs
        .lines()
        .find(|l| l.contains("records not logged"))
        .unwrap_or_else(|| panic!("no summary:\n{logs}"));
    assert!(
        summary.contains(" WARN  plugin:webhooks:webhooks: 1995 more actix_http::h1::dispatcher records not logged in the last "),
        "{summary}"
    );
    assert!(summary.ends_with(cause), "{summary}");
}
