//! The Gateway's lifecycle: config, plugin checks, store, listener, plugin
//! start, then signals and an orderly shutdown.
//!
//! Order matters: every config problem (the Gateway's and each plugin's) is
//! found before anything is bound or opened, so a bad config never leaves a
//! half-started Gateway behind.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RDuration, RResult, RStr, RVec};
use openclaw_ffi::module::PluginInstanceBox;
use openclaw_ffi::runtime::{GatewaySettings, Runtime_TO, SharedLimits};
use parking_lot::Mutex;

use crate::admin::{Admin, Phase, Readiness};
use crate::check;
use crate::cluster::url::Service;
use crate::config::{self, Config, GatewaySection, TokenInput};
use crate::host::HostRuntime;
use crate::loader::{self, LoadedPlugin};
use crate::logger;
use crate::metrics::{Exposition, PluginSource};
use crate::taskflow::{Store, StoreOptions};

/// Exit status for a refused config or unusable plugin.
const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure after the config was accepted.
const EXIT_FAILURE: u8 = 1;

pub struct Options {
    pub config: PathBuf,
    pub state_dir: Option<PathBuf>,
    pub check: bool,
}

/// Runs the Gateway until it is told to stop.
pub fn run(options: Options) -> ExitCode {
    let parsed = config::load(&options.config);
    let mut errors: Vec<String> = parsed.issues.iter().map(ToString::to_string).collect();
    let Some(config) = parsed.config else {
        return refuse(&options, errors);
    };
    logger::init(config.log_level, config.log_format);
    // Plugins check their own sections even when the Gateway's has
    // problems, so that one run reports everything.
    let plugins = match check_plugins(&config) {
        Ok(p) => p,
        Err(plugin_errors) => {
            errors.extend(plugin_errors);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return refuse(&options, errors);
    }
    let cluster_lines = match &config.cluster {
        Some(cluster) if options.check => match check::cluster(cluster, &config) {
            Ok(lines) => lines,
            Err(errors) => return refuse(&options, errors),
        },
        Some(_) | None => Vec::new(),
    };
    if options.check {
        return check::print(&options, config, &plugins, &cluster_lines);
    }
    let admin_token = match resolve_admin_token(&config) {
        Ok(token) => token,
        Err(e) => return refuse(&options, vec![e]),
    };
    match serve(&options, config, plugins, admin_token) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!(target: "gateway", "{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A plugin that passed loading and its config check.
pub(crate) struct CheckedPlugin {
    pub loaded: LoadedPlugin,
    pub config_json: String,
    pub routes: Vec<String>,
}

/// Loads every enabled plugin and has it check its config. Collects every
/// problem across all plugins.
fn check_plugins(config: &Config) -> Result<Vec<CheckedPlugin>, Vec<String>> {
    let mut errors = Vec::new();
    let mut checked = Vec::new();
    for entry in config.plugins.iter().filter(|e| e.enabled) {
        let loaded = loader::find(&entry.id, &config.plugin_paths)
            .and_then(|path| loader::load(&entry.id, &path));
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match loaded.module.check_config()(RStr::from_str(&entry.config_json)) {
            RResult::ROk(routes) => checked.push(CheckedPlugin {
                loaded,
                config_json: entry.config_json.clone(),
                routes: routes.into_iter().map(Into::into).collect(),
            }),
            RResult::RErr(issues) => {
                let base = format!("plugins.entries.{}.config", entry.id);
                errors.extend(issues.iter().map(|i| {
                    let path = if i.path.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}.{}", i.path)
                    };
                    format!("{path}: {}", i.message)
                }));
            }
        }
    }
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(errors)
    }
}

