//! The FFI edge: the exported root module and the running instance.
//!
//! Each exported function converts R-types, runs one ordinary function
//! inside `catch_unwind`, and converts the result back. A panic that reached
//! the boundary would exit the Gateway, so none may.

use std::net::TcpListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::export_root_module;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_extern_fn;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RDuration, ROption, RResult, RStr, RString, RVec};
use openclaw_ffi::module::{
    BuildInfo, ConfigIssue, PluginInstance, PluginInstanceBox, PluginInstance_TO, PluginMod,
    PluginMod_Ref, FFI_VERSION,
};
use openclaw_ffi::runtime::RuntimeBox;

use crate::callbacks::Dispatcher;
use crate::server::Server;
use crate::{config, logging, metrics as plugin_metrics, routes, server, PLUGIN_ID};

#[export_root_module]
#[allow(unsafe_code)]
pub fn get_library() -> PluginMod_Ref {
    PluginMod {
        plugin_id,
        build_info,
        check_config,
        start,
        check_start,
        metrics,
    }
    .leak_into_prefix()
}

#[sabi_extern_fn]
fn plugin_id() -> RStr<'static> {
    RStr::from_str(PLUGIN_ID)
}

#[sabi_extern_fn]
fn build_info() -> BuildInfo {
    let info = || BuildInfo {
        package: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ffi_version: FFI_VERSION.into(),
        git_revision: env!("OPENCLAW_GIT_REVISION").into(),
        profile: env!("OPENCLAW_BUILD_PROFILE").into(),
    };
    catch_unwind(info).unwrap_or_else(|_| BuildInfo {
        package: RString::new(),
        version: RString::new(),
        ffi_version: RString::new(),
        git_revision: RString::new(),
        profile: RString::new(),
    })
}

#[sabi_extern_fn]
fn metrics() -> RString {
    catch_unwind(plugin_metrics::exposition)
        .unwrap_or_default()
        .into()
}

#[sabi_extern_fn]
fn check_config(config_json: RStr<'_>) -> RResult<RVec<RString>, RVec<ConfigIssue>> {
    let checked = catch_unwind(|| {
        config::parse(config_json.as_str()).map(|config| {
            config
                .routes
                .iter()
                .map(|r| {
                    let refs = r
                        .secrets
                        .iter()
                        .any(|s| matches!(s, config::SecretInput::Ref(_)))
                        || r.signing.as_ref().is_some_and(|s| {
                            s.secrets
                                .iter()
                                .any(|s| matches!(s, config::SecretInput::Ref(_)))
                        });
                    if r.enabled && refs {
                        format!(
                            "{} (its SecretRefs are resolved only at start)",
                            routes::describe(r)
                        )
                    } else {
                        routes::describe(r)
                    }
                })
                .collect()
        })
    });
    lines_or_issues(checked)
}

#[sabi_extern_fn]
fn check_start(
    runtime: RuntimeBox,
    config_json: RStr<'_>,
) -> RResult<RVec<RString>, RVec<ConfigIssue>> {
    let checked = catch_unwind(AssertUnwindSafe(|| {
        config::parse(config_json.as_str()).map(|config| routes::check(&runtime, config))
    }));
    lines_or_issues(checked)
}

/// A config check's outcome across the boundary: lines, or every issue.
fn lines_or_issues(
    checked: std::thread::Result<Result<Vec<String>, Vec<jsoncfg::Issue>>>,
) -> RResult<RVec<RString>, RVec<ConfigIssue>> {
    match checked {
        Ok(Ok(lines)) => RResult::ROk(lines.into_iter().map(RString::from).collect()),
        Ok(Err(issues)) => RResult::RErr(
            issues
                .into_iter()
                .map(|i| ConfigIssue {
                    path: i.path.into(),
                    message: i.message.into(),
                })
                .collect(),
        ),
        Err(_) => RResult::RErr(RVec::from(vec![ConfigIssue {
            path: RString::new(),
            message: "internal error while checking the config".into(),
        }])),
    }
}

#[sabi_extern_fn]
fn start(runtime: RuntimeBox, config_json: RStr<'_>) -> RResult<PluginInstanceBox, RString> {
    let started = catch_unwind(AssertUnwindSafe(|| {
        start_inner(runtime, config_json.as_str())
    }));
    match started {
        Ok(Ok((server, callbacks))) => RResult::ROk(PluginInstance_TO::from_value(
            Instance { server, callbacks },
            TD_Opaque,
        )),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(_) => RResult::RErr("the webhooks plugin panicked while starting".into()),
    }
}

fn start_inner(runtime: RuntimeBox, config_json: &str) -> Result<(Server, Dispatcher), String> {
    let runtime = Arc::new(runtime);
    logging::install(Arc::clone(&runtime));
    let config = config::parse(config_json).map_err(|issues| {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        format!("invalid webhooks config: {}", list.join("; "))
    })?;
    let workers = config.workers;
    let state = routes::build(&runtime, config)?;
    plugin_metrics::publish(state.metrics.registry());
    let ROption::RSome(fd) = runtime.take_listener() else {
        return Err("the Gateway handed over no listener".into());
    };
    let listener = listener_from_fd(fd)?;
    // Subscribed before the server serves: every write it acknowledges
    // has its events.
    let callbacks = Dispatcher::start(
        state
            .routes
            .values()
            .filter_map(|r| Some((Arc::clone(r.callbacks.as_ref()?), Arc::clone(&r.flows))))
            .collect(),
    )?;
    let server = server::start(listener, state, workers)?;
    Ok((server, callbacks))
}

/// Takes ownership of the socket the Gateway bound for us.
#[allow(unsafe_code)]
fn listener_from_fd(fd: i32) -> Result<TcpListener, String> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(format!("invalid listener descriptor {fd}"));
    }
    // SAFETY: the Gateway moved ownership of this open, listening socket to
    // us through `take_listener`, which hands it out at most once.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .map_err(|e| format!("the handed-over listener is unusable: {e}"))?;
    Ok(listener)
}

struct Instance {
    server: Server,
    callbacks: Dispatcher,
}

impl PluginInstance for Instance {
    fn stop(&self, grace: RDuration) -> RResult<(), RString> {
        // Requests drain first: the writes they finish still get their
        // events into the outbox, delivered after the next start.
        let stopped = catch_unwind(AssertUnwindSafe(|| {
            self.server.stop(grace.into());
            self.callbacks.stop();
        }));
        match stopped {
            Ok(()) => RResult::ROk(()),
            Err(_) => RResult::RErr("the webhooks plugin panicked while stopping".into()),
        }
    }
}
