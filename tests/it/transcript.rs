//! A recorded session with the OpenClaw webhooks plugin (2026.9.6), replayed
//! request by request, in order, against the real Gateway and plugin.
//!
//! Each step is a request as a client sent it to the OpenClaw plugin and the
//! answer that plugin gave. Action answers (successes and the 200/202/404/409
//! outcomes of actions) must be the same text after normalisation, so key
//! order, optional keys, empty arrays and `null`s all count. Rejections
//! before an action runs are a JSON envelope here where the OpenClaw plugin
//! sends plain text, so only their status and `code` are compared (and, for
//! schema failures, the first issue's wording in `error`).
//!
//! Normalisation, as the recording was normalised: every flow or task id
//! becomes `<id-N>`, numbered in order of first appearance, and a timestamp
//! the Gateway took from its clock becomes `<ts>`. A time the client
//! supplied (`startedAt: 1000`) stays literal.
//!
//! Where our TaskFlow rules deliberately differ from OpenClaw's, the step
//! expects our answer and says what the OpenClaw plugin answered instead:
//! a terminal flow is never resurrected (a mutation on it is a
//! `revision_conflict` with `current`), and `cancel_flow` cancels the
//! flow's active child records and then the flow, in one write. Later reads
//! of those flows follow from that.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::*;

const ROUTE: &str = "/plugins/webhooks/test";

/// The `Content-Type` of every JSON answer.
const JSON: &str = "application/json; charset=utf-8";

type Headers = &'static [(&'static str, &'static str)];

/// The headers of most steps: a JSON body and the route's secret as a
/// Bearer token.
const AUTHED: Headers = &[
    ("Content-Type", "application/json"),
    ("Authorization", "Bearer <secret>"),
];

/// The route of the recording: id `test` on its default path, owned by the
/// main session, with the default controller id `webhooks/test`.
fn recorded_route_config() -> Value {
    gateway_config(
        json!({"routes": {"test": {"path": ROUTE, "sessionKey": SESSION, "secret": SECRET}}}),
        json!({}),
    )
}

struct Step {
    n: u32,
    method: &'static str,
    path: &'static str,
    headers: Headers,
    body: String,
    status: u16,
    expect: Expect,
}

enum Expect {
    /// The whole body, after normalisation.
    Body(&'static str),
    /// A rejection before the action ran: the `code`, and for a schema
    /// failure the first issue as `error`.
    Rejection {
        code: &'static str,
        error: Option<&'static str>,
    },
}

/// A POST of `body` to the recorded route; `<secret>` in a header or the
/// path stands for the route's secret, `<id-N>` in the body for the N-th id
/// seen so far.
fn step(n: u32, headers: Headers, body: &str) -> Step {
    Step {
        n,
        method: "POST",
        path: ROUTE,
        headers,
        body: body.to_owned(),
        status: 0,
        expect: Expect::Body(""),
    }
}

impl Step {
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// The OpenClaw plugin's answer, which ours must equal.
    fn answers(mut self, status: u16, body: &'static str) -> Self {
        self.status = status;
        self.expect = Expect::Body(body);
        self
    }

    /// A rejection the OpenClaw plugin sends as plain text; ours is the JSON
    /// envelope with `code`.
    fn rejected(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.expect = Expect::Rejection { code, error: None };
        self
    }

