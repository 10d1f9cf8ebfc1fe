//! What a connection carries around a refusal: a response that says
//! `Connection: close` is the last thing on its connection, pipelined
//! requests behind it never run, and `Expect: 100-continue` is answered
//! only once the request has passed every check before its body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// An HTTP/1.1 request for the standard route, as raw bytes, with
/// `headers` (full lines without the CRLF) and `body`.
fn raw_request(method: &str, headers: &[&str], body: &str) -> String {
    let mut req = format!(
        "{method} {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

fn bearer() -> String {
    format!("authorization: Bearer {SECRET}")
}

fn create_flow_body(goal: &str) -> String {
    json!({"action": "create_flow", "goal": goal}).to_string()
}

/// An authenticated `create_flow` that must never run.
fn pipelined_create() -> String {
    raw_request(
        "POST",
        &["content-type: application/json", &bearer()],
        &create_flow_body("must not run"),
    )
}

/// Opens a connection, sends `bytes` in one write and reads until the
/// server closes it (bounded by a read timeout).
fn exchange(gw: &Gateway, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    assert!(
        read.is_ok(),
        "the server did not close the connection: {read:?} after {:?}",
        String::from_utf8_lossy(&raw)
    );
    raw
}

/// Splits a byte stream into the responses it holds, in order. Every
/// response here has a `Content-Length` (or no body, like `100 Continue`).
fn split_responses(raw: &[u8]) -> Vec<Response> {
    let mut rest = raw;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("a partial head: {:?}", String::from_utf8_lossy(rest)))
            + 4;
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let length: usize = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.trim().parse().unwrap());
        assert!(
            rest.len() >= end + length,
            "a partial body: {:?}",
            String::from_utf8_lossy(rest)
        );
        out.push(parse_response(&rest[..end + length]));
        rest = &rest[end + length..];
    }
    out
}

fn flow_count(gw: &Gateway) -> usize {
    let list = gw.action(json!({"action": "list_flows"}));
    assert_eq!(list.status, 200, "{}", list.text);
    list.json["result"]["flows"].as_array().unwrap().len()
}

#[test]
fn a_refused_request_is_the_last_thing_on_its_connection() {
    let gw = Gateway::start(&default_config());
    let create = create_flow_body("refused");
    let refusals = [
        (
            401,
            raw_request(
                "POST",
                &[
                    "content-type: application/json",
                    "authorization: Bearer wrong",
                ],
                &create,
            ),
        ),
        (
            405,
            raw_request("GET", &["content-type: application/json", &bearer()], ""),
        ),
        (
            415,
            raw_request("POST", &["content-type: text/plain", &bearer()], &create),
        ),
        (
            404,
            raw_request(
                "POST",
                &["content-type: application/json", &bearer()],
                &create,
            )
            .replacen(ROUTE_PATH, "/plugins/webhooks/nope", 1),
        ),
    ];
    for (status, refused) in refusals {
        let raw = exchange(&gw, format!("{refused}{}", pipelined_create()).as_bytes());
        let responses = split_responses(&raw);
        assert_eq!(responses.len(), 1, "{status}: {responses:?}");
        assert_eq!(responses[0].status, status);
        assert_eq!(responses[0].header("connection"), Some("close"), "{status}");
    }
    assert_eq!(flow_count(&gw), 0, "no pipelined request ran");
}

#[test]
fn a_refusal_in_mid_pipeline_closes_the_connection_after_the_answers_before_it() {
    let gw = Gateway::start(&default_config());
    let first = raw_request(
        "POST",
        &["content-type: application/json", &bearer()],
        &create_flow_body("first"),
    );
    let refused = raw_request(
        "POST",
        &[
            "content-type: application/json",
            "authorization: Bearer wrong",
        ],
        &create_flow_body("refused"),
    );
    let raw = exchange(
        &gw,
        format!("{first}{refused}{}", pipelined_create()).as_bytes(),
    );
    let responses = split_responses(&raw);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(responses[0].header("connection"), None, "kept alive");
    assert_eq!(responses[1].header("connection"), Some("close"));
    assert_eq!(
        flow_count(&gw),
        1,
        "only the request before the refusal ran"
    );
}

#[test]
fn a_request_whose_body_was_read_keeps_the_connection_open() {
    let gw = Gateway::start(&default_config());
    let invalid = raw_request(
        "POST",
        &["content-type: application/json", &bearer()],
        r#"{"action":"nope"}"#,
    );
    let last = raw_request(
        "POST",
        &[
            "content-type: application/json",
            &bearer(),
            "connection: close",
        ],
        &create_flow_body("after an invalid request"),
    );
    let raw = exchange(&gw, format!("{invalid}{last}").as_bytes());
    let statuses: Vec<u16> = split_responses(&raw).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200]);
    assert_eq!(flow_count(&gw), 1);
}

/// Sends a request head with `Expect: 100-continue` and no body.
fn expect_continue(gw: &Gateway, headers: &[&str], length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\nexpect: 100-continue\r\ncontent-length: {length}\r\n"
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads until the server closes the connection, which it must do without
/// waiting for the body it did not invite.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    assert!(
        read.is_ok(),
        "the server waited for a body: {read:?} after {:?}",
        String::from_utf8_lossy(&raw)
    );
    raw
}

