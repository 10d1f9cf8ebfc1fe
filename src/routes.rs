//! Turns the parsed config and the Gateway runtime into live routes:
//! secrets resolved once, sessions bound, limits built. Runs once at start,
//! before the server exists, so every worker shares the same limiter state.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::runtime::{BoundTaskFlowBox, RuntimeBox};

use crate::auth::Secret;
use crate::client_ip::{IpNet, ProxyPolicy};
use crate::config::{Limits, PluginConfig, RouteConfig, SecretInput, WEAK_SECRET_CHARS};
use crate::limits::{InFlightLimiter, RateLimiter};

/// One serving route and its shared state.
pub struct Route {
    pub id: String,
    pub path: String,
    pub session_key: String,
    pub controller_id: String,
    pub secret: Secret,
    pub limits: Limits,
    pub rate: RateLimiter,
    pub in_flight: Arc<InFlightLimiter>,
    /// The TaskFlow runtime bound to `session_key`.
    pub flows: Arc<BoundTaskFlowBox>,
}

/// Everything the request handler reads, built once.
pub struct AppState {
    /// Normalised path to route.
    pub routes: HashMap<String, Arc<Route>>,
    pub proxy: ProxyPolicy,
    /// How long in-flight requests may run once a stop begins.
    pub shutdown_grace: std::time::Duration,
}

/// Builds the routes. A route whose SecretRef cannot be resolved is skipped
/// with a warning naming it and the reason; the others serve.
///
/// # Errors
///
/// A message when the Gateway refuses to bind a route's session.
pub fn build(runtime: &RuntimeBox, config: PluginConfig) -> Result<AppState, String> {
    let settings = runtime.settings();
    let mut trusted = Vec::new();
    for entry in settings.trusted_proxies.iter() {
        match IpNet::parse(entry) {
            Some(net) => trusted.push(net),
            None => {
                log::warn!(target: "webhooks", "ignoring trusted proxy {entry:?}: not an IP address or CIDR block")
            }
        }
    }
    let proxy = ProxyPolicy {
        trusted,
        allow_real_ip_fallback: settings.allow_real_ip_fallback,
    };
    let mut routes = HashMap::new();
    for route in config.routes.into_iter().filter(|r| r.enabled) {
        let weak = is_weak(&route.secret);
        let secret = match resolve_secret(runtime, route.secret) {
            Ok(secret) => secret,
            Err(reason) => {
                log::warn!(target: "webhooks", "skipping route {}: {reason}", route.id);
                continue;
            }
        };
        if weak {
            log::warn!(
                target: "webhooks",
                "route {} uses a {}; use a longer one or a SecretRef",
                route.id,
                weak_secret()
            );
        }
        let flows = match runtime.bind_session(RStr::from_str(&route.session_key)) {
            RResult::ROk(flows) => flows,
            RResult::RErr(e) => {
                return Err(format!(
                    "route {}: cannot bind session: {}",
                    route.id, e.message
                ))
            }
        };
        log::info!(
            target: "webhooks",
            "registered route {} on {} for session {}",
            route.id, route.path, route.session_key
        );
        let limits = route.limits;
        let live = Route {
            rate: RateLimiter::new(
                limits.rate_limit_window,
                limits.rate_limit_max_requests,
                limits.max_tracked_keys,
            ),
            in_flight: InFlightLimiter::new(limits.max_in_flight, limits.max_tracked_keys),
            flows: Arc::new(flows),
            id: route.id,
            path: route.path.clone(),
            session_key: route.session_key,
            controller_id: route.controller_id,
            secret,
            limits,
        };
        routes.insert(route.path, Arc::new(live));
    }
    if routes.is_empty() {
        log::warn!(target: "webhooks", "no webhook routes are serving");
    }
    Ok(AppState {
        routes,
        proxy,
        shutdown_grace: std::time::Duration::from_millis(settings.shutdown_grace_ms),
    })
}

/// One line per configured route saying what [`build`] does with it: serve
/// it (with any warning), skip it (and why) or leave it disabled. Secrets
/// are resolved through `runtime` exactly as `build` resolves them, and
/// dropped; no session is bound and nothing is logged.
pub fn check(runtime: &RuntimeBox, config: PluginConfig) -> Vec<String> {
    config
        .routes
        .into_iter()
        .map(|route| {
            let serves = describe(&route);
            if !route.enabled {
                return serves;
            }
            let weak = is_weak(&route.secret);
            match resolve_secret(runtime, route.secret) {
                Err(reason) => format!("route {}: skipped: {reason}", route.id),
                Ok(_) if weak => format!("{serves} (warning: {})", weak_secret()),
                Ok(_) => serves,
            }
        })
        .collect()
}

