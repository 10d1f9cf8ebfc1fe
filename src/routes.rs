//! Turns the parsed config and the Gateway runtime into live routes:
//! secrets resolved once, sessions bound, limits built. Runs once at start,
//! before the server exists, so every worker shares the same limiter state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{ROption, RResult, RStr};
use actix_web::http::header::HeaderMap;
use openclaw_ffi::runtime::{BoundTaskFlowBox, RuntimeBox};

use crate::access::Access;
use crate::audit::RejectionCaps;
use crate::auth::{presented_secret, Secrets};
use crate::callbacks::Target;
use crate::client_ip::{IpNet, ProxyPolicy};
use crate::config::{Limits, PluginConfig, RouteConfig};
use crate::credentials::{self, Credentials};
use crate::error::{ApiError, Code};
use crate::idempotency::{Keys, Policy};
use crate::metrics::{Metrics, RouteMetrics};
use crate::paths::route_key;
use crate::shared_limits::{self, RedisLink};
use crate::signing::{Rejection, SignedHeaders, Verified, Verifier};
use crate::wait::Waiters;

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
    /// The rate window and in-flight slots, local or cluster-wide.
    pub limiters: shared_limits::Limits,
    pub idempotency: Policy,
    /// Idempotency keys running or finished here (see [`Keys`]).
    pub keys: Arc<Keys>,
    /// The TaskFlow runtime bound to `session_key`.
    pub flows: Arc<BoundTaskFlowBox>,
    /// Where the route's flow events go, if anywhere.
    pub callbacks: Option<Arc<Target>>,
    /// The route's waiting reads and their stop signal.
    pub waiters: Arc<Waiters>,
    /// Created here, with the route, so that recording takes no lookup.
    pub metrics: Arc<RouteMetrics>,
    /// Caps this route's rejection lines in the audit log.
    pub rejection_caps: RejectionCaps,
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
            limiters: shared_limits::Limits::local(
                limits.rate_limit_window,
                limits.rate_limit_max_requests,
                limits.max_in_flight,
                limits.max_tracked_keys,
            ),
            idempotency: config.idempotency,
            keys: Keys::new(config.idempotency.ttl),
            waiters: Waiters::new(limits.max_waiters),
            flows: Arc::new(flows),
            callbacks: None,
            metrics: RouteMetrics::new(
                &config.id,
                secrets.as_ref().map_or(0, Secrets::len),
                signing.as_ref().map_or(0, Verifier::key_count),
            ),
            rejection_caps: RejectionCaps::new(Instant::now()),
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

    /// Counts the route's rate windows and in-flight slots cluster-wide,
    /// through `link`, under keys that start with `prefix`; its local
    /// limiters decide while Redis is away.
    pub fn share_limits(&mut self, link: &Arc<RedisLink>, prefix: &str) {
        self.limiters
            .share(link, prefix, &self.id, shared_limits::DEFAULT_LEASE);
    }
}

/// The link to the cluster's Redis when the Gateway runs in a cluster,
/// connected (or given up on, bounded) before any request is served.
fn shared_link(runtime: &RuntimeBox) -> Result<Option<(Arc<RedisLink>, String)>, String> {
    let ROption::RSome(shared) = runtime.shared_limits() else {
        return Ok(None);
    };
    let link = RedisLink::start(shared.redis_url.as_str(), shared_limits::DEFAULT_TIMEOUT)?;
    let connected = link
        .handle()
        .block_on(link.connect(shared_limits::CONNECT_AT_START));
    if connected {
        log::info!(target: "webhooks", "route limits are counted cluster-wide in Redis");
    } else {
        log::warn!(
            target: "webhooks",
            "Redis is not reachable yet: each route starts on this Gateway's own limits and shares them once Redis answers"
        );
    }
    Ok(Some((link, shared.key_prefix.into())))
}

/// Everything the request handler reads, built once.
pub struct AppState {
    /// Route key (see [`route_key`]) to route.
    pub routes: HashMap<String, Arc<Route>>,
    pub proxy: ProxyPolicy,
    /// Every route's metrics, for the scrape.
    pub metrics: Arc<Metrics>,
    /// Caps the audit lines of requests that match no route.
    pub unrouted_caps: RejectionCaps,
}

