//! The body guard: the media type and coding a body must have, early
//! refusal on `Content-Length`, a streamed size cap, one timer for the
//! whole read, then UTF-8 and JSON decoding.

use std::future::poll_fn;
use std::pin::Pin;

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web;
use futures_core::Stream;
use serde_json::Value;

use crate::config::Limits;
use crate::error::{ApiError, Code};

/// Refuses a body the plugin cannot read as JSON text: its first
/// `Content-Type` must name JSON ([`is_json`]) and it must carry no
/// `Content-Encoding` but `identity` (a compressed body is not decoded).
///
/// # Errors
///
/// `unsupported_media_type`.
pub fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if !is_json(headers) {
        return Err(ApiError::new(Code::UnsupportedMediaType));
    }
    if !is_identity_encoded(headers) {
        return Err(
            ApiError::new(Code::UnsupportedMediaType).with_message("Unsupported Content-Encoding")
        );
    }
    Ok(())
}

/// Whether every coding that `Content-Encoding` lists (on any number of
/// lines) is `identity`; no header is identity too.
pub fn is_identity_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).all(|line| {
        line.to_str().is_ok_and(|codings| {
            codings
                .split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"))
        })
    })
}

/// Whether the first `Content-Type` names JSON (`application/json` or any
/// `+json` type; parameters such as `charset` are ignored).
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

/// The body's declared length, when `Content-Length` gives one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Refuses a body before any of it is read when its declared length is
/// over the route's limit.
///
/// # Errors
///
/// `payload_too_large`.
pub fn check_declared_length(headers: &HeaderMap, limits: &Limits) -> Result<(), ApiError> {
    if declared_length(headers).is_some_and(|n| n > limits.max_body_bytes) {
        return Err(ApiError::new(Code::PayloadTooLarge));
    }
    Ok(())
}

/// Reads the whole body within the route's size and time limits (its
/// declared length was checked before, by [`check_declared_length`]).
///
/// # Errors
///
/// `payload_too_large` when the received size exceeds the limit,
/// `request_timeout` when the body does not arrive in time, and
/// `invalid_body` when the client goes away mid-body.
pub async fn read(
    headers: &HeaderMap,
    payload: &mut web::Payload,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let max = limits.max_body_bytes;
    let declared = declared_length(headers);
    let capacity = declared.unwrap_or(0).min(max) as usize;
    let read_all = async {
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *payload).poll_next(cx)).await {
            let chunk = chunk
                .map_err(|_| ApiError::new(Code::InvalidBody).with_message("Connection closed"))?;
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(ApiError::new(Code::PayloadTooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    actix_web::rt::time::timeout(limits.body_timeout, read_all)
        .await
        .map_err(|_| ApiError::new(Code::RequestTimeout))?
}

/// Decodes a body as UTF-8 JSON. Empty, whitespace-only, malformed or too
/// deeply nested bodies are `invalid_body`; any JSON value is accepted here
/// (the action schema judges it next).
///
/// # Errors
///
/// `invalid_body`, with a message saying which rule failed.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(Code::InvalidBody).with_message("request body is not valid UTF-8")
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::new(Code::InvalidBody));
    }
    serde_json::from_str(text).map_err(|_| ApiError::new(Code::InvalidBody))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_headers;

    #[test]
    fn json_media_types_are_recognised() {
        let check = |v: &str| is_json(&test_headers(&[("content-type", v)]));
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/vnd.api+json"));
        assert!(!check("text/plain"));
        assert!(!check("application/jsonp"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn only_identity_content_encoding_is_readable() {
        let check = |pairs: &[(&str, &str)]| is_identity_encoded(&test_headers(pairs));
        assert!(check(&[]));
        assert!(check(&[("content-encoding", "identity")]));
        assert!(check(&[("content-encoding", "Identity, identity")]));
        assert!(check(&[("content-encoding", "")]));
        for coded in ["gzip", "br", "identity, gzip", "x-gzip", "deflate"] {
            assert!(!check(&[("content-encoding", coded)]), "{coded}");
        }
        assert!(!check(&[
            ("content-encoding", "identity"),
            ("content-encoding", "gzip")
        ]));
        let refused = check_media_type(&test_headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]));
        assert_eq!(refused.unwrap_err().code, Code::UnsupportedMediaType);
    }

    #[test]
    fn bodies_decode_or_fail_as_invalid_body() {
        assert!(parse_json(br#" {"a":1} "#).is_ok());
        assert!(parse_json(b"[]").is_ok());
        for bad in [&b""[..], b"   ", b"{", b"\xff\xfe", b"nul"] {
            assert_eq!(parse_json(bad).unwrap_err().code, Code::InvalidBody);
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_json(deep.as_bytes()).unwrap_err().code,
            Code::InvalidBody
        );
    }
}
