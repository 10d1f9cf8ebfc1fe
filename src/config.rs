//! The plugin's `config`: routes and limits, parsed into domain types.
//!
//! Every problem is collected (with its path relative to the plugin's
//! `config` object) before anything is refused, so an operator sees all of
//! them at once. Parsing has no side effects: secrets are only described
//! here, and resolved when the plugin starts.

use std::time::Duration;

use jsoncfg::{join, Issue, Walker};
use serde_json::Value;

use crate::access::Access;
use crate::auth::Secret;
use crate::callbacks::{self, CallbackConfig};
use crate::client_ip::IpNet;
use crate::idempotency::{parse_policy, Policy};
use crate::paths::{request_path_char, resolve_path};
use crate::signing::SigningKey;

pub(crate) mod access;

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
    /// Dot segments resolved and normalised (see [`resolve_path`]); requests
    /// match it ASCII case-insensitively.
    pub path: String,
    /// The TaskFlow owner session the route acts as.
    pub session_key: String,
    /// Bearer secrets, 1 to 4, any of which matches; empty when the route
    /// is authenticated by its signature only.
    pub secrets: Vec<SecretInput>,
    /// Standard Webhooks signing; with `secrets` as well, both are required.
    pub signing: Option<SigningConfig>,
    /// `allowFrom` (the route's, else the plugin-wide one) and `actions`.
    pub access: Access,
    /// Default `controllerId` for `create_flow`.
    pub controller_id: String,
    pub description: Option<String>,
    pub limits: Limits,
    pub idempotency: Policy,
    /// Where the route's flow events are delivered, if anywhere.
    pub callbacks: Option<CallbackConfig>,
}

/// Where a route's secret comes from: a bearer [`Secret`] or a signing key.
#[derive(Debug, Clone)]
pub enum SecretInput<T = Secret> {
    /// Taken literally: no `${VAR}` expansion.
    Plain(T),
    /// Resolved once at startup through the Gateway's secret providers.
    Ref(SecretRef),
}

/// A secret held by one of the Gateway's providers.
#[derive(Debug, Clone)]
pub struct SecretRef {
    pub source: String,
    pub provider: String,
    pub id: String,
}

/// A route's `signing` block (the Standard Webhooks scheme).
#[derive(Debug)]
pub struct SigningConfig {
    /// 1 to 4 live keys, any of which may have signed a request.
    pub secrets: Vec<SecretInput<SigningKey>>,
    /// How far a request's timestamp may be from now, either side.
    pub tolerance_secs: u64,
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
    /// Clients the rate limiter tracks per route. A new client takes the
    /// place of the oldest one that never authenticated; only when every
    /// tracked client has authenticated do new ones share one overflow bucket.
    pub max_tracked_keys: usize,
    /// IPv6 clients are keyed by their network of this many leading bits.
    pub ipv6_prefix_bits: u8,
    /// Requests waiting in `get_flow` per route; one more gets 429 `too_many_waiters`.
    pub max_waiters: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_limit_window: Duration::from_millis(60_000),
            rate_limit_max_requests: 120,
            max_in_flight: 8,
            max_body_bytes: 262_144,
            body_timeout: Duration::from_millis(15_000),
            max_tracked_keys: 16_384,
            ipv6_prefix_bits: 64,
            max_waiters: 1024,
        }
    }
}

const LIMIT_KEYS: [&str; 8] = [
    "rateLimitWindowMs",
    "rateLimitMaxRequests",
    "maxInFlight",
    "maxBodyBytes",
    "bodyTimeoutMs",
    "maxTrackedKeys",
    "ipv6PrefixBits",
    "maxWaiters",
];

const ROUTE_KEYS: [&str; 12] = [
    "enabled",
    "path",
    "sessionKey",
    "secret",
    "signing",
    "allowFrom",
    "actions",
    "controllerId",
    "description",
    "limits",
    "idempotency",
    "callbacks",
];

