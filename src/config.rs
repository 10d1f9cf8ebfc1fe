//! The plugin's `config`: routes and limits, parsed into domain types.
//!
//! Every problem is collected (with its path relative to the plugin's
//! `config` object) before anything is refused, so an operator sees all of
//! them at once. Parsing has no side effects: secrets are only described
//! here, and resolved when the plugin starts.

use std::time::Duration;

use jsoncfg::{join, Issue, Walker};
use serde_json::Value;

use crate::auth::Secret;
use crate::callbacks::{self, CallbackConfig};
use crate::idempotency::{parse_policy, Policy};
use crate::paths::normalize_path;

/// Plain-string secrets shorter than this load with a warning.
pub const WEAK_SECRET_CHARS: usize = 16;

#[derive(Debug)]
pub struct PluginConfig {
    /// Enabled and disabled routes, in config order.
    pub routes: Vec<RouteConfig>,
    /// actix worker threads.
    pub workers: usize,
}

#[derive(Debug)]
pub struct RouteConfig {
    /// `[A-Za-z0-9_-]{1,64}`.
    pub id: String,
    pub enabled: bool,
    /// Normalised (see [`normalize_path`]).
    pub path: String,
    /// The TaskFlow owner session the route acts as.
    pub session_key: String,
    pub secret: SecretInput,
    /// Default `controllerId` for `create_flow`.
    pub controller_id: String,
    pub description: Option<String>,
    pub limits: Limits,
    pub idempotency: Policy,
    /// Where the route's flow events are delivered, if anywhere.
    pub callbacks: Option<CallbackConfig>,
}

/// Where a route's shared secret comes from.
#[derive(Debug)]
pub enum SecretInput {
    /// Taken literally: no `${VAR}` expansion.
    Plain(Secret),
    /// Resolved once at startup through the Gateway's secret providers.
    Ref {
        source: String,
        provider: String,
        id: String,
    },
}

/// Per-route request limits. Each field says what happens when it is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Length of a fixed rate-limit window.
    pub rate_limit_window: Duration,
    /// Requests per client and window; request `max + 1` gets 429 `rate_limited`.
    pub rate_limit_max_requests: u32,
    /// Concurrent requests per client; one more gets 429 `in_flight_limited`.
    pub max_in_flight: u32,
    /// Largest accepted body; one byte more gets 413 `payload_too_large`.
    pub max_body_bytes: u64,
    /// Time allowed to receive the whole body; then 408 `request_timeout`.
    pub body_timeout: Duration,
    /// Clients tracked per route; beyond it new clients share one overflow bucket.
    pub max_tracked_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_limit_window: Duration::from_millis(60_000),
            rate_limit_max_requests: 120,
            max_in_flight: 8,
            max_body_bytes: 262_144,
            body_timeout: Duration::from_millis(15_000),
            max_tracked_keys: 4096,
        }
    }
}

const LIMIT_KEYS: [&str; 6] = [
    "rateLimitWindowMs",
    "rateLimitMaxRequests",
    "maxInFlight",
    "maxBodyBytes",
    "bodyTimeoutMs",
    "maxTrackedKeys",
];

const ROUTE_KEYS: [&str; 9] = [
    "enabled",
    "path",
    "sessionKey",
    "secret",
    "controllerId",
    "description",
    "limits",
    "idempotency",
    "callbacks",
];

/// Parses the plugin's config from its JSON text.
///
/// # Errors
///
/// Every problem found, each with its dotted path.
pub fn parse(json: &str) -> Result<PluginConfig, Vec<Issue>> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        vec![Issue {
            path: String::new(),
            message: format!("config is not valid JSON: {e}"),
        }]
    })?;
    let mut w = Walker::new();
    let config = parse_value(&mut w, &value);
    match config {
        Some(c) if w.is_clean() => Ok(c),
        _ => Err(w.issues),
    }
}

