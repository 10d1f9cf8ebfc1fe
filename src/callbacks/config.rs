//! A route's `callbacks` config: where and how flow events are delivered.
//!
//! ```json5
//! callbacks: {
//!   url: "https://hooks.example.com/openclaw",   // required; from config only
//!   signing: { secrets: ["whsec_…", { source: "env", provider: "default", id: "CB_KEY" }] },
//!   timeoutMs: 15000,          // per attempt
//!   maxAttempts: 8,            // then the event is dead
//!   allowInsecureHttp: false,  // true lets `url` be http://
//!   retryScheduleMs: [..],     // replaces the retry delays (tests, special receivers)
//! }
//! ```
//!
//! Every problem is reported with its dotted path; secrets are described
//! here (a `whsec_` string is checked now, a SecretRef when it is resolved
//! at start) and never echoed.

use std::time::Duration;

use awc::http::Uri;
use jsoncfg::{join, Walker};
use serde_json::Value;

use crate::config::access::parse_signing_keys;
use crate::config::SecretInput;
use crate::signing::SigningKey;

pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub const MAX_TIMEOUT_MS: u64 = 120_000;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const MAX_ATTEMPTS: u64 = 50;
/// Longest callback URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest delay in a configured retry schedule: one day.
pub const MAX_RETRY_DELAY_MS: u64 = 86_400_000;

/// The delays before each retry, in order; the last repeats. Each is
/// jittered when used.
pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
];

const KEYS: [&str; 6] = [
    "url",
    "signing",
    "timeoutMs",
    "maxAttempts",
    "allowInsecureHttp",
    "retryScheduleMs",
];

#[derive(Debug, Clone)]
pub struct CallbackConfig {
    pub url: CallbackUrl,
    pub secrets: Vec<SecretInput<SigningKey>>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_schedule: Vec<Duration>,
}

/// A validated callback URL.
#[derive(Debug, Clone)]
pub struct CallbackUrl {
    pub uri: Uri,
    /// `scheme://host[:port]`: what logs show. The path and query may be a
    /// capability (many receivers put a token there), so they never appear.
    pub origin: String,
}

/// Reads `callbacks` at `path`; `None` when absent or wrong (issues
/// recorded).
pub fn parse(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<CallbackConfig> {
    let obj = w.object(path, v?, &KEYS)?;
    let insecure = w
        .bool(
            &join(path, "allowInsecureHttp"),
            obj.get("allowInsecureHttp"),
        )
        .unwrap_or(false);
    let url_path = join(path, "url");
    let url = w
        .required(&url_path, obj.get("url"))
        .and_then(|u| w.text(&url_path, Some(u)))
        .and_then(|u| parse_url(w, &url_path, &u, insecure));
    let signing_path = join(path, "signing");
    let secrets = w
        .required(&signing_path, obj.get("signing"))
        .and_then(|s| parse_signing(w, &signing_path, s));
    let timeout = w
        .integer(
            &join(path, "timeoutMs"),
            obj.get("timeoutMs"),
            1,
            MAX_TIMEOUT_MS,
        )
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_attempts = w
        .integer(
            &join(path, "maxAttempts"),
            obj.get("maxAttempts"),
            1,
            MAX_ATTEMPTS,
        )
        .map_or(DEFAULT_MAX_ATTEMPTS, |n| n as u32);
    let schedule = parse_schedule(
        w,
        &join(path, "retryScheduleMs"),
        obj.get("retryScheduleMs"),
    );
    Some(CallbackConfig {
        url: url?,
        secrets: secrets?,
        timeout: Duration::from_millis(timeout),
        max_attempts,
        retry_schedule: schedule.unwrap_or_else(|| RETRY_SCHEDULE.to_vec()),
    })
}

fn parse_url(w: &mut Walker, path: &str, text: &str, insecure: bool) -> Option<CallbackUrl> {
    if text.len() > MAX_URL_BYTES {
        w.issue(path, format!("must be at most {MAX_URL_BYTES} bytes"));
        return None;
    }
    let Ok(uri) = text.parse::<Uri>() else {
        w.issue(path, "is not a valid absolute URL");
        return None;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        w.issue(path, "must be an absolute http:// or https:// URL");
        return None;
    };
    if authority.as_str().contains('@') {
        w.issue(path, "must not carry user credentials");
        return None;
    }
    if authority.host().is_empty() {
        w.issue(path, "must name a host");
        return None;
    }
    match scheme {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            w.issue(
                path,
                "must use https:// (set allowInsecureHttp: true to allow http://)",
            );
            return None;
        }
        _ => {
            w.issue(path, "must be an http:// or https:// URL");
            return None;
        }
    }
    let origin = format!("{scheme}://{authority}");
    Some(CallbackUrl { uri, origin })
}