/// What routes inherit from the plugin-wide config, field by field.
struct Defaults {
    limits: Limits,
    allow_from: Option<Vec<IpNet>>,
    idempotency: Policy,
}

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
    let root = w.object(
        "",
        value,
        &["routes", "limits", "workers", "allowFrom", "idempotency"],
    )?;
    let defaults = Defaults {
        limits: parse_limits(w, "limits", root.get("limits"), Limits::default()),
        allow_from: access::parse_allow_from(w, "allowFrom", root.get("allowFrom")),
        idempotency: parse_policy(w, "idempotency", root.get("idempotency"), Policy::default()),
    };
    let workers = w
        .integer("workers", root.get("workers"), 1, 64)
        .map(|n| n as usize)
        .unwrap_or_else(default_workers);
    let mut routes = Vec::new();
    if let Some(v) = root.get("routes") {
        if let Some(map) = w.map("routes", v) {
            for (id, route) in map {
                if let Some(r) = parse_route(w, id, route, &defaults) {
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

fn parse_route(w: &mut Walker, id: &str, v: &Value, defaults: &Defaults) -> Option<RouteConfig> {
    let path = join("routes", id);
    if !valid_route_id(id) {
        w.issue(&path, "route id must match [A-Za-z0-9_-]{1,64}");
    }
    let obj = w.object(&path, v, &ROUTE_KEYS)?;
    let enabled = w
        .bool(&join(&path, "enabled"), obj.get("enabled"))
        .unwrap_or(true);
    let path_path = join(&path, "path");
    let route_path = match w.text(&path_path, obj.get("path")) {
        Some(p) => route_path(w, &path_path, &p),
        None => Some(format!("/plugins/webhooks/{id}")),
    };
    let session_path = join(&path, "sessionKey");
    let session_key = w.required(&session_path, obj.get("sessionKey"));
    let session_key = w.text(&session_path, session_key);
    let (secrets, signing) = access::parse_credentials(w, &path, obj);
    let access = access::parse_access(w, &path, obj, defaults.allow_from.as_deref());
    let controller_id = w
        .text(&join(&path, "controllerId"), obj.get("controllerId"))
        .unwrap_or_else(|| format!("webhooks/{id}"));
    let description = w.text(&join(&path, "description"), obj.get("description"));
    let limits = parse_limits(
        w,
        &join(&path, "limits"),
        obj.get("limits"),
        defaults.limits,
    );
    let idempotency = parse_policy(
        w,
        &join(&path, "idempotency"),
        obj.get("idempotency"),
        defaults.idempotency,
    );
    let callbacks = callbacks::config::parse(w, &join(&path, "callbacks"), obj.get("callbacks"));
    Some(RouteConfig {
        id: id.to_owned(),
        enabled,
        path: route_path?,
        session_key: session_key?,
        secrets,
        signing,
        access,
        controller_id,
        description,
        limits,
        idempotency,
        callbacks,
    })
}

fn parse_secret(w: &mut Walker, path: &str, v: &Value) -> Option<SecretInput> {
    parse_secret_with(w, path, v, |w, path, s| {
        w.text(path, Some(s)).map(Secret::new)
    })
}

/// A string (read by `plain`) or a SecretRef object.
fn parse_secret_with<T>(
    w: &mut Walker,
    path: &str,
    v: &Value,
    plain: impl FnOnce(&mut Walker, &str, &Value) -> Option<T>,
) -> Option<SecretInput<T>> {
    if v.is_string() {
        return plain(w, path, v).map(SecretInput::Plain);
    }
    if !v.is_object() {
        w.issue(
            path,
            format!(
                "expected a string or a SecretRef object {{source, provider, id}}, got {}",
                jsoncfg::type_name(v)
            ),
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
    Some(SecretInput::Ref(SecretRef {
        source: source?.to_owned(),
        provider: provider?,
        id: id?,
    }))
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
        // Below /32 one key would stand for a whole provider's customers.
        ipv6_prefix_bits: int("ipv6PrefixBits", 32, 128).map_or(base.ipv6_prefix_bits, |n| n as u8),
        max_waiters: int("maxWaiters", 1, 1_000_000).map_or(base.max_waiters, |n| n as usize),
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

/// A configured path as the key requests are matched by, or an issue when
/// no request could reach it.
fn route_path(w: &mut Walker, at: &str, raw: &str) -> Option<String> {
    match raw.chars().find(|c| !request_path_char(*c)) {
        None => Some(resolve_path(raw)),
        Some(c @ ('?' | '#')) => {
            w.issue(
                at,
                format!("no request can reach it: a request's path ends at {c:?}"),
            );
            None
        }
        Some(c) => {
            w.issue(
                at,
                format!(
                    "no request can reach it: a request's path cannot carry {c:?} (write it percent-encoded, as clients send it)"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
