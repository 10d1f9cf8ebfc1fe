//! Reaching the cluster's services: a PostgreSQL connection (also used by
//! `migrate`) and a Redis `PING`, each bounded by a short timeout so a
//! dead host is an error, never a hang.

use std::time::Duration;

use super::error::ClusterError;
use super::url::{Service, ServiceUrl};

/// How long connecting may take before the service counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One PostgreSQL connection (no TLS in this build).
pub fn postgres(url: &ServiceUrl) -> Result<postgres::Client, ClusterError> {
    let mut config: postgres::Config = url
        .expose()
        .parse()
        .map_err(|e| ClusterError::unreachable(Service::Postgres, url, e))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| ClusterError::unreachable(Service::Postgres, url, e))?;
    client
        .simple_query("SELECT 1")
        .map_err(|e| ClusterError::unreachable(Service::Postgres, url, e))?;
    Ok(client)
}

/// Connects to Redis and sends `PING`.
pub fn redis(url: &ServiceUrl) -> Result<(), ClusterError> {
    let fail = |e: redis::RedisError| ClusterError::unreachable(Service::Redis, url, e);
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
