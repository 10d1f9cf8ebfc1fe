//! Reaching the cluster's services: a PostgreSQL connection (also used by
//! `migrate`) and a Redis `PING`, each bounded by a short timeout so a
//! dead host is an error, never a hang.

use std::time::Duration;

use super::error::{with_causes, ClusterError};
use super::url::{Service, ServiceUrl};
use crate::taskflow::{parse_pg_url, PgTransport as Transport};

/// How long connecting may take before the service counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One PostgreSQL connection (over TLS when the URL says
/// `sslmode=require`).
pub fn postgres(url: &ServiceUrl) -> Result<postgres::Client, ClusterError> {
    let unreachable = |e: &dyn std::error::Error| {
        ClusterError::unreachable(Service::Postgres, url, with_causes(e))
    };
    let mut config = parse_pg_url(url.expose()).map_err(|e| unreachable(&e))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let transport = Transport::for_config(&config).map_err(|e| unreachable(&e))?;
    let mut client = transport.connect(&config).map_err(|e| unreachable(&e))?;
    client
        .simple_query("SELECT 1")
        .map_err(|e| unreachable(&e))?;
    Ok(client)
}

/// Connects to Redis and sends `PING`.
pub fn redis(url: &ServiceUrl) -> Result<(), ClusterError> {
    let fail =
        |e: redis::RedisError| ClusterError::unreachable(Service::Redis, url, with_causes(&e));
    let client = redis::Client::open(url.expose()).map_err(fail)?;
    let mut conn = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .map_err(fail)?;
    conn.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(fail)?;
    conn.set_write_timeout(Some(CONNECT_TIMEOUT))
        .map_err(fail)?;
    let pong: String = redis::cmd("PING").query(&mut conn).map_err(fail)?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(ClusterError::unreachable(
            Service::Redis,
            url,
            format!("PING answered {pong:?}"),
        ))
    }
}
