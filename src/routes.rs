//! Turns the parsed config and the Gateway runtime into live routes:
//! secrets resolved once, sessions bound, limits built. Runs once at start,
//! before the server exists, so every worker shares the same limiter state.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::runtime::{BoundTaskFlowBox, RuntimeBox};

use crate::auth::Secret;
use crate::callbacks::{KeyInput, Target};
use crate::client_ip::{IpNet, ProxyPolicy};
use crate::config::{Limits, PluginConfig, RouteConfig, SecretInput, WEAK_SECRET_CHARS};
use crate::idempotency::{Policy, Running};
use crate::limits::{InFlightLimiter, RateLimiter};
use crate::paths::route_key;

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
    pub idempotency: Policy,
    /// Idempotency keys whose first request is still running.
    pub running: Arc<Running>,
    /// The TaskFlow runtime bound to `session_key`.
    pub flows: Arc<BoundTaskFlowBox>,
    /// Where the route's flow events go, if anywhere.
    pub callbacks: Option<Arc<Target>>,
}

impl Route {
    /// A live route for `config`, with fresh limiter state.
    pub fn new(config: &RouteConfig, secret: Secret, flows: BoundTaskFlowBox) -> Self {
        let limits = config.limits;
        Self {
            rate: RateLimiter::new(
                limits.rate_limit_window,
                limits.rate_limit_max_requests,
                limits.max_tracked_keys,
            ),
            in_flight: InFlightLimiter::new(limits.max_in_flight, limits.max_tracked_keys),
            idempotency: config.idempotency,
            running: Running::new(),
            flows: Arc::new(flows),
            callbacks: None,
            id: config.id.clone(),
            path: config.path.clone(),
            session_key: config.session_key.clone(),
            controller_id: config.controller_id.clone(),
            secret,
            limits,
        }
    }
}

/// Everything the request handler reads, built once.
pub struct AppState {
    /// Route key (see [`route_key`]) to route.
    pub routes: HashMap<String, Arc<Route>>,
    pub proxy: ProxyPolicy,
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
        let Some(secret) = resolve_secret(runtime, &route.id, &route.secret) else {
            continue;
        };
        // Callbacks that cannot be signed skip the route, as a secret that
        // cannot be resolved does: its events would never be delivered.
        let callbacks = match &route.callbacks {
            Some(c) => match callback_keys(runtime, &route.id, &c.secrets) {
                Some(keys) => Some(Arc::new(Target {
                    route_id: route.id.clone(),
                    url: c.url.clone(),
                    keys,
                    timeout: c.timeout,
                    max_attempts: c.max_attempts,
                    retry_schedule: c.retry_schedule.clone(),
                })),
                None => continue,
            },
            None => None,
        };
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
        if let Some(c) = &callbacks {
            log::info!(
                target: "webhooks",
                "route {} sends flow events to {}",
                route.id, c.url.origin
            );
        }
        let mut live = Route::new(&route, secret, flows);
        live.callbacks = callbacks;
        routes.insert(route_key(&route.path), Arc::new(live));
    }
    if routes.is_empty() {
        log::warn!(target: "webhooks", "no webhook routes are serving");
    }
    Ok(AppState { routes, proxy })
}

/// The route's callback signing keys; `None` (with a warning naming the
/// route and the reason, never a value) when one cannot be resolved.
fn callback_keys(
    runtime: &RuntimeBox,
    route_id: &str,
    inputs: &[KeyInput],
) -> Option<Vec<crate::callbacks::sign::SigningKey>> {
    let mut keys = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        match input {
            KeyInput::Key(k) => keys.push(k.clone()),
            KeyInput::Ref {
                source,
                provider,
                id,
            } => {
                let resolved = runtime.resolve_secret(
                    RStr::from_str(source),
                    RStr::from_str(provider),
                    RStr::from_str(id),
                );
                let value = match resolved {
                    RResult::ROk(v) => v,
                    RResult::RErr(reason) => {
                        log::warn!(target: "webhooks", "skipping route {route_id}: callbacks.signing.secrets.{i}: {reason}");
                        return None;
                    }
                };
                match crate::callbacks::sign::SigningKey::parse(&value) {
                    Ok(k) => keys.push(k),
                    Err(e) => {
                        log::warn!(target: "webhooks", "skipping route {route_id}: callbacks.signing.secrets.{i} ({source}:{provider}:{id}) {e}");
                        return None;
                    }
                }
            }
        }
    }
    Some(keys)
}

fn resolve_secret(runtime: &RuntimeBox, route_id: &str, secret: &SecretInput) -> Option<Secret> {
    match secret {
        SecretInput::Plain(secret) => {
            if secret.char_len() < WEAK_SECRET_CHARS {
                log::warn!(
                    target: "webhooks",
                    "route {} uses a plain-text secret shorter than {WEAK_SECRET_CHARS} characters; use a longer one or a SecretRef",
                    route_id
                );
            }
            Some(secret.clone())
        }
        SecretInput::Ref {
            source,
            provider,
            id,
        } => {
            let resolved = runtime.resolve_secret(
                RStr::from_str(source),
                RStr::from_str(provider),
                RStr::from_str(id),
            );
            match resolved {
                RResult::ROk(value) if !value.trim().is_empty() => {
                    Some(Secret::new(value.trim().to_owned()))
                }
                RResult::ROk(_) => {
                    log::warn!(target: "webhooks", "skipping route {route_id}: secret {source}:{provider}:{id} resolved to an empty value");
                    None
                }
                RResult::RErr(reason) => {
                    log::warn!(target: "webhooks", "skipping route {route_id}: {reason}");
                    None
                }
            }
        }
    }
}
