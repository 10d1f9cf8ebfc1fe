//! `openclaw-gateway --config FILE [--state-dir DIR] [--check]`, and
//! `openclaw-gateway migrate --from-state-dir DIR --config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use openclaw_gateway::app::{self, Options};
use openclaw_gateway::migrate::{self, MigrateOptions};

const USAGE: &str = "usage: openclaw-gateway --config FILE [--state-dir DIR] [--check]
       openclaw-gateway migrate --from-state-dir DIR --config FILE

  --config FILE      the JSON5 config file (required)
  --state-dir DIR    where the TaskFlow store lives
                     (default: $OPENCLAW_STATE_DIR, else ~/.openclaw)
  --check            validate the config, print the routes it would serve, exit
  --version          print the version and exit

  migrate            copy the TaskFlow store of --from-state-dir DIR into the
                     PostgreSQL of the config's `cluster` (idempotent: rows
                     already there are left as they are)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("migrate") {
        args.next();
        return match parse_migrate_args(args) {
            Ok(Some(options)) => migrate::run(options),
            Ok(None) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}\n\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    match parse_args(args) {
        Ok(Some(options)) => app::run(options),
        Ok(None) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut config = None;
    let mut state_dir = None;
    let mut check = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "--state-dir" => {
                state_dir = Some(PathBuf::from(
                    args.next().ok_or("--state-dir needs a directory")?,
                ))
            }
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" => {
                println!("openclaw-gateway {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = config.ok_or("--config is required")?;
    Ok(Some(Options {
        config,
        state_dir,
        check,
    }))
}

fn parse_migrate_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<MigrateOptions>, String> {
    let mut config = None;
    let mut from = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "--from-state-dir" => {
                from = Some(PathBuf::from(
                    args.next().ok_or("--from-state-dir needs a directory")?,
                ))
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument to migrate {other:?}")),
        }
    }
    Ok(Some(MigrateOptions {
        config: config.ok_or("migrate needs --config")?,
        from_state_dir: from.ok_or("migrate needs --from-state-dir")?,
    }))
}
