//! Forwards the plugin's log records and panic messages to the Gateway's
//! logger. A cdylib has its own copy of the `log` facade and its own panic
//! hook; without this they would print nowhere or bypass the host's format.

use std::sync::Arc;

use abi_stable::std_types::RStr;
use log::{Level, LevelFilter, Log, Metadata, Record};
use openclaw_ffi::runtime::{LogLevel, RuntimeBox, STRUCTURED_LOG_MARK};
use serde_json::{Map, Value};

struct Forward {
    runtime: Arc<RuntimeBox>,
}

impl Log for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        self.runtime.log(
            to_ffi(record.level()),
            RStr::from_str(record.target()),
            RStr::from_str(&message),
        );
    }

    fn flush(&self) {}
}

fn to_ffi(level: Level) -> LogLevel {
    match level {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warn,
        Level::Info => LogLevel::Info,
        Level::Debug => LogLevel::Debug,
        Level::Trace => LogLevel::Trace,
    }
}

fn to_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Installs the forwarder and the panic hook. Safe to call again (a second
/// start keeps the first logger).
pub fn install(runtime: Arc<RuntimeBox>) {
    log::set_max_level(to_filter(runtime.max_log_level()));
    let _ = log::set_boxed_logger(Box::new(Forward { runtime }));
    std::panic::set_hook(Box::new(|info| {
        log::error!(target: "webhooks", "panic inside the plugin: {info}");
    }));
}

/// Logs `message` with structured `fields` (names and JSON values), which
/// the Gateway writes as fields of the record rather than inside its text.
pub fn structured(level: Level, target: &str, message: &str, fields: Map<String, Value>) {
    if level > log::max_level() {
        return;
    }
    let payload = serde_json::json!({"message": message, "fields": fields});
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{STRUCTURED_LOG_MARK}{payload}"))
            .build(),
    );
}