/// The admin listener's token, resolved once before anything is bound. An
/// unresolvable token refuses the start: the listener never serves open
/// when a token was asked for.
fn resolve_admin_token(config: &Config) -> Result<Option<String>, String> {
    let Some(token) = config.gateway.admin.as_ref().and_then(|a| a.token.as_ref()) else {
        return Ok(None);
    };
    let value = match token {
        TokenInput::Plain(secret) => secret.expose().to_owned(),
        TokenInput::Ref {
            source,
            provider,
            id,
        } => config
            .secrets
            .resolve(source, provider, id)
            .map_err(|reason| format!("gateway.admin.token: {reason}"))?
            .expose()
            .trim()
            .to_owned(),
    };
    if value.is_empty() {
        return Err("gateway.admin.token: resolved to an empty value".into());
    }
    if value.chars().count() < 16 {
        log::warn!(target: "gateway", "gateway.admin.token is shorter than 16 characters; use a longer one");
    }
    Ok(Some(value))
}

fn refuse(options: &Options, errors: Vec<String>) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "error: {} is not usable ({} problems):",
        options.config.display(),
        errors.len()
    );
    for e in errors {
        let _ = writeln!(err, "  {e}");
    }
    ExitCode::from(EXIT_CONFIG)
}

/// The Gateway settings every plugin receives.
pub(crate) fn gateway_settings(gateway: &GatewaySection) -> GatewaySettings {
    GatewaySettings {
        trusted_proxies: gateway
            .trusted_proxies
            .iter()
            .map(|s| s.as_str().into())
            .collect::<RVec<_>>(),
        allow_real_ip_fallback: gateway.allow_real_ip_fallback,
    }
}

