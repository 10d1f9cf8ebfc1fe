//! `openclaw-gateway migrate --from-state-dir DIR --config FILE`: copies
//! the embedded store of a state directory into the PostgreSQL of the
//! config's `cluster`, bringing its schema up to date first, and prints
//! what it copied per table.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cluster::{copy, probe, schema, url::Service};
use crate::config;

const EXIT_CONFIG: u8 = 2;
const EXIT_FAILURE: u8 = 1;

pub struct MigrateOptions {
    pub config: PathBuf,
    pub from_state_dir: PathBuf,
}

/// Where a state directory keeps its TaskFlow store (as the Gateway
/// opens it).
pub fn store_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("taskflow").join("flows.sqlite")
}

pub fn run(options: MigrateOptions) -> ExitCode {
    let parsed = config::load(&options.config);
    let config = match parsed.config {
        Some(c) if parsed.issues.is_empty() => c,
        _ => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "error: {} is not usable ({} problems):",
                options.config.display(),
                parsed.issues.len()
            );
            for issue in parsed.issues {
                let _ = writeln!(err, "  {issue}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(cluster) = config.cluster else {
        eprintln!(
            "error: {} has no `cluster` section: migrate copies into the cluster's PostgreSQL",
            options.config.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let url = match cluster.postgres.url.resolve(
        Service::Postgres,
        "cluster.postgres.url",
        &config.secrets,
    ) {
        Ok(url) => url,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let source_path = store_path(&options.from_state_dir);
    let result = copy::open_source(&source_path).and_then(|source| {
        let mut target = probe::postgres(&url)?;
        let migrated = schema::migrate(&mut target)?;
        let reports = copy::copy_all(&source.conn, &source_path, &mut target)?;
        Ok((migrated, reports))
    });
    match result {
        Ok((migrated, reports)) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "migrated {} into PostgreSQL {url} (schema version {})",
                source_path.display(),
                migrated.to
            );
            for r in reports {
                let _ = writeln!(
                    out,
                    "  {}: {} copied, {} already present",
                    r.table, r.copied, r.present
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: migrate: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
