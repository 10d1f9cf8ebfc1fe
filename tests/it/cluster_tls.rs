//! The cluster's services over TLS: a Gateway reaches PostgreSQL with
//! `sslmode=require` and Redis with `rediss://`, verifying each server's
//! certificate, here through `TlsProxy` in front of the test servers (a
//! proxy that accepts nothing but TLS, with a certificate authority of its
//! own that the Gateway trusts through `SSL_CERT_FILE`).

use serde_json::json;

use crate::cluster::{cluster_config, id};
use crate::support::*;

/// A TLS proxy in front of each test server: PostgreSQL's, Redis's.
fn proxies() -> (TlsProxy, TlsProxy) {
    (
        TlsProxy::postgres(PgSchema::server_addr()),
        TlsProxy::redis(redis_addr()),
    )
}

/// The cluster config with both services reached through `pg` and `redis`.
fn tls_config(schema: &PgSchema, pg: &TlsProxy, redis: &TlsProxy) -> serde_json::Value {
    let url = schema.url_through(pg.addr());
    let mut config = cluster_config(
        &format!("{url}&sslmode=require"),
        json!({"limits": {"rateLimitMaxRequests": 3, "rateLimitWindowMs": 60_000}}),
    );
    config["cluster"]["redis"]["url"] = json!(format!("rediss://{}/", redis.addr()));
    config
}

#[test]
fn a_cluster_serves_over_verified_tls_to_postgres_and_redis() {
    let schema = PgSchema::new("cluster_tls");
    let (pg, redis) = proxies();
    let config = tls_config(&schema, &pg, &redis);
    // Both proxies' authorities in one file, as a private CA bundle would be.
    let bundle = CaBundle::of(&[&pg, &redis]);
    let env = [("SSL_CERT_FILE", bundle.path())];
    let (a, b) = (
        Gateway::start_with_env(&config, &env),
        Gateway::start_with_env(&config, &env),
    );

    let flow = a.create_flow("over TLS");
    let read = b.action(json!({"action": "get_flow", "flowId": id(&flow)}));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json["result"]["flow"], flow);
    // The rate limit (3 a minute) is counted in Redis, across both nodes.
    let statuses: Vec<u16> = [&a, &b, &a, &b]
        .iter()
        .map(|gw| gw.action(json!({"action": "list_flows"})).status)
        .collect();
    // The create and the read above counted too.
    assert_eq!(statuses, [200, 429, 429, 429], "{}{}", a.logs(), b.logs());
    assert!(
        pg.sessions() >= 2,
        "{} TLS sessions to PostgreSQL",
        pg.sessions()
    );
    assert!(
        redis.sessions() >= 2,
        "{} TLS sessions to Redis",
        redis.sessions()
    );
    for gw in [&a, &b] {
        assert!(!gw.logs().contains("Redis is unreachable"), "{}", gw.logs());
    }
}

#[test]
fn a_server_certificate_the_gateway_does_not_trust_is_refused_by_name() {
    let schema = PgSchema::new("cluster_untrusted");
    let (pg, redis) = proxies();
    // No SSL_CERT_FILE: the proxies' authority is nobody's.
    let out = Gateway::run_to_exit(&tls_config(&schema, &pg, &redis), &["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    // Both services are reported, each with why.
    for service in ["cluster.postgres.url", "cluster.redis.url"] {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(service))
            .unwrap_or_else(|| panic!("{service} not reported:\n{}", out.stderr));
        assert!(line.contains("UnknownIssuer"), "{line}");
    }
    assert_eq!(pg.sessions(), 0);
    assert_eq!(redis.sessions(), 0);
}
