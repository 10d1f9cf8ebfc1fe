//! `--check`: the report of what a start would serve (each plugin's routes,
//! their secrets resolved as a start resolves them) and, with `cluster`,
//! both services reached, every problem reported at once.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::runtime::Runtime_TO;
use parking_lot::Mutex;

use crate::app::{gateway_settings, CheckedPlugin, Options};
use crate::cluster::config::ClusterSection;
use crate::cluster::{error::ClusterError, probe, schema, url::Service};
use crate::config::Config;
use crate::host::HostRuntime;

/// Prints what a start would serve: each plugin resolves its routes'
/// secrets through the providers (running `exec` providers, as a start
/// does) and says per route whether it would serve or be skipped, and why.
pub(crate) fn print(
    options: &Options,
    config: Config,
    plugins: &[CheckedPlugin],
    cluster_lines: &[String],
) -> ExitCode {
    let secrets = Arc::new(config.secrets);
    let settings = gateway_settings(&config.gateway);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "config ok: {}", options.config.display());
    for line in cluster_lines {
        let _ = writeln!(out, "{line}");
    }
    for p in plugins {
        let info = &p.loaded.info;
        let _ = writeln!(
            out,
            "plugin {} {} (ffi {}, rev {}) from {}",
            p.loaded.id,
            info.version,
            info.ffi_version,
            info.git_revision,
            p.loaded.path.display()
        );
        let lines = match p.loaded.check_start {
            Some(check_start) => {
                let runtime = HostRuntime {
                    plugin_id: p.loaded.id.clone(),
                    store: None,
                    secrets: Arc::clone(&secrets),
                    listener: Mutex::new(None),
                    settings: settings.clone(),
                    shared_limits: None,
                };
                let runtime = Runtime_TO::from_value(runtime, TD_Opaque);
                match check_start(runtime, RStr::from_str(&p.config_json)) {
                    RResult::ROk(lines) => lines.into_iter().map(Into::into).collect(),
                    // The same config passed check_config moments ago.
                    RResult::RErr(issues) => issues
                        .iter()
                        .map(|i| format!("config issue at {}: {}", i.path, i.message))
                        .collect(),
                }
            }
            // Not reachable with today's loader, which refuses a root module
            // without this entry; kept so that --check never claims more
            // than the plugin told it.
            None => {
                let mut lines = p.routes.clone();
                lines.push("(secrets not resolved: this plugin cannot report them)".to_owned());
                lines
            }
        };
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    ExitCode::SUCCESS
}

/// `--check` with `cluster`: resolves both URLs and reaches both
/// services; the lines say where (URLs redacted) and the schema version
/// PostgreSQL holds. Every problem is reported, not only the first.
pub(crate) fn cluster(
    cluster: &ClusterSection,
    config: &Config,
) -> Result<Vec<String>, Vec<String>> {
    let postgres = cluster
        .postgres
        .url
        .resolve(Service::Postgres, "cluster.postgres.url", &config.secrets)
        .and_then(|url| {
            let fail = |e: ClusterError| format!("cluster.postgres.url: {e}");
            let version =
                schema::stored_version(&mut probe::postgres(&url).map_err(fail)?).map_err(fail)?;
            Ok(format!(
                "cluster postgres {url}: reachable, schema version {version} (this build: {})",
                schema::SCHEMA_VERSION
            ))
        });
    let redis = cluster
        .redis
        .url
        .resolve(Service::Redis, "cluster.redis.url", &config.secrets)
        .and_then(|url| {
            probe::redis(&url).map_err(|e| format!("cluster.redis.url: {e}"))?;
            Ok(format!("cluster redis {url}: reachable"))
        });
    match (postgres, redis) {
        (Ok(pg), Ok(redis)) => Ok(vec![pg, redis]),
        (pg, redis) => Err([pg.err(), redis.err()].into_iter().flatten().collect()),
    }
}