fn parse_value(w: &mut Walker, value: &Value) -> Option<PluginConfig> {
    let root = w.object("", value, &["routes", "limits", "workers", "idempotency"])?;
    let defaults = parse_limits(w, "limits", root.get("limits"), Limits::default());
    let idempotency = parse_policy(w, "idempotency", root.get("idempotency"), Policy::default());
    let workers = w
        .integer("workers", root.get("workers"), 1, 64)
        .map(|n| n as usize)
        .unwrap_or_else(default_workers);
    let mut routes = Vec::new();
    if let Some(v) = root.get("routes") {
        if let Some(map) = w.map("routes", v) {
            for (id, route) in map {
                if let Some(r) = parse_route(w, id, route, defaults, idempotency) {
                    routes.push(r);
                }
            }
        }
    }
    check_duplicate_paths(w, &routes);
    Some(PluginConfig { routes, workers })
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_route(
    w: &mut Walker,
    id: &str,
    v: &Value,
    defaults: Limits,
    idempotency: Policy,
) -> Option<RouteConfig> {
    let path = join("routes", id);
    if !valid_route_id(id) {
        w.issue(&path, "route id must match [A-Za-z0-9_-]{1,64}");
    }
    let obj = w.object(&path, v, &ROUTE_KEYS)?;
    let enabled = w
        .bool(&join(&path, "enabled"), obj.get("enabled"))
        .unwrap_or(true);
    let route_path = w
        .text(&join(&path, "path"), obj.get("path"))
        .map(|p| normalize_path(&p))
        .unwrap_or_else(|| format!("/plugins/webhooks/{id}"));
    let session_path = join(&path, "sessionKey");
    let session_key = w.required(&session_path, obj.get("sessionKey"));
    let session_key = w.text(&session_path, session_key);
    let secret_path = join(&path, "secret");
    let secret = w.required(&secret_path, obj.get("secret"));
    let secret = secret.and_then(|s| parse_secret(w, &secret_path, s));
    let controller_id = w
        .text(&join(&path, "controllerId"), obj.get("controllerId"))
        .unwrap_or_else(|| format!("webhooks/{id}"));
    let description = w.text(&join(&path, "description"), obj.get("description"));
    let limits = parse_limits(w, &join(&path, "limits"), obj.get("limits"), defaults);
    let idempotency = parse_policy(
        w,
        &join(&path, "idempotency"),
        obj.get("idempotency"),
        idempotency,
    );
    let callbacks = callbacks::config::parse(w, &join(&path, "callbacks"), obj.get("callbacks"));
    Some(RouteConfig {
        id: id.to_owned(),
        enabled,
        path: route_path,
        session_key: session_key?,
        secret: secret?,
        controller_id,
        description,
        limits,
        idempotency,
        callbacks,
    })
}

fn parse_secret(w: &mut Walker, path: &str, v: &Value) -> Option<SecretInput> {
    if v.is_string() {
        return w
            .text(path, Some(v))
            .map(|s| SecretInput::Plain(Secret::new(s)));
    }
    if !v.is_object() {
        w.issue(
            path,
            "expected a string or a SecretRef object {source, provider, id}",
        );
        return None;
    }
    let obj = w.object(path, v, &["source", "provider", "id"])?;
    let source_path = join(path, "source");
    let source = w.required(&source_path, obj.get("source"));
    let source = w.choice(&source_path, source, &["env", "file", "exec"]);
    let provider_path = join(path, "provider");
    let provider = w.required(&provider_path, obj.get("provider"));
    let provider = w.text(&provider_path, provider);
    let id_path = join(path, "id");
    let id = w.required(&id_path, obj.get("id"));
    let id = w.text(&id_path, id);
    Some(SecretInput::Ref {
        source: source?.to_owned(),
        provider: provider?,
        id: id?,
    })
}

fn parse_limits(w: &mut Walker, path: &str, v: Option<&Value>, base: Limits) -> Limits {
    let Some(obj) = v.and_then(|v| w.object(path, v, &LIMIT_KEYS)) else {
        return base;
    };
    let mut int =
        |key: &str, min: u64, max: u64| w.integer(&join(path, key), obj.get(key), min, max);
    let ms = Duration::from_millis;
    Limits {
        rate_limit_window: int("rateLimitWindowMs", 1, 86_400_000)
            .map_or(base.rate_limit_window, ms),
        rate_limit_max_requests: int("rateLimitMaxRequests", 1, 1_000_000)
            .map_or(base.rate_limit_max_requests, |n| n as u32),
        max_in_flight: int("maxInFlight", 1, 100_000).map_or(base.max_in_flight, |n| n as u32),
        max_body_bytes: int("maxBodyBytes", 1, 64 << 20).unwrap_or(base.max_body_bytes),
        body_timeout: int("bodyTimeoutMs", 1, 600_000).map_or(base.body_timeout, ms),
        max_tracked_keys: int("maxTrackedKeys", 1, 1_000_000)
            .map_or(base.max_tracked_keys, |n| n as usize),
    }
}

fn check_duplicate_paths(w: &mut Walker, routes: &[RouteConfig]) {
    let enabled: Vec<&RouteConfig> = routes.iter().filter(|r| r.enabled).collect();
    for (i, route) in enabled.iter().enumerate() {
        // Paths that differ only in ASCII case reach the same route key.
        let same = enabled[..i]
            .iter()
            .find(|r| r.path.eq_ignore_ascii_case(&route.path));
        if let Some(first) = same {
            w.issue(
                &join(&join("routes", &route.id), "path"),
                format!("conflicts with routes.{}.path ({})", first.id, route.path),
            );
        }
    }
}

/// Route ids are spliced into default paths and controller ids, so they are
/// restricted to a safe alphabet.
pub fn valid_route_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(json: &str) -> Vec<String> {
        match parse(json) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_route_gets_the_documented_defaults() {
        let c = parse(r#"{"routes":{"zapier":{"sessionKey":"agent:main:main","secret":"shared-secret-0123456"}}}"#)
            .unwrap();
        let r = &c.routes[0];
        assert_eq!(r.path, "/plugins/webhooks/zapier");
        assert_eq!(r.controller_id, "webhooks/zapier");
        assert!(r.enabled);
        assert_eq!(r.limits, Limits::default());
    }

    #[test]
    fn paths_differing_only_in_case_conflict() {
        let got = issues(
            r#"{"routes":{
                "first":{"path":"/plugins/webhooks/shared","sessionKey":"s","secret":"x"},
                "second":{"path":"/Plugins/Webhooks/Shared","sessionKey":"s","secret":"y"}}}"#,
        );
        assert_eq!(
            got,
            ["routes.second.path: conflicts with routes.first.path (/Plugins/Webhooks/Shared)"]
        );
    }

    #[test]
    fn route_limits_override_plugin_limits_field_by_field() {
        let c = parse(
            r#"{"limits":{"maxInFlight":2,"rateLimitMaxRequests":5},
                "routes":{"a":{"sessionKey":"s","secret":"x","limits":{"rateLimitMaxRequests":9}}}}"#,
        )
        .unwrap();
        let l = c.routes[0].limits;
        assert_eq!(l.max_in_flight, 2);
        assert_eq!(l.rate_limit_max_requests, 9);
        assert_eq!(l.max_body_bytes, 262_144);
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        let got = issues(
            r#"{"routs":{},"routes":{
                "bad id":{"sessionKey":"s","secret":"x"},
                "b":{"secret":{"source":"vault","provider":"p","id":"i"},"extra":1},
                "c":{"sessionKey":"s","secret":"x","limits":{"maxInFlight":0}}}}"#,
        );
        assert_eq!(
            got,
            [
                "routs: unknown key",
                "routes.bad id: route id must match [A-Za-z0-9_-]{1,64}",
                "routes.b.extra: unknown key",
                "routes.b.sessionKey: is required",
                "routes.b.secret.source: expected one of env, file, exec",
                "routes.c.limits.maxInFlight: expected a whole number from 1 to 100000",
            ]
        );
    }

    #[test]
    fn duplicate_normalised_paths_name_both_routes() {
        let got = issues(
            r#"{"routes":{
                "first":{"path":"/plugins/webhooks/shared","sessionKey":"s","secret":"x"},
                "second":{"path":"/plugins/webhooks/shared/","sessionKey":"s","secret":"y"}}}"#,
        );
        assert_eq!(
            got,
            ["routes.second.path: conflicts with routes.first.path (/plugins/webhooks/shared)"]
        );
    }

    #[test]
    fn disabled_routes_do_not_reserve_paths() {
        let c = parse(
            r#"{"routes":{
                "first":{"enabled":false,"path":"/x","sessionKey":"s","secret":"x"},
                "second":{"path":"/x","sessionKey":"s","secret":"y"}}}"#,
        );
        assert!(c.is_ok());
    }
}
