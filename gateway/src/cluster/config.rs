//! The `cluster` config section: where several Gateways share state
//! (`postgres`) and limits (`redis`). Both are required together; each URL
//! is a string or a SecretRef, resolved through the Gateway's secret
//! providers.

use jsoncfg::{join, Walker};
use serde_json::Value;

use super::url::{Service, ServiceUrl};
use crate::config::parse_secret_ref;
use crate::secrets::SecretProviders;

/// Connections a Gateway keeps to PostgreSQL when `poolSize` is absent.
pub const DEFAULT_POOL_SIZE: u32 = 8;
const MAX_POOL_SIZE: u64 = 256;

#[derive(Debug, Clone)]
pub struct ClusterSection {
    pub postgres: PostgresSection,
    pub redis: RedisSection,
}

#[derive(Debug, Clone)]
pub struct PostgresSection {
    pub url: UrlInput,
    /// How many connections one Gateway keeps open to PostgreSQL.
    pub pool_size: u32,
}

#[derive(Debug, Clone)]
pub struct RedisSection {
    pub url: UrlInput,
    /// Prefixed to every key the Gateways write, so clusters (or test
    /// runs) sharing one Redis never count together.
    pub key_prefix: String,
}

/// `cluster.redis.keyPrefix` when absent.
pub const DEFAULT_KEY_PREFIX: &str = "openclaw:";
const MAX_KEY_PREFIX_BYTES: usize = 128;

/// A connection URL: literal, or a SecretRef resolved at startup.
#[derive(Debug, Clone)]
pub enum UrlInput {
    Plain(ServiceUrl),
    Ref {
        source: String,
        provider: String,
        id: String,
    },
}

impl UrlInput {
    /// The URL itself, resolving a SecretRef; `path` prefixes the message,
    /// which never holds the resolved text.
    pub fn resolve(
        &self,
        service: Service,
        path: &str,
        secrets: &SecretProviders,
    ) -> Result<ServiceUrl, String> {
        match self {
            UrlInput::Plain(url) => Ok(url.clone()),
            UrlInput::Ref {
                source,
                provider,
                id,
            } => {
                let secret = secrets
                    .resolve(source, provider, id)
                    .map_err(|reason| format!("{path}: {reason}"))?;
                ServiceUrl::parse(service, secret.expose())
                    .map_err(|reason| format!("{path}: the resolved value is not usable: {reason}"))
            }
        }
    }
}

/// Parses `cluster` at `path`; every issue is recorded in `w`.
pub fn parse(w: &mut Walker, path: &str, v: &Value) -> Option<ClusterSection> {
    let obj = w.object(path, v, &["postgres", "redis"])?;
    let pg_path = join(path, "postgres");
    let redis_path = join(path, "redis");
    // Shared state without shared limits (or the reverse) would let nodes
    // disagree silently, so one without the other is refused.
    let postgres = match obj.get("postgres") {
        Some(v) => parse_postgres(w, &pg_path, v),
        None => {
            w.issue(
                &pg_path,
                "is required: cluster needs both postgres and redis",
            );
            None
        }
    };
    let redis = match obj.get("redis") {
        Some(v) => parse_redis(w, &redis_path, v),
        None => {
            w.issue(
                &redis_path,
                "is required: cluster needs both postgres and redis",
            );
            None
        }
    };
    Some(ClusterSection {
        postgres: postgres?,
        redis: redis?,
    })
}

fn parse_postgres(w: &mut Walker, path: &str, v: &Value) -> Option<PostgresSection> {
    let obj = w.object(path, v, &["url", "poolSize"])?;
    let url = parse_url(w, &join(path, "url"), obj.get("url"), Service::Postgres);
    let pool_size = w
        .integer(
            &join(path, "poolSize"),
            obj.get("poolSize"),
            1,
            MAX_POOL_SIZE,
        )
        .map_or(DEFAULT_POOL_SIZE, |n| n as u32);
    Some(PostgresSection {
        url: url?,
        pool_size,
    })
}

fn parse_redis(w: &mut Walker, path: &str, v: &Value) -> Option<RedisSection> {
    let obj = w.object(path, v, &["url", "keyPrefix"])?;
    let url = parse_url(w, &join(path, "url"), obj.get("url"), Service::Redis);
    let prefix_path = join(path, "keyPrefix");
    let key_prefix = match obj.get("keyPrefix") {
        None => Some(DEFAULT_KEY_PREFIX.to_owned()),
        Some(v) => w.text(&prefix_path, Some(v)).and_then(|p| {
            let fits = p.len() <= MAX_KEY_PREFIX_BYTES
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
            if fits {
                Some(p)
            } else {
                w.issue(
                    &prefix_path,
                    format!("expected up to {MAX_KEY_PREFIX_BYTES} visible ASCII characters without braces"),
                );
                None
            }
        }),
    };
    Some(RedisSection {
        url: url?,
        key_prefix: key_prefix?,
    })
}

fn parse_url(w: &mut Walker, path: &str, v: Option<&Value>, service: Service) -> Option<UrlInput> {
    let v = w.required(path, v)?;
    if v.is_string() {
        let text = w.text(path, Some(v))?;
        return match ServiceUrl::parse(service, &text) {
            Ok(url) => Some(UrlInput::Plain(url)),
            Err(reason) => {
                w.issue(path, reason);
                None
            }
        };
    }
    let (source, provider, id) = parse_secret_ref(w, path, v)?;
    Some(UrlInput::Ref {
        source,
        provider,
        id,
    })
}
