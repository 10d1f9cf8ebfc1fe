//! Renders every response: the JSON envelope and the headers that go on all
//! of them. Only this module builds `HttpResponse`s.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::actions::{Answer, Reply};
use crate::error::{ApiError, Code};

/// Marks a reply that an earlier request with the same idempotency key got.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    route_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<Vec<IssueView<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct IssueView<'a> {
    path: &'a str,
    message: &'a str,
}

/// The response to a request.
pub fn respond(route_id: Option<&str>, answer: &Answer) -> HttpResponse {
    match answer {
        Answer::Result(Ok(reply)) => {
            let (status, body) = render(route_id, Ok(reply));
            build(status, body)
        }
        Answer::Result(Err(err)) => failure(route_id, err),
        Answer::Stored { reply, replayed } => {
            let mut res = build(reply.status, reply.body.to_vec());
            if *replayed {
                res.headers_mut()
                    .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            }
            res
        }
    }
}

/// A rejection, or an action outcome with an error code.
pub fn failure(route_id: Option<&str>, err: &ApiError) -> HttpResponse {
    let (status, body) = render_error(route_id, err);
    let mut res = build(status, body);
    let headers = res.headers_mut();
    match err.code {
        Code::MethodNotAllowed => {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        Code::Unauthorized => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Code::UnsupportedMediaType => {
            // No request body is decoded: only `identity` is accepted.
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        _ => {}
    }
    if let Some(wait) = err.retry_after {
        // Whole seconds, rounded up, never 0.
        let secs = wait.as_millis().div_ceil(1000).max(1);
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
    }
    res
}

/// Marks a response as the last on its connection (`Connection: close`).
pub fn close_connection(res: &mut HttpResponse) {
    res.head_mut().set_connection_type(ConnectionType::Close);
}

/// The status and JSON body of an action's answer: `200
/// {"ok":true,"routeId":..,"result":..}`; for a cancel that waits on
/// children `202 {"ok":true,..,"code":"cancel_pending",..}`; for an error
/// its status and `{"ok":false,..,"code","error",..}`. Pure, so a keyed
/// write's reply can be rendered for storage before it is sent.
pub fn render(route_id: Option<&str>, result: Result<&Reply, &ApiError>) -> (u16, Vec<u8>) {
    match result {
        Ok(reply) => {
            let (status, code) = match reply {
                Reply::Done(_) => (200, None),
                Reply::CancelPending(_) => (202, Some("cancel_pending")),
            };
            let body = to_json(&Envelope {
                ok: true,
                route_id,
                code,
                error: None,
                issues: None,
                result: Some(reply.result()),
            });
            (status, body)
        }
        Err(err) => render_error(route_id, err),
    }
}

fn render_error(route_id: Option<&str>, err: &ApiError) -> (u16, Vec<u8>) {
    let issues = (err.code == Code::InvalidRequest).then(|| {
        err.issues
            .iter()
            .map(|i| IssueView {
                path: &i.path,
                message: &i.message,
            })
            .collect()
    });
    let body = to_json(&Envelope {
        ok: false,
        route_id,
        code: Some(err.code.as_str()),
        error: Some(&err.message),
        issues,
        result: err.result.as_deref(),
    });
    (err.code.status(), body)
}

fn to_json(envelope: &Envelope<'_>) -> Vec<u8> {
    // Sized for the result up front: a large list is copied once, not
    // re-copied at every doubling of the buffer.
    let hint = envelope.result.map_or(0, |r| r.get().len()) + 256;
    let mut body = Vec::with_capacity(hint);
    if serde_json::to_writer(&mut body, envelope).is_err() {
        body = br#"{"ok":false,"code":"internal_error","error":"internal error"}"#.to_vec();
    }
    body
}

fn build(status: u16, body: Vec<u8>) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .body(body)
}
