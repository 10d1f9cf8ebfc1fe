//! Secret providers: parses the `secrets` config section and resolves SecretRefs
//! (`{source, provider, id}`) through the configured env, file and exec providers.
//!
//! Errors are one line, name the ref (`<source>:<provider>:<id>`) and the provider's reason, and
//! never contain a secret value, a secret file's content or an exec command's stderr.

mod env;
mod exec;
mod file;
mod paths;
mod process;

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod file_tests;

use std::collections::BTreeMap;
use std::fmt;

use jsoncfg::{join, Walker};
use serde_json::Value;

/// The implicit env provider's name when `secrets.defaults.env` is not set.
pub const DEFAULT_ENV_ALIAS: &str = "default";

/// Provider names (and `defaults.env`): they appear in dotted config paths and in messages.
const NAME_RULE: &str = "must match [a-z][a-z0-9_-]{0,63}";

/// Every key any provider accepts; used to report unknown keys when `source` is unusable.
const ALL_PROVIDER_KEYS: &[&str] = &[
    "source",
    "allowlist",
    "path",
    "mode",
    "timeoutMs",
    "maxBytes",
    "allowInsecurePath",
    "command",
    "args",
    "noOutputTimeoutMs",
    "maxOutputBytes",
    "jsonOnly",
    "env",
    "passEnv",
    "trustedDirs",
    "allowSymlinkCommand",
];

/// A secret value. `Debug` prints `Secret(<redacted>)`; there is no `Display` or `Serialize`,
/// so the value only leaves through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One configured provider.
enum Provider {
    Env(env::EnvProvider),
    File(file::FileProvider),
    Exec(exec::ExecProvider),
}

impl Provider {
    fn source(&self) -> &'static str {
        match self {
            Provider::Env(_) => "env",
            Provider::File(_) => "file",
            Provider::Exec(_) => "exec",
        }
    }
}

/// Parsed `secrets` config section: `{ providers?: { <name>: <provider> }, defaults?: { env?: string } }`.
pub struct SecretProviders {
    providers: BTreeMap<String, Provider>,
    default_env: String,
}

impl Default for SecretProviders {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            default_env: DEFAULT_ENV_ALIAS.to_owned(),
        }
    }
}

/// Lists names and sources only: an exec provider's literal `env` map may hold credentials.
impl fmt::Debug for SecretProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources = self.providers.iter().map(|(n, p)| (n, p.source()));
        f.debug_struct("SecretProviders")
            .field("providers", &sources.collect::<BTreeMap<_, _>>())
            .field("default_env", &self.default_env)
            .finish()
    }
}

impl SecretProviders {
    /// Parses the `secrets` value (None = absent = no providers). Records every problem in `w`
    /// with full dotted paths starting at `path` (the caller passes "secrets").
    pub fn parse(w: &mut Walker, path: &str, v: Option<&Value>) -> SecretProviders {
        let mut out = SecretProviders::default();
        let Some(v) = v else { return out };
        let Some(root) = w.object(path, v, &["providers", "defaults"]) else {
            return out;
        };
        if let Some(defaults) = root.get("defaults") {
            let dpath = join(path, "defaults");
            if let Some(d) = w.object(&dpath, defaults, &["env"]) {
                let epath = join(&dpath, "env");
                if let Some(name) = w.text(&epath, d.get("env")) {
                    if valid_name(&name) {
                        out.default_env = name;
                    } else {
                        w.issue(&epath, NAME_RULE);
                    }
                }
            }
        }
        if let Some(providers) = root.get("providers") {
            let ppath = join(path, "providers");
            for (name, pv) in w.map(&ppath, providers).into_iter().flatten() {
                let npath = join(&ppath, name);
                if !valid_name(name) {
                    w.issue(&npath, format!("provider name {NAME_RULE}"));
                    continue;
                }
                if let Some(p) = parse_provider(w, &npath, pv) {
                    out.providers.insert(name.clone(), p);
                }
            }
        }
        out
    }

    /// Resolves a SecretRef against the process environment. The error is a one-line message
    /// naming the ref and the reason, never a secret value or file content.
    pub fn resolve(&self, source: &str, provider: &str, id: &str) -> Result<Secret, String> {
        self.resolve_with_env(source, provider, id, &|name| std::env::var(name).ok())
    }

    /// As [`SecretProviders::resolve`], with every environment lookup (env provider variables,
    /// exec `passEnv`) going through `env`.
    pub fn resolve_with_env(
        &self,
        source: &str,
        provider: &str,
        id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, String> {
        let label = format!("{source}:{provider}:{id}");
        let raw = self
            .resolve_raw(source, provider, id, env)
            .map_err(|reason| one_line(&format!("SecretRef {label} is unresolved: {reason}")))?;
        let value = raw.trim();
        if value.is_empty() {
            return Err(one_line(&format!(
                "SecretRef {label} resolved to an empty value."
            )));
        }
        Ok(Secret::new(value.to_owned()))
    }

    /// The configured provider names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    fn resolve_raw(
        &self,
        source: &str,
        provider: &str,
        id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        let implicit_env;
        let found = match self.providers.get(provider) {
            Some(p) => p,
            None if source == "env" && provider == self.default_env => {
                implicit_env = Provider::Env(env::EnvProvider::implicit());
                &implicit_env
            }
            None => {
                return Err(format!(
                "Secret provider \"{provider}\" is not configured (ref: {source}:{provider}:{id})."
            ))
            }
        };
        if found.source() != source {
            return Err(format!(
                "Secret provider \"{provider}\" has source \"{}\" but ref requests \"{source}\".",
                found.source()
            ));
        }
        match found {
            Provider::Env(p) => p.resolve(provider, id, env),
            Provider::File(p) => p.resolve(provider, id),
            Provider::Exec(p) => p.resolve(provider, id, env),
        }
    }
}

fn parse_provider(w: &mut Walker, path: &str, v: &Value) -> Option<Provider> {
    let map = w.map(path, v)?;
    let spath = join(path, "source");
    let source = w.required(&spath, map.get("source"));
    let before = w.issues.len();
    let provider = match w.choice(&spath, source, &["env", "file", "exec"]) {
        Some("env") => env::parse(w, path, v).map(Provider::Env),
        Some("file") => file::parse(w, path, v).map(Provider::File),
        Some("exec") => exec::parse(w, path, v).map(Provider::Exec),
        _ => {
            w.object(path, v, ALL_PROVIDER_KEYS);
            None
        }
    };
    provider.filter(|_| w.issues.len() == before)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Keeps a message on one line: control characters (newlines included) are escaped.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests;
