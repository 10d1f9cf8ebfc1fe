//! Serving on the cluster's PostgreSQL: the schema migrated at start,
//! then the TaskFlow store opened there.

use super::config::ClusterSection;
use super::url::Service;
use super::{probe, schema};
use crate::secrets::SecretProviders;
use crate::taskflow::{PgOptions, Store, StoreOptions};

/// With `cluster`: brings the PostgreSQL schema to this build's version
/// (under its advisory lock, so nodes starting together apply each
/// migration once) and opens the store there.
pub fn open(
    cluster: &ClusterSection,
    secrets: &SecretProviders,
    options: StoreOptions,
) -> Result<Store, String> {
    let url = cluster
        .postgres
        .url
        .resolve(Service::Postgres, "cluster.postgres.url", secrets)?;
    let mut client = probe::postgres(&url).map_err(|e| format!("cluster.postgres.url: {e}"))?;
    let migrated =
        schema::migrate(&mut client).map_err(|e| format!("cluster.postgres.url: {e}"))?;
    drop(client);
    if migrated.from != migrated.to {
        log::info!(
            target: "gateway",
            "cluster postgres {url}: schema migrated from version {} to {}",
            migrated.from,
            migrated.to
        );
    }
    let pg = PgOptions {
        url: url.expose().to_owned(),
        label: url.redacted(),
        pool_size: cluster.postgres.pool_size,
    };
    Store::open_postgres(options, &pg).map_err(|e| e.to_string())
}