fn state_dir(options: &Options) -> PathBuf {
    if let Some(dir) = &options.state_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("OPENCLAW_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".openclaw")
}

/// Events the main thread waits for after startup.
enum Event {
    Signal(i32),
    Stopped,
}

fn serve(
    options: &Options,
    config: Config,
    plugins: Vec<CheckedPlugin>,
    admin_token: Option<String>,
) -> Result<(), String> {
    let (events_tx, events_rx) = mpsc::channel();
    watch_signals(events_tx.clone())?;

    // The admin listener comes first, so probes see 503 while starting.
    let readiness = Arc::new(Readiness::default());
    let sources = plugins.iter().map(plugin_source).collect();
    let exposition = Arc::new(Exposition::new(Arc::clone(&readiness), sources));
    let _admin = match &config.gateway.admin {
        Some(admin) => {
            let addr = SocketAddr::new(admin.bind, admin.port);
            let admin = Admin::start(
                addr,
                admin_token.as_deref(),
                Arc::clone(&readiness),
                Arc::clone(&exposition),
            )?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "admin listening on http://{}", admin.addr);
            let _ = out.flush();
            drop(out);
            log::info!(target: "gateway", "admin listening on http://{} (/metrics, /healthz, /readyz)", admin.addr);
            Some(admin)
        }
        None => None,
    };

    let mut store_options = StoreOptions::new(crate::migrate::store_path(&state_dir(options)));
    store_options.retention = config.tasks.retention;
    store_options.sweep_interval = config.tasks.sweep_interval;
    store_options.max_store_bytes = config.tasks.max_store_bytes;
    store_options.cache_max_flows = config.tasks.cache_max_flows;
    let path = store_options.path.clone();
    // A StoreError names the store file (or the redacted server URL).
    let store = match &config.cluster {
        Some(cluster) => crate::cluster::store::open(cluster, &config.secrets, store_options)?,
        None => Store::open(store_options).map_err(|e| e.to_string())?,
    };
    // In a cluster, plugins count their limits in the cluster's Redis.
    let shared_limits = match &config.cluster {
        Some(cluster) => {
            let url =
                cluster
                    .redis
                    .url
                    .resolve(Service::Redis, "cluster.redis.url", &config.secrets)?;
            Some(SharedLimits {
                redis_url: url.expose().into(),
                key_prefix: cluster.redis.key_prefix.as_str().into(),
            })
        }
        None => None,
    };
    exposition.store_opened(&store);
    if !store.is_postgres() {
        log::info!(target: "gateway", "TaskFlow store {} holds {} flows", path.display(), store.flow_count());
    }

    let addr = SocketAddr::new(config.gateway.bind, config.gateway.port);
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let mut listener = Some(OwnedFd::from(listener));

    let secrets = Arc::new(config.secrets);
    let settings = gateway_settings(&config.gateway);
    let mut instances: Vec<(String, PluginInstanceBox)> = Vec::new();
    for plugin in plugins {
        let info = &plugin.loaded.info;
        log::info!(
            target: "gateway",
            "loaded plugin {} {} (ffi {}, rev {}, {}) from {}",
            plugin.loaded.id, info.version, info.ffi_version, info.git_revision, info.profile,
            plugin.loaded.path.display()
        );
        let runtime = HostRuntime {
            plugin_id: plugin.loaded.id.clone(),
            store: Some(store.clone()),
            secrets: Arc::clone(&secrets),
            listener: Mutex::new(listener.take()),
            settings: settings.clone(),
            shared_limits: shared_limits.clone(),
        };
        let runtime = Runtime_TO::from_value(runtime, TD_Opaque);
        match plugin.loaded.module.start()(runtime, RStr::from_str(&plugin.config_json)) {
            RResult::ROk(instance) => instances.push((plugin.loaded.id.clone(), instance)),
            RResult::RErr(e) => {
                stop_all(&instances, config.gateway.shutdown_grace);
                store.close();
                return Err(format!("plugin {} failed to start: {e}", plugin.loaded.id));
            }
        }
    }
    // Every plugin serves: ready, before the line that tells a supervisor
    // the Gateway is up.
    readiness.set(Phase::Ready);
    if listener.take().is_some() {
        // No plugin took the socket: close it rather than leave clients
        // hanging in its backlog.
        log::warn!(target: "gateway", "no enabled plugin serves HTTP; not listening");
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
        drop(out);
        log::info!(target: "gateway", "listening on http://{local}");
    }

    let grace = config.gateway.shutdown_grace;
    let instances = Arc::new(instances);
    let mut stopping = false;
    for event in events_rx.iter() {
        match event {
            Event::Signal(sig) if !stopping => {
                stopping = true;
                // Before any listener closes, so a load balancer stops
                // sending here while in-flight requests drain.
                readiness.set(Phase::Draining);
                log::info!(
                    target: "gateway",
                    "received signal {sig}; draining in-flight requests (grace {} ms)",
                    grace.as_millis()
                );
                let (instances, store, done) =
                    (Arc::clone(&instances), store.clone(), events_tx.clone());
                std::thread::spawn(move || {
                    stop_all(&instances, grace);
                    store.close();
                    let _ = done.send(Event::Stopped);
                });
            }
            Event::Signal(sig) => {
                log::warn!(target: "gateway", "received signal {sig} again; exiting now");
                std::process::exit(130);
            }
            Event::Stopped => {
                log::info!(target: "gateway", "stopped");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// How the metrics report a plugin; logs when it has no metrics.
fn plugin_source(plugin: &CheckedPlugin) -> PluginSource {
    let info = &plugin.loaded.info;
    let metrics = plugin.loaded.metrics;
    if metrics.is_none() {
        log::warn!(
            target: "gateway",
            "plugin {} (ffi {}) reports no metrics: it was built before plugins could export them",
            plugin.loaded.id, info.ffi_version
        );
    }
    PluginSource {
        id: plugin.loaded.id.clone(),
        version: info.version.to_string(),
        ffi_version: info.ffi_version.to_string(),
        metrics,
    }
}

/// Stops every plugin at once, so the whole drain takes one `grace`.
fn stop_all(instances: &[(String, PluginInstanceBox)], grace: std::time::Duration) {
    std::thread::scope(|scope| {
        for (id, instance) in instances {
            scope.spawn(move || {
                if let RResult::RErr(e) = instance.stop(RDuration::from(grace)) {
                    log::warn!(target: "gateway", "plugin {id} did not stop cleanly: {e}");
                }
            });
        }
    });
}

fn watch_signals(events: mpsc::Sender<Event>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if events.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}
