//! Turns the parsed config and the Gateway runtime into live routes:
//! secrets resolved once, sessions bound, limits built. Runs once at start,
//! before the server exists, so every worker shares the same limiter state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{RResult, RStr};
use actix_web::http::header::HeaderMap;
use openclaw_ffi::runtime::{BoundTaskFlowBox, RuntimeBox};

use crate::access::Access;
use crate::auth::{presented_secret, Secret, Secrets};
use crate::client_ip::{IpNet, ProxyPolicy};
use crate::config::{
    Limits, PluginConfig, RouteConfig, SecretInput, SecretRef, SigningConfig, WEAK_SECRET_CHARS,
};
use crate::error::{ApiError, Code};
use crate::idempotency::{Policy, Running};
use crate::limits::{InFlightLimiter, RateLimiter};
use crate::paths::route_key;
use crate::signing::{Rejection, SignedHeaders, SigningKey, Verified, Verifier};

/// One serving route and its shared state.
pub struct Route {
    pub id: String,
    pub path: String,
    pub session_key: String,
    pub controller_id: String,
    /// Bearer secrets; `None` when the route is authenticated by signature
    /// only.
    pub secrets: Option<Secrets>,
    /// Standard Webhooks verification, when the route is signed.
    pub signing: Option<Verifier>,
    pub access: Access,
    pub limits: Limits,
    pub rate: RateLimiter,
    pub in_flight: Arc<InFlightLimiter>,
    pub idempotency: Policy,
    /// Idempotency keys whose first request is still running.
    pub running: Arc<Running>,
    /// The TaskFlow runtime bound to `session_key`.
    pub flows: Arc<BoundTaskFlowBox>,
}

impl Route {
    /// A live route for `config` (whose credentials were taken out and
    /// resolved), with fresh limiter state.
    pub fn new(
        config: RouteConfig,
        secrets: Option<Secrets>,
        signing: Option<Verifier>,
        flows: BoundTaskFlowBox,
    ) -> Self {
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
            id: config.id,
            path: config.path,
            session_key: config.session_key,
            controller_id: config.controller_id,
            secrets,
            signing,
            access: config.access,
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
    for mut route in config.routes.into_iter().filter(|r| r.enabled) {
        let inputs = (std::mem::take(&mut route.secrets), route.signing.take());
        let Some((secrets, signing)) = resolve_credentials(runtime, &route.id, inputs) else {
            continue;
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
        let key = route_key(&route.path);
        routes.insert(key, Arc::new(Route::new(route, secrets, signing, flows)));
    }
    if routes.is_empty() {
        log::warn!(target: "webhooks", "no webhook routes are serving");
    }
    Ok(AppState { routes, proxy })
}

/// The route's bearer secrets and signing keys, or `None` (after a warning
/// naming the route and the reason) when any entry cannot be resolved.
fn resolve_credentials(
    runtime: &RuntimeBox,
    id: &str,
    (inputs, signing): (Vec<SecretInput>, Option<SigningConfig>),
) -> Option<(Option<Secrets>, Option<Verifier>)> {
    let listed = inputs.len() > 1;
    let mut secrets = Vec::with_capacity(inputs.len());
    for (slot, input) in inputs.into_iter().enumerate() {
        let label = if listed {
            format!("secret.{slot}")
        } else {
            "secret".to_owned()
        };
        secrets.push(resolve_secret(runtime, id, &label, input)?);
    }
    let signing = match signing {
        Some(signing) => Some(resolve_signing(runtime, id, signing)?),
        None => None,
    };
    let secrets = (!secrets.is_empty()).then(|| Secrets::new(secrets));
    Some((secrets, signing))
}

fn resolve_secret(
    runtime: &RuntimeBox,
    route_id: &str,
    label: &str,
    secret: SecretInput,
) -> Option<Secret> {
    match secret {
        SecretInput::Plain(secret) => {
            if secret.char_len() < WEAK_SECRET_CHARS {
                let which = if label == "secret" {
                    String::new()
                } else {
                    format!(" ({label})")
                };
                log::warn!(
                    target: "webhooks",
                    "route {} uses a plain-text secret shorter than {WEAK_SECRET_CHARS} characters{which}; use a longer one or a SecretRef",
                    route_id
                );
            }
            Some(secret)
        }
        SecretInput::Ref(r) => resolve_ref(runtime, route_id, &r).map(Secret::new),
    }
}

fn resolve_signing(
    runtime: &RuntimeBox,
    route_id: &str,
    signing: SigningConfig,
) -> Option<Verifier> {
    let mut keys = Vec::with_capacity(signing.secrets.len());
    for (slot, input) in signing.secrets.into_iter().enumerate() {
        let key = match input {
            SecretInput::Plain(key) => key,
            SecretInput::Ref(r) => {
                let value = resolve_ref(runtime, route_id, &r)?;
                match SigningKey::parse(&value) {
                    Ok(key) => key,
                    Err(e) => {
                        log::warn!(
                            target: "webhooks",
                            "skipping route {route_id}: signing.secrets.{slot} ({}:{}:{}) {e}",
                            r.source, r.provider, r.id
                        );
                        return None;
                    }
                }
            }
        };
        keys.push(key);
    }
    Some(Verifier::new(keys, signing.tolerance_secs))
}

/// Resolves a SecretRef to its trimmed value, or warns (naming the route,
/// the reference and the reason, never the value) and returns `None`.
fn resolve_ref(runtime: &RuntimeBox, route_id: &str, r: &SecretRef) -> Option<String> {
    let resolved = runtime.resolve_secret(
        RStr::from_str(&r.source),
        RStr::from_str(&r.provider),
        RStr::from_str(&r.id),
    );
    match resolved {
        RResult::ROk(value) if !value.trim().is_empty() => Some(value.trim().to_owned()),
        RResult::ROk(_) => {
            log::warn!(
                target: "webhooks",
                "skipping route {route_id}: secret {}:{}:{} resolved to an empty value",
                r.source, r.provider, r.id
            );
            None
        }
        RResult::RErr(reason) => {
            log::warn!(target: "webhooks", "skipping route {route_id}: {reason}");
            None
        }
    }
}

impl Route {
    /// Checks the bearer secret, when the route has any. The matching slot
    /// (its position, never its value) is logged at debug level.
    ///
    /// # Errors
    ///
    /// 401 `unauthorized` when no live secret matches.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(secrets) = &self.secrets else {
            return Ok(());
        };
        let slot = secrets
            .matching_slot(presented_secret(headers))
            .ok_or_else(|| ApiError::new(Code::Unauthorized))?;
        log::debug!(target: "webhooks", "route {}: secret slot {slot} matched", self.id);
        Ok(())
    }

    /// Verifies the signature over the raw body, when the route is signed.
    /// Returns what was verified (the sender's `webhook-id` among it); the
    /// matching key's slot is logged at debug level.
    ///
    /// # Errors
    ///
    /// 401 `invalid_signature` or `stale_signature`.
    pub fn verify_signature<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &[u8],
    ) -> Result<Option<Verified<'h>>, ApiError> {
        let Some(verifier) = &self.signing else {
            return Ok(None);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match verifier.verify(SignedHeaders::from_headers(headers), body, now) {
            Ok(verified) => {
                log::debug!(
                    target: "webhooks",
                    "route {}: signing secret slot {} matched",
                    self.id, verified.slot
                );
                Ok(Some(verified))
            }
            Err(Rejection::Invalid) => Err(ApiError::new(Code::InvalidSignature)),
            Err(Rejection::Stale) => Err(ApiError::new(Code::StaleSignature)),
        }
    }
}