#[test]
fn expect_continue_with_a_wrong_secret_gets_401_at_once_and_no_invitation() {
    let gw = Gateway::start(&default_config());
    let body = create_flow_body("never sent");
    let mut stream = expect_continue(
        &gw,
        &[
            "content-type: application/json",
            "authorization: Bearer wrong",
        ],
        body.len(),
    );
    let responses = split_responses(&read_until_closed(&mut stream));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401], "no 100 Continue before the refusal");
    assert_eq!(responses[0].header("connection"), Some("close"));
    assert_eq!(responses[0].json["code"], "unauthorized");
    assert_eq!(responses[0].header("www-authenticate"), Some("Bearer"));
}

#[test]
fn expect_continue_with_an_oversized_length_gets_413_at_once_and_no_invitation() {
    let gw = Gateway::start(&default_config());
    let mut stream = expect_continue(
        &gw,
        &["content-type: application/json", &bearer()],
        1_000_000_000,
    );
    let responses = split_responses(&read_until_closed(&mut stream));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [413], "no 100 Continue before the refusal");
    assert_eq!(responses[0].json["code"], "payload_too_large");
    assert_eq!(responses[0].header("connection"), Some("close"));
}

#[test]
fn expect_continue_on_a_good_request_is_invited_then_answered() {
    let gw = Gateway::start(&default_config());
    let body = create_flow_body("invited");
    let mut stream = expect_continue(
        &gw,
        &[
            "content-type: application/json",
            &bearer(),
            "connection: close",
        ],
        body.len(),
    );
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut first = vec![0; interim.len()];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(interim)
    );
    stream.write_all(body.as_bytes()).unwrap();
    let res = read_response(&mut stream);
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"]["goal"], "invited");
}

#[test]
fn after_a_refusal_the_server_reads_no_more_of_the_body() {
    let gw = Gateway::start(&default_config());
    const BODY: usize = 100 << 20;
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nauthorization: Bearer wrong\r\ncontent-length: {BODY}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 << 10];
    let mut written = 0;
    let mut response = Vec::new();
    let mut reader = stream.try_clone().unwrap();
    let reading = std::thread::spawn(move || {
        let _ = reader.read_to_end(&mut response);
        response
    });
    while written < BODY {
        match stream.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    assert!(
        written < BODY,
        "the whole {BODY}-byte body was accepted after the refusal"
    );
    let response = parse_response(&reading.join().unwrap());
    assert_eq!(response.status, 401);
    assert_eq!(response.header("connection"), Some("close"));
}

#[test]
fn an_invited_request_is_checked_once() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"rateLimitMaxRequests": 1}}))}}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let body = create_flow_body("counted once");
    let mut stream = expect_continue(
        &gw,
        &[
            "content-type: application/json",
            &bearer(),
            "connection: close",
        ],
        body.len(),
    );
    let mut interim = [0; 25];
    stream.read_exact(&mut interim).unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 "));
    stream.write_all(body.as_bytes()).unwrap();
    let res = read_response(&mut stream);
    assert_eq!(
        res.status, 200,
        "one request, one rate-limit count: {}",
        res.text
    );
    let next = gw.action(json!({"action": "list_flows"}));
    assert_eq!(next.status, 429, "the window allows exactly one request");
}

#[test]
fn expect_continue_with_a_compressed_body_gets_415_at_once_and_no_invitation() {
    let gw = Gateway::start(&default_config());
    let mut stream = expect_continue(
        &gw,
        &[
            "content-type: application/json",
            "content-encoding: gzip",
            &bearer(),
        ],
        43,
    );
    let responses = split_responses(&read_until_closed(&mut stream));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [415], "no 100 Continue before the refusal");
}

/// Requests that are not HTTP/1.1 as actix-http parses it never reach the
/// plugin: the parser answers them itself (its own bodiless response, see
/// the README), closes the connection, and nothing sent behind them runs.
#[test]
fn requests_the_http_parser_refuses_end_their_connection_and_nothing_behind_them_runs() {
    let gw = Gateway::start(&default_config());
    let mut many_headers = format!("POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        many_headers.push_str(&format!("x-h{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let refused = [
        (
            400,
            format!("POST {ROUTE_PATH} HTTP/9.9\r\nHost: x\r\n\r\n"),
        ),
        (400, "P@ST / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()),
        (
            400,
            raw_request(
                "POST",
                &[
                    "content-type: application/json",
                    &bearer(),
                    "transfer-encoding: chunked",
                ],
                "0\r\n\r\n",
            ),
        ),
        (431, many_headers),
    ];
    for (status, bytes) in refused {
        let raw = exchange(&gw, format!("{bytes}{}", pipelined_create()).as_bytes());
        let responses = split_responses(&raw);
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status], "{bytes:?}");
        assert_eq!(responses[0].header("connection"), Some("close"));
    }
    // A chunked body whose framing breaks: the parser drops the connection
    // without an answer.
    let broken = raw_request(
        "POST",
        &[
            "content-type: application/json",
            &bearer(),
            "transfer-encoding: chunked",
        ],
        "",
    )
    .replace("content-length: 0\r\n", "")
        + "zz\r\n{}\r\n";
    assert!(exchange(&gw, broken.as_bytes()).is_empty());
    assert_eq!(flow_count(&gw), 0);
}
