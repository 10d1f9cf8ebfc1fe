//! `openclaw-gateway --config FILE [--state-dir DIR] [--check]`

use std::path::PathBuf;
use std::process::ExitCode;

use openclaw_gateway::app::{self, Options};

const USAGE: &str = "usage: openclaw-gateway --config FILE [--state-dir DIR] [--check]

  --config FILE      the JSON5 config file (required)
  --state-dir DIR    where the TaskFlow store lives
                     (default: $OPENCLAW_STATE_DIR, else ~/.openclaw)
  --check            validate the config, print the routes it would serve, exit
  --version          print the version and exit";

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
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