    /// A schema failure: the same status, `code` and first issue.
    fn refused(mut self, status: u16, code: &'static str, error: &'static str) -> Self {
        self.status = status;
        self.expect = Expect::Rejection {
            code,
            error: Some(error),
        };
        self
    }
}

/// `{"action":"list_flows","pad":"aaa…"}`, exactly `len` bytes long.
fn list_flows_padded_to(len: usize) -> String {
    let frame = r#"{"action":"list_flows","pad":""}"#;
    format!(
        "{}{}\"}}",
        &frame[..frame.len() - 2],
        "a".repeat(len - frame.len())
    )
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Maps ids to `<id-N>` and clock readings to `<ts>`, and back for requests.
struct Normaliser {
    ids: Vec<String>,
    /// Clock readings of the Gateway fall in `since..=now_ms()`.
    since: u64,
}

/// Keys whose value may be a reading of the Gateway's clock, and what is
/// added to the reading: a finished task's `cleanupAfter` is the moment it
/// ended plus the default task retention (7 days).
const TIMESTAMP_KEYS: [(&str, u64); 7] = [
    ("createdAt", 0),
    ("updatedAt", 0),
    ("endedAt", 0),
    ("lastEventAt", 0),
    ("startedAt", 0),
    ("cancelRequestedAt", 0),
    ("cleanupAfter", 7 * 24 * 60 * 60 * 1000),
];

impl Normaliser {
    fn new() -> Self {
        Self {
            ids: Vec::new(),
            since: now_ms(),
        }
    }

    /// Puts the real ids in place of `<id-N>` in a request.
    fn fill(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (i, id) in self.ids.iter().enumerate().rev() {
            out = out.replace(&format!("<id-{}>", i + 1), id);
        }
        out
    }

    fn normalise(&mut self, text: &str) -> String {
        let ids = self.ids_to_placeholders(text);
        self.clock_readings_to_placeholders(&ids)
    }

    /// Every JSON string that is a UUID becomes `<id-N>`.
    fn ids_to_placeholders(&mut self, text: &str) -> String {
        let parts: Vec<String> = text
            .split('"')
            .map(|part| {
                if !is_uuid(part) {
                    return part.to_owned();
                }
                let n = match self.ids.iter().position(|id| id == part) {
                    Some(i) => i + 1,
                    None => {
                        self.ids.push(part.to_owned());
                        self.ids.len()
                    }
                };
                format!("<id-{n}>")
            })
            .collect();
        parts.join("\"")
    }

    fn clock_readings_to_placeholders(&self, text: &str) -> String {
        let until = now_ms();
        let mut out = text.to_owned();
        for (key, offset) in TIMESTAMP_KEYS {
            let pattern = format!("\"{key}\":");
            let mut from = 0;
            while let Some(at) = out[from..].find(&pattern) {
                let start = from + at + pattern.len();
                let digits = out[start..].bytes().take_while(u8::is_ascii_digit).count();
                let end = start + digits;
                let reading = out[start..end]
                    .parse::<u64>()
                    .is_ok_and(|v| (self.since + offset..=until + offset).contains(&v));
                if reading {
                    out.replace_range(start..end, "<ts>");
                    from = start + "<ts>".len();
                } else {
                    from = end;
                }
            }
        }
        out
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Sends one request; `<secret>` in the path or a header value stands for
/// the route's secret.
fn send(gw: &Gateway, method: &str, path: &str, headers: Headers, body: &str) -> Response {
    let values: Vec<String> = headers
        .iter()
        .map(|(_, v)| v.replace("<secret>", SECRET))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .zip(&values)
        .map(|((k, _), v)| (*k, v.as_str()))
        .collect();
    let path = path.replace("<secret>", SECRET);
    gw.request(method, &path, &headers, body.as_bytes())
}

/// Sends every step in order and returns one line per difference.
fn replay(steps: Vec<Step>) -> Vec<String> {
    let gw = Gateway::start(&recorded_route_config());
    let mut norm = Normaliser::new();
    let mut differences = Vec::new();
    for s in steps {
        let res = send(&gw, s.method, s.path, s.headers, &norm.fill(&s.body));
        let text = norm.normalise(&res.text);
        let n = s.n;
        if res.status != s.status {
            differences.push(format!(
                "[{n}] status {} instead of {}: {text}",
                res.status, s.status
            ));
            continue;
        }
        match s.expect {
            Expect::Body(_) if res.header("content-type") != Some(JSON) => {
                differences.push(format!("[{n}] not {JSON}: {:?}", res.headers));
            }
            Expect::Body(want) if text != want => {
                differences.push(format!("[{n}]\n  got:  {text}\n  want: {want}"));
            }
            Expect::Body(_) => {}
            // A HEAD answer has no body to compare.
            Expect::Rejection { .. } if s.method == "HEAD" => {}
            Expect::Rejection { code, error } => {
                if res.json["ok"] != false || res.json["code"] != code {
                    differences.push(format!("[{n}] code is not {code}: {text}"));
                }
                if let Some(error) = error {
                    if res.json["error"] != error {
                        differences.push(format!("[{n}] error is not {error:?}: {text}"));
                    }
                }
            }
        }
    }
    differences
}

#[test]
fn the_recorded_openclaw_session_gets_the_same_answers() {
    let differences = replay(recorded_session());
    assert!(
        differences.is_empty(),
        "{} answers differ from the OpenClaw plugin's:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn route_paths_match_whatever_their_ascii_case() {
    let gw = Gateway::start(&recorded_route_config());
    for path in ["/PLUGINS/WEBHOOKS/TEST", "/Plugins/Webhooks/Test/"] {
        let res = send(&gw, "POST", path, AUTHED, r#"{"action":"list_flows"}"#);
        assert_eq!(res.status, 200, "{path}: {}", res.text);
        assert_eq!(
            res.text,
            r#"{"ok":true,"routeId":"test","result":{"flows":[]}}"#
        );
    }
}

#[test]
fn a_missing_or_unknown_action_is_refused_naming_all_thirteen_actions() {
    let gw = Gateway::start(&recorded_route_config());
    let message = "Invalid discriminator value. Expected 'create_flow' | 'get_flow' | 'list_flows' | 'find_latest_flow' | 'resolve_flow' | 'get_task_summary' | 'set_waiting' | 'resume_flow' | 'finish_flow' | 'fail_flow' | 'request_cancel' | 'cancel_flow' | 'run_task'";
    for body in [r#"{}"#, r#"{"action":"explode"}"#] {
        let res = send(&gw, "POST", ROUTE, AUTHED, body);
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.json["code"], "invalid_request");
        assert_eq!(res.json["error"], format!("action: {message}"));
        assert_eq!(
            res.json["issues"],
            json!([{"path": "action", "message": message}])
        );
    }
}

/// `find_latest_flow` from [35] on: <id-6> stays failed. OpenClaw's answer
/// is that flow as it resumed it at [33] (revision 3, queued).
const FOURTH_FLOW_STILL_FAILED: &str = r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","blockedTaskId":"task-x","blockedSummary":"gave up","revision":2,"status":"failed","notifyPolicy":"done_only","goal":"fourth","stateJson":null,"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#;

/// The requests and the OpenClaw plugin's answers.
fn recorded_session() -> Vec<Step> {
    vec![
        // [1] create_flow minimal
        step(1, AUTHED, r#"{"action":"create_flow","goal":"x"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [2] get_flow (existing)
        step(2, AUTHED, r#"{"action":"get_flow","flowId":"<id-1>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [3] get_flow (unknown id) -> 200 flow:null
        step(3, AUTHED, r#"{"action":"get_flow","flowId":"does-not-exist"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":null}}"#),
        // [4] list_flows
        step(4, AUTHED, r#"{"action":"list_flows"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flows":[{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}]}}"#),
        // [5] find_latest_flow
        step(5, AUTHED, r#"{"action":"find_latest_flow"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [6] resolve_flow by flowId
        step(6, AUTHED, r#"{"action":"resolve_flow","token":"<id-1>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [7] resolve_flow by session key
        step(7, AUTHED, r#"{"action":"resolve_flow","token":"agent:main:main"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"x","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [8] get_task_summary
        step(8, AUTHED, r#"{"action":"get_task_summary","flowId":"<id-1>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"summary":{"total":0,"active":0,"terminal":0,"failures":0,"byStatus":{"queued":0,"running":0,"succeeded":0,"failed":0,"timed_out":0,"cancelled":0,"lost":0},"byRuntime":{"subagent":0,"acp":0,"cli":0,"cron":0}}}}"#),
        // [9] set_waiting rev 0
        step(9, AUTHED, r#"{"action":"set_waiting","flowId":"<id-1>","expectedRevision":0,"currentStep":"wait-1","waitJson":{"k":1}}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":1,"status":"waiting","notifyPolicy":"done_only","goal":"x","waitJson":{"k":1},"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [10] set_waiting stale rev 0 -> 409 revision_conflict
        step(10, AUTHED, r#"{"action":"set_waiting","flowId":"<id-1>","expectedRevision":0}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"revision_conflict","error":"TaskFlow changed since the caller's expected revision.","result":{"applied":false,"code":"revision_conflict","current":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":1,"status":"waiting","notifyPolicy":"done_only","goal":"x","waitJson":{"k":1},"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [11] set_waiting unknown flow -> 404
        step(11, AUTHED, r#"{"action":"set_waiting","flowId":"does-not-exist","expectedRevision":0}"#)
            .answers(404, r#"{"ok":false,"routeId":"test","code":"not_found","error":"TaskFlow not found.","result":{"applied":false,"code":"not_found"}}"#),
        // [12] resume_flow rev 1 status running
        step(12, AUTHED, r#"{"action":"resume_flow","flowId":"<id-1>","expectedRevision":1,"status":"running","stateJson":{"s":[1,2]}}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":2,"status":"running","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [13] finish_flow rev 2
        step(13, AUTHED, r#"{"action":"finish_flow","flowId":"<id-1>","expectedRevision":2}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":3,"status":"succeeded","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [14] cancel_flow on finished flow
        step(14, AUTHED, r#"{"action":"cancel_flow","flowId":"<id-1>"}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"terminal","error":"Flow is already succeeded.","result":{"found":true,"cancelled":false,"reason":"Flow is already succeeded.","flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":3,"status":"succeeded","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},"tasks":[]}}"#),
        // [15] run_task on finished flow
        step(15, AUTHED, r#"{"action":"run_task","flowId":"<id-1>","runtime":"subagent","task":"t"}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"terminal","error":"Flow is already succeeded.","result":{"found":true,"created":false,"reason":"Flow is already succeeded.","flow":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":3,"status":"succeeded","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [16] finish_flow again (terminal) rev 3
        // A terminal flow is never resurrected: OpenClaw applies this second
        // finish (200, revision 4). It is no retry, which would expect revision 2.
        step(16, AUTHED, r#"{"action":"finish_flow","flowId":"<id-1>","expectedRevision":3}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"revision_conflict","error":"TaskFlow changed since the caller's expected revision.","result":{"applied":false,"code":"revision_conflict","current":{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":3,"status":"succeeded","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [17] create_flow full options
        step(17, AUTHED, r#"{"action":"create_flow","goal":"second","controllerId":"ctl/custom","status":"running","notifyPolicy":"silent","currentStep":"step-a","stateJson":{"a":1},"waitJson":null}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":0,"status":"running","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [18] run_task (unbacked, queued)
        step(18, AUTHED, r#"{"action":"run_task","flowId":"<id-2>","runtime":"subagent","task":"do it","label":"L"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":0,"status":"running","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>},"task":{"taskId":"<id-3>","runtime":"subagent","parentFlowId":"<id-2>","agentId":"main","label":"L","scopeKind":"session","task":"do it","status":"queued","deliveryStatus":"pending","notifyPolicy":"done_only","createdAt":<ts>,"lastEventAt":<ts>}}}"#),
        // [19] run_task status running with progress
        step(19, AUTHED, r#"{"action":"run_task","flowId":"<id-2>","runtime":"acp","task":"do more","status":"running","startedAt":1000,"progressSummary":"p"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":0,"status":"running","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>},"task":{"taskId":"<id-4>","runtime":"acp","parentFlowId":"<id-2>","agentId":"main","progressSummary":"p","scopeKind":"session","task":"do more","status":"running","deliveryStatus":"pending","notifyPolicy":"done_only","createdAt":1000,"startedAt":1000,"lastEventAt":1000}}}"#),
        // [20] run_task startedAt without running -> 400
        step(20, AUTHED, r#"{"action":"run_task","flowId":"<id-2>","runtime":"acp","task":"t","startedAt":1}"#)
            .refused(400, "invalid_request", r#"status: status must be running when startedAt, lastEventAt, or progressSummary is provided"#),
        // [21] run_task unknown flow -> 404
        step(21, AUTHED, r#"{"action":"run_task","flowId":"does-not-exist","runtime":"subagent","task":"t"}"#)
            .answers(404, r#"{"ok":false,"routeId":"test","code":"not_found","error":"TaskFlow not found.","result":{"found":false,"created":false,"reason":"Flow not found."}}"#),
        // [22] get_task_summary with tasks
        step(22, AUTHED, r#"{"action":"get_task_summary","flowId":"<id-2>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"summary":{"total":2,"active":2,"terminal":0,"failures":0,"byStatus":{"queued":1,"running":1,"succeeded":0,"failed":0,"timed_out":0,"cancelled":0,"lost":0},"byRuntime":{"subagent":1,"acp":1,"cli":0,"cron":0}}}}"#),
        // [23] cancel_flow with active children
        // `cancel_flow` cancels the active child records, then the flow, in one
        // write. OpenClaw cannot cancel children it never launched: 202
        // `cancel_pending`, children still active, flow still running.
        step(23, AUTHED, r#"{"action":"cancel_flow","flowId":"<id-2>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"found":true,"cancelled":true,"flow":{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":1,"status":"cancelled","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},"tasks":[{"taskId":"<id-3>","runtime":"subagent","parentFlowId":"<id-2>","agentId":"main","label":"L","error":"Cancelled by operator.","scopeKind":"session","task":"do it","status":"cancelled","deliveryStatus":"pending","notifyPolicy":"done_only","createdAt":<ts>,"endedAt":<ts>,"lastEventAt":<ts>,"cleanupAfter":<ts>},{"taskId":"<id-4>","runtime":"acp","parentFlowId":"<id-2>","agentId":"main","error":"Cancelled by operator.","progressSummary":"p","scopeKind":"session","task":"do more","status":"cancelled","deliveryStatus":"pending","notifyPolicy":"done_only","createdAt":1000,"startedAt":1000,"endedAt":<ts>,"lastEventAt":<ts>,"cleanupAfter":<ts>}]}}"#),
        // [24] get_flow after cancel_flow
        // Cancelled at [23]; OpenClaw's flow is still running, cancel requested.
        step(24, AUTHED, r#"{"action":"get_flow","flowId":"<id-2>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":1,"status":"cancelled","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [25] create_flow third
        step(25, AUTHED, r#"{"action":"create_flow","goal":"third"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-5>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"third","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [26] request_cancel rev 0
        step(26, AUTHED, r#"{"action":"request_cancel","flowId":"<id-5>","expectedRevision":0}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-5>","syncMode":"managed","controllerId":"webhooks/test","revision":1,"status":"queued","notifyPolicy":"done_only","goal":"third","cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [27] run_task after request_cancel
        step(27, AUTHED, r#"{"action":"run_task","flowId":"<id-5>","runtime":"subagent","task":"t"}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"cancel_requested","error":"Flow cancellation has already been requested.","result":{"found":true,"created":false,"reason":"Flow cancellation has already been requested.","flow":{"flowId":"<id-5>","syncMode":"managed","controllerId":"webhooks/test","revision":1,"status":"queued","notifyPolicy":"done_only","goal":"third","cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [28] cancel_flow (no children)
        step(28, AUTHED, r#"{"action":"cancel_flow","flowId":"<id-5>"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"found":true,"cancelled":true,"flow":{"flowId":"<id-5>","syncMode":"managed","controllerId":"webhooks/test","revision":2,"status":"cancelled","notifyPolicy":"done_only","goal":"third","waitJson":null,"cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},"tasks":[]}}"#),
        // [29] cancel_flow unknown -> 404
        step(29, AUTHED, r#"{"action":"cancel_flow","flowId":"does-not-exist"}"#)
            .answers(404, r#"{"ok":false,"routeId":"test","code":"not_found","error":"TaskFlow not found.","result":{"found":false,"cancelled":false,"reason":"Flow not found."}}"#),
        // [30] create_flow fourth (status waiting)
        step(30, AUTHED, r#"{"action":"create_flow","goal":"fourth","status":"waiting"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"waiting","notifyPolicy":"done_only","goal":"fourth","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [31] set_waiting blocked
        step(31, AUTHED, r#"{"action":"set_waiting","flowId":"<id-6>","expectedRevision":0,"blockedTaskId":"task-x","blockedSummary":"needs input"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","blockedTaskId":"task-x","blockedSummary":"needs input","revision":1,"status":"blocked","notifyPolicy":"done_only","goal":"fourth","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [32] fail_flow rev 1
        step(32, AUTHED, r#"{"action":"fail_flow","flowId":"<id-6>","expectedRevision":1,"blockedSummary":"gave up","stateJson":null}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"applied":true,"flow":{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","blockedTaskId":"task-x","blockedSummary":"gave up","revision":2,"status":"failed","notifyPolicy":"done_only","goal":"fourth","stateJson":null,"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [33] resume_flow on failed flow rev 2
        // A terminal flow is never resurrected: OpenClaw resumes the failed flow
        // (200, revision 3, queued, blocked details cleared).
        step(33, AUTHED, r#"{"action":"resume_flow","flowId":"<id-6>","expectedRevision":2}"#)
            .answers(409, r#"{"ok":false,"routeId":"test","code":"revision_conflict","error":"TaskFlow changed since the caller's expected revision.","result":{"applied":false,"code":"revision_conflict","current":{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","blockedTaskId":"task-x","blockedSummary":"gave up","revision":2,"status":"failed","notifyPolicy":"done_only","goal":"fourth","stateJson":null,"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}}}"#),
        // [34] list_flows (4 flows)
        // As [13], [24] and [32] left the flows. OpenClaw's differ: <id-6> was
        // resumed at [33], <id-2> is still running, <id-1> is at revision 4.
        step(34, AUTHED, r#"{"action":"list_flows"}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flows":[{"flowId":"<id-6>","syncMode":"managed","controllerId":"webhooks/test","blockedTaskId":"task-x","blockedSummary":"gave up","revision":2,"status":"failed","notifyPolicy":"done_only","goal":"fourth","stateJson":null,"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},{"flowId":"<id-5>","syncMode":"managed","controllerId":"webhooks/test","revision":2,"status":"cancelled","notifyPolicy":"done_only","goal":"third","waitJson":null,"cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},{"flowId":"<id-2>","syncMode":"managed","controllerId":"ctl/custom","currentStep":"step-a","revision":1,"status":"cancelled","notifyPolicy":"silent","goal":"second","stateJson":{"a":1},"waitJson":null,"cancelRequestedAt":<ts>,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>},{"flowId":"<id-1>","syncMode":"managed","controllerId":"webhooks/test","currentStep":"wait-1","revision":3,"status":"succeeded","notifyPolicy":"done_only","goal":"x","stateJson":{"s":[1,2]},"waitJson":null,"createdAt":<ts>,"updatedAt":<ts>,"endedAt":<ts>}]}}"#),
        // [35] secret via x-openclaw-webhook-secret
        step(35, &[("Content-Type", "application/json"), ("x-openclaw-webhook-secret", "<secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [36] lowercase 'bearer' scheme
        step(36, &[("Content-Type", "application/json"), ("Authorization", "bearer <secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [37] wrong secret -> 401
        step(37, &[("Content-Type", "application/json"), ("Authorization", "Bearer wrong-secret")], r#"{"action":"list_flows"}"#)
            .rejected(401, "unauthorized"),
        // [38] no secret -> 401
        step(38, &[("Content-Type", "application/json")], r#"{"action":"list_flows"}"#)
            .rejected(401, "unauthorized"),
        // [39] Bearer wrong + correct x-header -> 401 (Bearer wins)
        step(39, &[("Content-Type", "application/json"), ("Authorization", "Bearer wrong"), ("x-openclaw-webhook-secret", "<secret>")], r#"{"action":"list_flows"}"#)
            .rejected(401, "unauthorized"),
        // [40] Basic auth + correct x-header -> x-header used
        step(40, &[("Content-Type", "application/json"), ("Authorization", "Basic Zm9vOmJhcg=="), ("x-openclaw-webhook-secret", "<secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [41] secret in query string -> 401
        step(41, &[("Content-Type", "application/json")], r#"{"action":"list_flows"}"#).path("/plugins/webhooks/test?token=<secret>")
            .rejected(401, "unauthorized"),
        // [42] wrong secret + invalid JSON -> 401 (auth before body)
        step(42, &[("Content-Type", "application/json"), ("Authorization", "Bearer wrong")], r#"{not json"#)
            .rejected(401, "unauthorized"),
        // [43] GET -> 405
        step(43, &[], "").method("GET")
            .rejected(405, "method_not_allowed"),
        // [44] PUT -> 405
        step(44, AUTHED, r#"{"action":"list_flows"}"#).method("PUT")
            .rejected(405, "method_not_allowed"),
        // [45] HEAD -> 405
        step(45, &[], "").method("HEAD")
            .rejected(405, "method_not_allowed"),
        // [46] OPTIONS -> 405
        step(46, &[], "").method("OPTIONS")
            .rejected(405, "method_not_allowed"),
        // [47] text/plain -> 415
        step(47, &[("Content-Type", "text/plain"), ("Authorization", "Bearer <secret>")], r#"{"action":"list_flows"}"#)
            .rejected(415, "unsupported_media_type"),
        // [48] no content-type -> 415
        step(48, &[("Authorization", "Bearer <secret>")], r#"{"action":"list_flows"}"#)
            .rejected(415, "unsupported_media_type"),
        // [49] form-urlencoded + wrong secret -> 415 (content type before auth)
        step(49, &[("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Bearer wrong")], r#"a=b"#)
            .rejected(415, "unsupported_media_type"),
        // [50] application/json; charset=utf-8 accepted
        step(50, &[("Content-Type", "application/json; charset=utf-8"), ("Authorization", "Bearer <secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [51] APPLICATION/JSON (case) accepted
        step(51, &[("Content-Type", "APPLICATION/JSON"), ("Authorization", "Bearer <secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [52] application/merge-patch+json accepted (+json suffix)
        step(52, &[("Content-Type", "application/merge-patch+json"), ("Authorization", "Bearer <secret>")], r#"{"action":"find_latest_flow"}"#)
            .answers(200, FOURTH_FLOW_STILL_FAILED),
        // [53] text/json -> 415
        step(53, &[("Content-Type", "text/json"), ("Authorization", "Bearer <secret>")], r#"{"action":"find_latest_flow"}"#)
            .rejected(415, "unsupported_media_type"),
        // [54] invalid JSON -> 400
        step(54, AUTHED, r#"{"action":"#)
            .rejected(400, "invalid_body"),
        // [55] empty body -> 400
        step(55, AUTHED, "")
            .rejected(400, "invalid_body"),
        // [56] whitespace-only body -> 400
        step(56, AUTHED, r#"   "#)
            .rejected(400, "invalid_body"),
        // [57] JSON array -> 400
        step(57, AUTHED, r#"[]"#)
            .refused(400, "invalid_request", r#"Invalid input: expected object, received array"#),
        // [58] JSON null -> 400
        step(58, AUTHED, r#"null"#)
            .refused(400, "invalid_request", r#"Invalid input: expected object, received null"#),
        // [59] empty object (no action) -> 400
        step(59, AUTHED, r#"{}"#)
            .refused(400, "invalid_request", r#"action: Invalid discriminator value. Expected 'create_flow' | 'get_flow' | 'list_flows' | 'find_latest_flow' | 'resolve_flow' | 'get_task_summary' | 'set_waiting' | 'resume_flow' | 'finish_flow' | 'fail_flow' | 'request_cancel' | 'cancel_flow' | 'run_task'"#),
        // [60] unknown action -> 400
        step(60, AUTHED, r#"{"action":"explode"}"#)
            .refused(400, "invalid_request", r#"action: Invalid discriminator value. Expected 'create_flow' | 'get_flow' | 'list_flows' | 'find_latest_flow' | 'resolve_flow' | 'get_task_summary' | 'set_waiting' | 'resume_flow' | 'finish_flow' | 'fail_flow' | 'request_cancel' | 'cancel_flow' | 'run_task'"#),
        // [61] extra field -> 400
        step(61, AUTHED, r#"{"action":"list_flows","extra":1}"#)
            .refused(400, "invalid_request", r#"Unrecognized key: "extra""#),
        // [62] create_flow missing goal -> 400
        step(62, AUTHED, r#"{"action":"create_flow"}"#)
            .refused(400, "invalid_request", r#"goal: Invalid input: expected string, received undefined"#),
        // [63] create_flow blank goal -> 400
        step(63, AUTHED, r#"{"action":"create_flow","goal":"   "}"#)
            .refused(400, "invalid_request", r#"goal: Too small: expected string to have >=1 characters"#),
        // [64] create_flow goal wrong type -> 400
        step(64, AUTHED, r#"{"action":"create_flow","goal":5}"#)
            .refused(400, "invalid_request", r#"goal: Invalid input: expected string, received number"#),
        // [65] create_flow bad status enum -> 400
        step(65, AUTHED, r#"{"action":"create_flow","goal":"g","status":"done"}"#)
            .refused(400, "invalid_request", r#"status: Invalid option: expected one of "queued"|"running"|"waiting"|"blocked""#),
        // [66] set_waiting missing expectedRevision -> 400
        step(66, AUTHED, r#"{"action":"set_waiting","flowId":"<id-1>"}"#)
            .refused(400, "invalid_request", r#"expectedRevision: Invalid input: expected number, received undefined"#),
        // [67] set_waiting negative expectedRevision -> 400
        step(67, AUTHED, r#"{"action":"set_waiting","flowId":"<id-1>","expectedRevision":-1}"#)
            .refused(400, "invalid_request", r#"expectedRevision: Too small: expected number to be >=0"#),
        // [68] set_waiting fractional expectedRevision -> 400
        step(68, AUTHED, r#"{"action":"set_waiting","flowId":"<id-1>","expectedRevision":1.5}"#)
            .refused(400, "invalid_request", r#"expectedRevision: Invalid input: expected int, received number"#),
        // [69] run_task bad runtime -> 400
        step(69, AUTHED, r#"{"action":"run_task","flowId":"<id-1>","runtime":"cli","task":"t"}"#)
            .refused(400, "invalid_request", r#"runtime: Invalid option: expected one of "subagent"|"acp""#),
        // [70] goal is trimmed
        step(70, AUTHED, r#"{"action":"create_flow","goal":"  padded  "}"#)
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"created":true,"flow":{"flowId":"<id-7>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"padded","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [73] 262144-byte body (exactly limit) -> passes size check, 400 schema
        step(73, AUTHED, &list_flows_padded_to(262_144))
            .refused(400, "invalid_request", r#"Unrecognized key: "pad""#),
        // [76] trailing slash path
        step(76, AUTHED, r#"{"action":"find_latest_flow"}"#).path("/plugins/webhooks/test/")
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-7>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"padded","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [77] query string on path
        step(77, AUTHED, r#"{"action":"find_latest_flow"}"#).path("/plugins/webhooks/test?x=1")
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-7>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"padded","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [78] upper-case path
        step(78, AUTHED, r#"{"action":"find_latest_flow"}"#).path("/PLUGINS/WEBHOOKS/TEST")
            .answers(200, r#"{"ok":true,"routeId":"test","result":{"flow":{"flowId":"<id-7>","syncMode":"managed","controllerId":"webhooks/test","revision":0,"status":"queued","notifyPolicy":"done_only","goal":"padded","createdAt":<ts>,"updatedAt":<ts>}}}"#),
        // [79] unknown route path
        step(79, AUTHED, r#"{"action":"list_flows"}"#).path("/plugins/webhooks/no-such-route")
            .rejected(404, "not_found"),
    ]
}
