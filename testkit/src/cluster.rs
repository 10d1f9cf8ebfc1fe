//! The services the cluster tests run against: PostgreSQL and Redis, at
//! the URLs in `OPENCLAW_TEST_POSTGRES_URL` / `OPENCLAW_TEST_REDIS_URL`
//! (defaults: the local services `.ci/run` starts), each test with its own
//! PostgreSQL schema or Redis key prefix so runs never see each other's
//! data. A service that does not answer fails the test by name: a cluster
//! test never skips.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    env_or("OPENCLAW_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
}

/// The Redis server the tests use.
pub fn redis_url() -> String {
    env_or("OPENCLAW_TEST_REDIS_URL", DEFAULT_REDIS_URL)
}

/// The test Redis server's address (the first its host resolves to).
pub fn redis_addr() -> std::net::SocketAddr {
    let url = redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit('@').next().unwrap();
    host.to_socket_addrs()
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
        .next()
        .unwrap()
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A name no other test (in this run or another) uses: lower case, so it
/// needs no quoting as a PostgreSQL identifier.
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh PostgreSQL schema of the test server, dropped (with everything
/// in it) when this is dropped.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    /// Creates the schema; panics naming PostgreSQL and its URL when the
    /// server does not answer.
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        let mut client = admin_client();
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .unwrap_or_else(|e| panic!("cannot create schema {name} in PostgreSQL: {e}"));
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL with this schema as the session's `search_path`,
    /// so everything created through it lands in this schema.
    pub fn url(&self) -> String {
        let base = postgres_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.name)
    }

    /// [`PgSchema::url`] with the server's `host:port` replaced by `addr`
    /// (a [`crate::TcpProxy`] in front of the server).
    pub fn url_through(&self, addr: std::net::SocketAddr) -> String {
        let url = self.url();
        let (scheme, rest) = url.split_once("://").unwrap();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        format!("{scheme}://{}{addr}{tail}", user.unwrap_or_default())
    }

    /// The server's address (the first its host resolves to).
    pub fn server_addr() -> std::net::SocketAddr {
        let url = postgres_url();
        let rest = url.split_once("://").unwrap().1;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let host = rest[..end].rsplit('@').next().unwrap();
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        };
        host.to_socket_addrs().unwrap().next().unwrap()
    }

    /// A connection whose `search_path` is this schema.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url())
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

fn admin_client() -> postgres::Client {
    connect(&postgres_url())
}

fn connect(url: &str) -> postgres::Client {
    let mut config: postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("OPENCLAW_TEST_POSTGRES_URL is not a PostgreSQL URL: {e}"));
    config.connect_timeout(Duration::from_secs(5));
    config.connect(postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {} ({e}); the cluster tests need it: \
             start it (`.ci/run` does) or point OPENCLAW_TEST_POSTGRES_URL at one",
            redacted(url)
        )
    })
}

/// A Redis key prefix no other test uses, after checking that Redis
/// answers (panics naming Redis and its URL when it does not).
pub fn redis_prefix(tag: &str) -> String {
    redis_prefix_at(&redis_url(), tag)
}

fn redis_prefix_at(url: &str, tag: &str) -> String {
    if let Err(e) = redis_ping(url) {
        panic!(
            "Redis is not reachable at {} ({e}); the cluster tests need it: \
             start it (`.ci/run` does) or point OPENCLAW_TEST_REDIS_URL at one",
            redacted(url)
        );
    }
    format!("{}:", unique(tag))
}

/// `PING` over RESP on a plain connection (the test server has no TLS).
fn redis_ping(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("the URL does not start with redis://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the host has no address")?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).map_err(|e| e.to_string())?;
    if reply[..n].starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&reply[..n])
        ))
    }
}

/// A URL with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Which store the Gateways of one state directory run on.
pub enum TestStore {
    /// The embedded store, whatever `OPENCLAW_TEST_STORE` says: the test is
    /// about it (its file, its cache, its quota) or about the in-process
    /// limits.
    Embedded,
    /// PostgreSQL, on a schema of the directory's own, with a Redis key
    /// prefix of its own: the suite run on PostgreSQL.
    Postgres { schema: PgSchema, prefix: String },
}

/// `config` as a Gateway in `dir` runs it: unchanged, unless
/// `OPENCLAW_TEST_STORE=postgres` asks for the suite to run on PostgreSQL,
/// the config has no `cluster` of its own and `dir` was not pinned to the
/// embedded store; then it gets a `cluster` on `dir`'s own schema and
/// prefix, kept across restarts in `dir`.
pub fn test_store(dir: &crate::TempDir, config: &serde_json::Value) -> serde_json::Value {
    let mut config = config.clone();
    let wanted = std::env::var("OPENCLAW_TEST_STORE").is_ok_and(|v| v == "postgres");
    if !wanted || config.get("cluster").is_some() {
        return config;
    }
    let mut store = dir.1.lock().unwrap();
    let store = store.get_or_insert_with(|| TestStore::Postgres {
        schema: PgSchema::new("suite"),
        prefix: redis_prefix("suite"),
    });
    if let TestStore::Postgres { schema, prefix } = store {
        config["cluster"] = serde_json::json!({
            "postgres": {"url": schema.url(), "poolSize": 4},
            "redis": {"url": redis_url(), "keyPrefix": prefix},
        });
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_is_the_search_path_of_its_url_and_is_dropped_with_it() {
        let schema = PgSchema::new("helper");
        let mut client = schema.client();
        client.batch_execute("CREATE TABLE probe (x INT)").unwrap();
        let row = client
            .query_one(
                "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'probe'",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), schema.name());
        let name = schema.name().to_owned();
        drop(schema);
        let gone = admin_client()
            .query("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
            .unwrap();
        assert!(gone.is_empty(), "schema {name} outlived its guard");
    }

    #[test]
    fn every_schema_and_prefix_is_new() {
        assert_ne!(PgSchema::new("a").name(), PgSchema::new("a").name());
        assert_ne!(redis_prefix("a"), redis_prefix("a"));
    }

    #[test]
    #[should_panic(expected = "PostgreSQL is not reachable at postgres://u:***@127.0.0.1:1/test")]
    fn an_unreachable_postgres_fails_by_name_without_the_password() {
        connect("postgres://u:hunter2@127.0.0.1:1/test");
    }

    #[test]
    #[should_panic(expected = "Redis is not reachable at redis://127.0.0.1:1/")]
    fn an_unreachable_redis_fails_by_name() {
        redis_prefix_at("redis://127.0.0.1:1/", "x");
    }

    #[test]
    fn redaction_keeps_everything_but_the_password() {
        assert_eq!(redacted("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redacted("postgres://u@h/db?x=1"), "postgres://u@h/db?x=1");
    }
}
