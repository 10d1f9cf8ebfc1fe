//! The Gateway's JSON5 config file, parsed into domain types.
//!
//! Every problem is collected with its full dotted path before the Gateway
//! refuses to start; nothing is bound, opened or spawned while parsing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsoncfg::{join, Issue, Walker};
use log::LevelFilter;
use serde_json::Value;

use crate::cluster::config::ClusterSection;
use crate::logger::Format;
use crate::secrets::{Secret, SecretProviders};

pub const DEFAULT_PORT: u16 = 18789;
pub const DEFAULT_ADMIN_PORT: u16 = 18790;

#[derive(Debug)]
pub struct Config {
    pub gateway: GatewaySection,
    pub secrets: SecretProviders,
    /// Directories (or library files) searched for plugin libraries,
    /// relative entries resolved against the config file's directory.
    pub plugin_paths: Vec<PathBuf>,
    /// Every entry under `plugins.entries`, enabled or not, in file order.
    pub plugins: Vec<PluginEntry>,
    pub tasks: TaskSettings,
    pub log_level: LevelFilter,
    pub log_format: Format,
    /// `cluster`: the shared PostgreSQL and Redis of several Gateways;
    /// absent, the embedded store and in-process limits.
    pub cluster: Option<ClusterSection>,
}

#[derive(Debug, Clone)]
pub struct GatewaySection {
    pub bind: IpAddr,
    pub port: u16,
    /// IP addresses or CIDR blocks, validated here, interpreted by plugins.
    pub trusted_proxies: Vec<String>,
    pub allow_real_ip_fallback: bool,
    /// How long SIGTERM waits for in-flight requests before closing them.
    pub shutdown_grace: Duration,
    /// `gateway.admin`: the metrics and probes listener; absent, none.
    pub admin: Option<AdminSection>,
}

/// `gateway.admin`: where `/metrics`, `/healthz` and `/readyz` are served.
#[derive(Debug, Clone)]
pub struct AdminSection {
    pub bind: IpAddr,
    pub port: u16,
    pub token: Option<TokenInput>,
}

/// The admin bearer token: literal, or a SecretRef resolved at startup.
#[derive(Debug, Clone)]
pub enum TokenInput {
    Plain(Secret),
    Ref {
        source: String,
        provider: String,
        id: String,
    },
}

#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub id: String,
    pub enabled: bool,
    /// The entry's `config` object as JSON text (`{}` when absent).
    pub config_json: String,
}

#[derive(Debug, Clone, Copy)]
pub struct TaskSettings {
    /// Terminal flows (and their tasks) are pruned after this.
    pub retention: Duration,
    /// How often the retention sweep runs.
    pub sweep_interval: Duration,
    /// Optional quota on the store file; writes beyond it fail with 503.
    pub max_store_bytes: Option<u64>,
    /// Most flows kept in memory; the others are read from disk.
    pub cache_max_flows: usize,
}

/// A parsed config and every problem found in it. `config` is built with
/// defaults in place of bad values, so that plugin sections can still be
/// checked and all problems reported together; it is only usable when
/// `issues` is empty.
pub struct Parsed {
    pub config: Option<Config>,
    pub issues: Vec<Issue>,
}

/// Reads and parses a config file. A file that cannot be read or is not
/// JSON5 is a single issue.
pub fn load(file: &Path) -> Parsed {
    let one = |message: String| Parsed {
        config: None,
        issues: vec![Issue {
            path: String::new(),
            message,
        }],
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return one(format!("cannot read {}: {e}", file.display())),
    };
    if exceeds_depth(&text, MAX_NESTING) {
        return one(format!(
            "{} is nested deeper than {MAX_NESTING} levels",
            file.display()
        ));
    }
    let value: Value = match json5::from_str(&text) {
        Ok(v) => v,
        Err(e) => return one(format!("{} is not valid JSON5: {e}", file.display())),
    };
    let base = file.parent().unwrap_or(Path::new("."));
    parse(&value, base)
}

/// The deepest nesting of objects and arrays a config file may have. The
/// JSON5 parser recurses once per level without a limit of its own, so a
/// hostile file could otherwise overflow the stack; plugins parse their
/// section with serde_json, whose limit is 128 as well.
pub const MAX_NESTING: usize = 128;

