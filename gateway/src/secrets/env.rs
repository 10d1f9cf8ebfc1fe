//! The `env` provider: secrets read from environment variables, optionally allowlisted.

use jsoncfg::{join, Walker};
use serde_json::Value;

/// `{ source: "env", allowlist?: string[] }`.
pub(super) struct EnvProvider {
    /// Exact variable names this provider may read; `None` allows any.
    allowlist: Option<Vec<String>>,
}

pub(super) fn parse(w: &mut Walker, path: &str, v: &Value) -> Option<EnvProvider> {
    let map = w.object(path, v, &["source", "allowlist"])?;
    let allowlist = w.text_list(&join(path, "allowlist"), map.get("allowlist"));
    Some(EnvProvider { allowlist })
}

impl EnvProvider {
    /// The provider used for the default env alias when none is configured under that name.
    pub(super) fn implicit() -> Self {
        Self { allowlist: None }
    }

    pub(super) fn resolve(
        &self,
        provider: &str,
        id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        if let Some(allowlist) = &self.allowlist {
            if !allowlist.iter().any(|name| name == id) {
                return Err(format!(
                    "Environment variable \"{id}\" is not allowlisted in secrets.providers.{provider}.allowlist."
                ));
            }
        }
        // Names that no environment can hold are treated as missing rather than looked up.
        let usable = !id.is_empty() && !id.contains(['=', '\0']);
        match usable.then(|| env(id)).flatten() {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(format!(
                "Environment variable \"{id}\" is missing or empty."
            )),
        }
    }
}