/// A route as configured, in one line: its path, its session and whether
/// it is disabled.
pub fn describe(route: &RouteConfig) -> String {
    let state = if route.enabled { "" } else { " (disabled)" };
    format!(
        "route {}: POST {} -> session {}{state}",
        route.id, route.path, route.session_key
    )
}

fn weak_secret() -> String {
    format!("plain-text secret shorter than {WEAK_SECRET_CHARS} characters")
}

/// Whether a route's secret is a plain string short enough to warn about.
fn is_weak(secret: &SecretInput) -> bool {
    matches!(secret, SecretInput::Plain(s) if s.char_len() < WEAK_SECRET_CHARS)
}

/// A route's secret as starting resolves it, or why the route is skipped.
/// The reason names the reference and the provider's complaint, never a
/// value.
fn resolve_secret(runtime: &RuntimeBox, secret: SecretInput) -> Result<Secret, String> {
    match secret {
        SecretInput::Plain(secret) => Ok(secret),
        SecretInput::Ref {
            source,
            provider,
            id,
        } => {
            let resolved = runtime.resolve_secret(
                RStr::from_str(&source),
                RStr::from_str(&provider),
                RStr::from_str(&id),
            );
            match resolved {
                RResult::ROk(value) if !value.trim().is_empty() => {
                    Ok(Secret::new(value.trim().to_owned()))
                }
                RResult::ROk(_) => Err(format!(
                    "secret {source}:{provider}:{id} resolved to an empty value"
                )),
                RResult::RErr(reason) => Err(reason.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{ROption, RString, RVec};
    use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
    use openclaw_ffi::runtime::{GatewaySettings, LogLevel, Runtime, Runtime_TO};

    /// Resolves `good` to a value and `blank` to spaces; refuses the rest,
    /// and every session (a check binds none).
    struct Secrets;

    impl Runtime for Secrets {
        fn bind_session(&self, _: RStr<'_>) -> RResult<BoundTaskFlowBox, TaskFlowError> {
            RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "bound during a check",
            ))
        }
        fn resolve_secret(
            &self,
            _: RStr<'_>,
            _: RStr<'_>,
            id: RStr<'_>,
        ) -> RResult<RString, RString> {
            match id.as_str() {
                "good" => RResult::ROk("resolved-secret-value-0123".into()),
                "blank" => RResult::ROk("   ".into()),
                other => RResult::RErr(format!("SecretRef env:p:{other} is unresolved").into()),
            }
        }
        fn take_listener(&self) -> ROption<i32> {
            ROption::RNone
        }
        fn settings(&self) -> GatewaySettings {
            GatewaySettings {
                trusted_proxies: RVec::new(),
                allow_real_ip_fallback: false,
                shutdown_grace_ms: 0,
            }
        }
        fn log(&self, _: LogLevel, _: RStr<'_>, _: RStr<'_>) {}
        fn max_log_level(&self) -> LogLevel {
            LogLevel::Off
        }
    }

    #[test]
    fn a_check_says_per_route_what_starting_does_with_its_secret() {
        let config = crate::config::parse(
            r#"{"routes":{
                "good":{"sessionKey":"s","secret":{"source":"env","provider":"p","id":"good"}},
                "blank":{"sessionKey":"s","secret":{"source":"env","provider":"p","id":"blank"}},
                "gone":{"sessionKey":"s","secret":{"source":"env","provider":"p","id":"gone"}},
                "weak":{"sessionKey":"s","secret":"short"},
                "off":{"enabled":false,"sessionKey":"s","secret":{"source":"env","provider":"p","id":"gone"}}}}"#,
        )
        .unwrap();
        let runtime = Runtime_TO::from_value(Secrets, TD_Opaque);
        assert_eq!(
            check(&runtime, config),
            [
                "route good: POST /plugins/webhooks/good -> session s",
                "route blank: skipped: secret env:p:blank resolved to an empty value",
                "route gone: skipped: SecretRef env:p:gone is unresolved",
                "route weak: POST /plugins/webhooks/weak -> session s (warning: plain-text secret shorter than 16 characters)",
                "route off: POST /plugins/webhooks/off -> session s (disabled)",
            ]
        );
    }
}