/// Whether `text` nests `[`/`{` deeper than `max`, ignoring brackets inside
/// strings (either quote, with escapes) and comments.
fn exceeds_depth(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Parses a config value; relative plugin paths resolve against `base`.
pub fn parse(value: &Value, base: &Path) -> Parsed {
    let mut w = Walker::new();
    let config = parse_root(&mut w, value, base);
    Parsed {
        config,
        issues: w.issues,
    }
}

fn parse_root(w: &mut Walker, v: &Value, base: &Path) -> Option<Config> {
    let root = w.object(
        "",
        v,
        &[
            "gateway", "secrets", "plugins", "tasks", "logging", "cluster",
        ],
    )?;
    let gateway = gateway::parse_gateway(w, root.get("gateway"));
    let secrets = SecretProviders::parse(w, "secrets", root.get("secrets"));
    let (plugin_paths, plugins) = parse_plugins(w, root.get("plugins"), base);
    let tasks = parse_tasks(w, root.get("tasks"));
    let (log_level, log_format) = parse_logging(w, root.get("logging"));
    let cluster = root
        .get("cluster")
        .and_then(|v| crate::cluster::config::parse(w, "cluster", v));
    Some(Config {
        gateway,
        secrets,
        plugin_paths,
        plugins,
        tasks,
        log_level,
        log_format,
        cluster,
    })
}

/// A SecretRef object `{source, provider, id}` at `path` (as
/// `(source, provider, id)`); anything else is an issue that says a string
/// would do too.
pub(crate) fn parse_secret_ref(
    w: &mut Walker,
    path: &str,
    v: &Value,
) -> Option<(String, String, String)> {
    if !v.is_object() {
        w.issue(
            path,
            "expected a string or a SecretRef object {source, provider, id}",
        );
        return None;
    }
    let obj = w.object(path, v, &["source", "provider", "id"])?;
    let source_path = join(path, "source");
    let source = w.required(&source_path, obj.get("source"));
    let source = w.choice(&source_path, source, &["env", "file", "exec"]);
    let provider_path = join(path, "provider");
    let provider = w.required(&provider_path, obj.get("provider"));
    let provider = w.text(&provider_path, provider);
    let id_path = join(path, "id");
    let id = w.required(&id_path, obj.get("id"));
    let id = w.text(&id_path, id);
    Some((source?.to_owned(), provider?, id?))
}

fn parse_plugins(
    w: &mut Walker,
    v: Option<&Value>,
    base: &Path,
) -> (Vec<PathBuf>, Vec<PluginEntry>) {
    let mut paths = Vec::new();
    let mut entries = Vec::new();
    let Some(obj) = v.and_then(|v| w.object("plugins", v, &["load", "entries"])) else {
        return (paths, entries);
    };
    if let Some(load) = obj
        .get("load")
        .and_then(|v| w.object("plugins.load", v, &["paths"]))
    {
        if let Some(list) = w.text_list("plugins.load.paths", load.get("paths")) {
            paths = list.iter().map(|p| base.join(expand_home(p))).collect();
        }
    }
    if let Some(map) = obj.get("entries").and_then(|v| w.map("plugins.entries", v)) {
        for (id, entry) in map {
            let path = join("plugins.entries", id);
            let Some(e) = w.object(&path, entry, &["enabled", "config"]) else {
                continue;
            };
            let enabled = w
                .bool(&join(&path, "enabled"), e.get("enabled"))
                .unwrap_or(false);
            let config_json = match e.get("config") {
                None => "{}".to_owned(),
                Some(c) if c.is_object() => c.to_string(),
                Some(c) => {
                    w.issue(
                        &join(&path, "config"),
                        format!("expected an object, got {}", jsoncfg::type_name(c)),
                    );
                    continue;
                }
            };
            entries.push(PluginEntry {
                id: id.clone(),
                enabled,
                config_json,
            });
        }
    }
    (paths, entries)
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn parse_tasks(w: &mut Walker, v: Option<&Value>) -> TaskSettings {
    let mut tasks = TaskSettings {
        retention: Duration::from_secs(7 * 24 * 3600),
        sweep_interval: Duration::from_secs(60),
        max_store_bytes: None,
        cache_max_flows: crate::taskflow::DEFAULT_CACHE_FLOWS,
    };
    let keys = [
        "retentionMs",
        "sweepIntervalMs",
        "maxStoreBytes",
        "cacheMaxFlows",
    ];
    let Some(obj) = v.and_then(|v| w.object("tasks", v, &keys)) else {
        return tasks;
    };
    let year_ms = 366 * 24 * 3600 * 1000;
    if let Some(ms) = w.integer("tasks.retentionMs", obj.get("retentionMs"), 1, 10 * year_ms) {
        tasks.retention = Duration::from_millis(ms);
    }
    if let Some(ms) = w.integer(
        "tasks.sweepIntervalMs",
        obj.get("sweepIntervalMs"),
        100,
        24 * 3600 * 1000,
    ) {
        tasks.sweep_interval = Duration::from_millis(ms);
    }
    tasks.max_store_bytes = w.integer(
        "tasks.maxStoreBytes",
        obj.get("maxStoreBytes"),
        65_536,
        u64::MAX,
    );
    if let Some(n) = w.integer(
        "tasks.cacheMaxFlows",
        obj.get("cacheMaxFlows"),
        1,
        10_000_000,
    ) {
        tasks.cache_max_flows = usize::try_from(n).unwrap_or(usize::MAX);
    }
    tasks
}

fn parse_logging(w: &mut Walker, v: Option<&Value>) -> (LevelFilter, Format) {
    let Some(obj) = v.and_then(|v| w.object("logging", v, &["level", "format"])) else {
        return (LevelFilter::Info, Format::Text);
    };
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    let level = match w.choice("logging.level", obj.get("level"), &levels) {
        Some(level) => level.parse().unwrap_or(LevelFilter::Info),
        None => LevelFilter::Info,
    };
    let format = match w.choice("logging.format", obj.get("format"), &["text", "json"]) {
        Some("json") => Format::Json,
        _ => Format::Text,
    };
    (level, format)
}

mod gateway;

#[cfg(test)]
mod tests;
