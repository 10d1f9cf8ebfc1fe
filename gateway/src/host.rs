//! The host side of the plugin ABI: the [`Runtime`] a plugin receives.
//!
//! Every method is guarded: a panic in here would cross into the plugin and
//! exit the process, so each body runs inside `catch_unwind` and a fault
//! becomes an error value.

use std::os::fd::{IntoRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use log::{Level, LevelFilter};
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, BoundTaskFlow_TO, GatewaySettings, LogLevel, Runtime, SharedLimits,
    STRUCTURED_LOG_MARK,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::logger;
use crate::secrets::SecretProviders;
use crate::taskflow::Store;

/// What the Gateway hands one plugin.
pub struct HostRuntime {
    pub plugin_id: String,
    /// `None` while a plugin only reports what it would do (`--check`):
    /// no store is open and sessions cannot be bound.
    pub store: Option<Store>,
    pub secrets: Arc<SecretProviders>,
    /// Moves to the plugin on the first `take_listener`.
    pub listener: Mutex<Option<OwnedFd>>,
    pub settings: GatewaySettings,
    /// Set when the Gateway runs in a cluster (`cluster.redis`).
    pub shared_limits: Option<SharedLimits>,
}

impl Runtime for HostRuntime {
    fn bind_session(&self, session_key: RStr<'_>) -> RResult<BoundTaskFlowBox, TaskFlowError> {
        guard(
            || match self.store.as_ref().map(|s| s.bind(session_key.as_str())) {
                Some(Ok(bound)) => RResult::ROk(BoundTaskFlow_TO::from_value(bound, TD_Opaque)),
                Some(Err(e)) => RResult::RErr(e),
                None => RResult::RErr(TaskFlowError::new(
                    ErrorCode::INTERNAL,
                    "no TaskFlow store is open while the config is only checked",
                )),
            },
            || {
                RResult::RErr(TaskFlowError::new(
                    ErrorCode::INTERNAL,
                    "bind_session failed",
                ))
            },
        )
    }

    fn resolve_secret(
        &self,
        source: RStr<'_>,
        provider: RStr<'_>,
        id: RStr<'_>,
    ) -> RResult<RString, RString> {
        guard(
            || match self
                .secrets
                .resolve(source.as_str(), provider.as_str(), id.as_str())
            {
                Ok(secret) => RResult::ROk(RString::from(secret.expose())),
                Err(reason) => RResult::RErr(RString::from(reason)),
            },
            || RResult::RErr(RString::from("secret resolution failed unexpectedly")),
        )
    }

    fn take_listener(&self) -> ROption<i32> {
        guard(
            || match self.listener.lock().take() {
                Some(fd) => ROption::RSome(fd.into_raw_fd()),
                None => ROption::RNone,
            },
            || ROption::RNone,
        )
    }

    fn settings(&self) -> GatewaySettings {
        guard(
            || self.settings.clone(),
            || GatewaySettings {
                trusted_proxies: RVec::new(),
                allow_real_ip_fallback: false,
            },
        )
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let Some(level) = to_level(level) else {
            return;
        };
        // Not `guard`: a failure to log must not try to log.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let target = format!("plugin:{}:{}", self.plugin_id, target.as_str());
            if let Some((message, fields)) = structured(message.as_str()) {
                logger::emit(level, &target, &message, &fields);
                return;
            }
            log::logger().log(
                &log::Record::builder()
                    .level(level)
                    .target(&target)
                    .args(format_args!("{}", message.as_str()))
                    .build(),
            );
        }));
    }

    fn shared_limits(&self) -> ROption<SharedLimits> {
        guard(|| self.shared_limits.clone().into(), || ROption::RNone)
    }

    fn max_log_level(&self) -> LogLevel {
        guard(
            || match log::max_level() {
                LevelFilter::Off => LogLevel::Off,
                LevelFilter::Error => LogLevel::Error,
                LevelFilter::Warn => LogLevel::Warn,
                LevelFilter::Info => LogLevel::Info,
                LevelFilter::Debug => LogLevel::Debug,
                LevelFilter::Trace => LogLevel::Trace,
            },
            || LogLevel::Warn,
        )
    }
}

/// The message and fields of a structured plugin record (see
/// `STRUCTURED_LOG_MARK`); `None` for plain text.
fn structured(message: &str) -> Option<(String, Map<String, Value>)> {
    let payload = message.strip_prefix(STRUCTURED_LOG_MARK)?;
    let mut object = match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        _ => return None,
    };
    let text = match object.remove("message") {
        Some(Value::String(text)) => text,
        _ => return None,
    };
    let fields = match object.remove("fields") {
        Some(Value::Object(fields)) => fields,
        None => Map::new(),
        Some(_) => return None,
    };
    Some((text, fields))
}

fn to_level(level: LogLevel) -> Option<Level> {
    match level {
        LogLevel::Off => None,
        LogLevel::Error => Some(Level::Error),
        LogLevel::Warn => Some(Level::Warn),
        LogLevel::Info => Some(Level::Info),
        LogLevel::Debug => Some(Level::Debug),
        LogLevel::Trace => Some(Level::Trace),
    }
}

/// Runs `f`; if it panics, logs it and returns `fallback()`.
fn guard<T>(f: impl FnOnce() -> T, fallback: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            log::error!(target: "gateway", "a runtime call from a plugin panicked; answered with an error");
            fallback()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_records_carry_their_fields() {
        let msg = format!(r#"{STRUCTURED_LOG_MARK}{{"message":"write","fields":{{"route":"r"}}}}"#);
        let (text, fields) = structured(&msg).unwrap();
        assert_eq!(text, "write");
        assert_eq!(fields["route"], "r");
        assert!(structured("plain text").is_none());
        assert!(structured(&format!("{STRUCTURED_LOG_MARK}not json")).is_none());
    }
}
