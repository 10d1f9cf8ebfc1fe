//! The Gateway's JSON5 config file, as `gateway::config::load` reads it:
//! JSON5 text to a `serde_json::Value`, then the typed walk. A parsed
//! config without issues must be usable; with issues, it must name them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = json5::from_str::<serde_json::Value>(text) else {
        return;
    };
    let parsed = openclaw_gateway::config::parse(&value, Path::new("/tmp"));
    if parsed.issues.is_empty() {
        let config = parsed.config.expect("no issues but no config");
        // Each plugin's config is handed over as JSON text; it must be
        // JSON the plugin can at least try to parse.
        for entry in &config.plugins {
            let _ = openclaw_webhooks::config::parse(&entry.config_json);
        }
    }
});