fn parse_signing(w: &mut Walker, path: &str, v: &Value) -> Option<Vec<SecretInput<SigningKey>>> {
    let obj = w.object(path, v, &["scheme", "secrets"])?;
    let scheme_path = join(path, "scheme");
    w.choice(&scheme_path, obj.get("scheme"), &["standard-webhooks"]);
    parse_signing_keys(w, &join(path, "secrets"), obj.get("secrets"))
}

fn parse_schedule(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<Vec<Duration>> {
    let items = match v? {
        Value::Array(items) if (1..=20).contains(&items.len()) => items,
        _ => {
            w.issue(path, "expected an array of 1 to 20 delays in milliseconds");
            return None;
        }
    };
    let delays: Vec<Duration> = items
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            w.integer(&join(path, &i.to_string()), Some(d), 0, MAX_RETRY_DELAY_MS)
                .map(Duration::from_millis)
        })
        .collect();
    (delays.len() == items.len()).then_some(delays)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn issues(v: Value) -> Vec<String> {
        let mut w = Walker::new();
        let parsed = parse(&mut w, "routes.a.callbacks", Some(&v));
        assert_eq!(parsed.is_some(), w.issues.is_empty(), "{:?}", w.issues);
        w.issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let mut w = Walker::new();
        let v = json!({"url": "https://example.com/hook?t=x", "signing": {"secrets": [KEY]}});
        let c = parse(&mut w, "c", Some(&v)).unwrap();
        assert!(w.issues.is_empty());
        assert_eq!(c.url.origin, "https://example.com");
        assert_eq!(c.timeout, Duration::from_secs(15));
        assert_eq!(c.max_attempts, 8);
        assert_eq!(c.retry_schedule, RETRY_SCHEDULE);
        assert!(matches!(c.secrets[..], [SecretInput::Plain(_)]));
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_path() {
        let got = issues(json!({
            "url": "http://example.com/hook",
            "signing": {"secrets": ["whsec_c2hvcnQ=", "plain", {"source": "vault", "id": "x"}, 7]},
            "timeoutMs": 0,
            "maxAttempts": 51,
            "retryScheduleMs": [10, -1],
            "extra": true,
        }));
        assert_eq!(
            got,
            [
                "routes.a.callbacks.extra: unknown key",
                "routes.a.callbacks.url: must use https:// (set allowInsecureHttp: true to allow http://)",
                "routes.a.callbacks.signing.secrets.0: decodes to 5 bytes; at least 24 are required",
                "routes.a.callbacks.signing.secrets.1: expected \"whsec_\" followed by base64",
                "routes.a.callbacks.signing.secrets.2.source: expected one of env, file, exec",
                "routes.a.callbacks.signing.secrets.2.provider: is required",
                "routes.a.callbacks.signing.secrets.3: expected a string or a SecretRef object {source, provider, id}, got number",
                "routes.a.callbacks.timeoutMs: expected a whole number from 1 to 120000",
                "routes.a.callbacks.maxAttempts: expected a whole number from 1 to 50",
                "routes.a.callbacks.retryScheduleMs.1: expected a whole number from 0 to 86400000",
            ]
        );
    }

    #[test]
    fn urls_must_be_absolute_https_without_credentials() {
        let with = |url: &str, insecure: bool| {
            issues(
                json!({"url": url, "allowInsecureHttp": insecure, "signing": {"secrets": [KEY]}}),
            )
        };
        assert!(with("http://127.0.0.1:9/x", true).is_empty());
        assert!(with("https://h.example/x", false).is_empty());
        for (url, message) in [
            ("/relative", "must be an absolute http:// or https:// URL"),
            ("ftp://h.example/x", "must be an http:// or https:// URL"),
            (
                "https://user:pw@h.example/x",
                "must not carry user credentials",
            ),
            ("not a url", "is not a valid absolute URL"),
        ] {
            assert_eq!(
                with(url, true),
                [format!("routes.a.callbacks.url: {message}")],
                "{url}"
            );
        }
        let long = format!("https://h.example/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(
            with(&long, false),
            ["routes.a.callbacks.url: must be at most 2048 bytes"]
        );
    }

    #[test]
    fn signing_needs_1_to_4_secrets_and_secrets_never_appear_in_issues() {
        let secret = "whsec_c2VjcmV0LXNob3J0";
        let got = issues(json!({"url": "https://h.example", "signing": {"secrets": [secret]}}));
        assert!(!got.join(" ").contains("c2VjcmV0"), "{got:?}");
        assert_eq!(
            issues(json!({"url": "https://h.example", "signing": {"secrets": []}})),
            ["routes.a.callbacks.signing.secrets: expected 1 to 4 entries, got 0"]
        );
        assert_eq!(
            issues(json!({"url": "https://h.example"})),
            ["routes.a.callbacks.signing: is required"]
        );
    }
}