impl AppState {
    /// The state serving `routes` (by route key) behind `proxy`.
    pub fn new(routes: HashMap<String, Arc<Route>>, proxy: ProxyPolicy) -> Self {
        let metrics = Metrics::new(routes.values().map(|r| Arc::clone(&r.metrics)).collect());
        Self {
            routes,
            proxy,
            metrics,
            unrouted_caps: RejectionCaps::new(Instant::now()),
        }
    }

    /// Writes the summary lines of every rejection line left out so far.
    pub fn flush_audit(&self) {
        for route in self.routes.values() {
            route
                .rejection_caps
                .flush(Some(&route.id), crate::metrics::codes());
        }
        self.unrouted_caps.flush(None, crate::metrics::codes());
    }
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
    let link = shared_link(runtime)?;
    let mut routes = HashMap::new();
    for mut route in config.routes.into_iter().filter(|r| r.enabled) {
        let Credentials {
            secrets,
            signing,
            callback_keys,
            warnings,
        } = match credentials::resolve(runtime, &mut route) {
            Ok(credentials) => credentials,
            Err(reason) => {
                log::warn!(target: "webhooks", "skipping route {}: {reason}", route.id);
                continue;
            }
        };
        for warning in warnings {
            log::warn!(
                target: "webhooks",
                "route {} uses a {warning}; use a longer one or a SecretRef",
                route.id
            );
        }
        let callbacks = route.callbacks.take().zip(callback_keys).map(|(c, keys)| {
            Arc::new(Target {
                route_id: route.id.clone(),
                url: c.url,
                keys,
                timeout: c.timeout,
                max_attempts: c.max_attempts,
                retry_schedule: c.retry_schedule,
            })
        });
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
        let key = route_key(&route.path);
        let mut live = Route::new(route, secrets, signing, flows);
        live.callbacks = callbacks;
        if let Some((link, prefix)) = &link {
            live.share_limits(link, prefix);
        }
        routes.insert(key, Arc::new(live));
    }
    if routes.is_empty() {
        log::warn!(target: "webhooks", "no webhook routes are serving");
    }
    Ok(AppState::new(routes, proxy))
}

/// One line per configured route saying what [`build`] does with it: serve
/// it (with any warning), skip it (and why) or leave it disabled.
/// Credentials are resolved through `runtime` exactly as `build` resolves
/// them, and dropped; no session is bound and nothing is logged.
pub fn check(runtime: &RuntimeBox, config: PluginConfig) -> Vec<String> {
    config
        .routes
        .into_iter()
        .map(|mut route| {
            let serves = describe(&route);
            if !route.enabled {
                return serves;
            }
            match credentials::resolve(runtime, &mut route) {
                Err(reason) => format!("route {}: skipped: {reason}", route.id),
                Ok(c) if c.warnings.is_empty() => serves,
                Ok(c) => format!("{serves} (warning: {})", c.warnings.join("; ")),
            }
        })
        .collect()
}

/// A route as configured, in one line: its path, its session, where its
/// callbacks go and whether it is disabled.
pub fn describe(route: &RouteConfig) -> String {
    let state = if route.enabled { "" } else { " (disabled)" };
    let callbacks = route
        .callbacks
        .as_ref()
        .map(|c| format!(", callbacks to {}", c.url.origin))
        .unwrap_or_default();
    format!(
        "route {}: POST {} -> session {}{callbacks}{state}",
        route.id, route.path, route.session_key
    )
}

impl Route {
    /// Checks the bearer secret, when the route has any. The matching slot
    /// (its position, never its value) is logged at debug level.
    ///
    /// # Errors
    ///
    /// 401 `unauthorized` when no live secret matches.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        // A credential header repeated on several lines presents no secret.
        let slot = presented_secret(headers)
            .and_then(|presented| secrets.matching_slot(presented))
            .ok_or_else(|| ApiError::new(Code::Unauthorized))?;
        log::debug!(target: "webhooks", "route {}: secret slot {slot} matched", self.id);
        Ok(Some(slot))
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
