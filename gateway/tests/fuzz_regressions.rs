//! Gateway config inputs found by the `gateway_config` fuzz target (see
//! `fuzz/README.md`), pinned as tests. Every malformed config must be a
//! clear issue, never a panic or a stack overflow.

use std::path::{Path, PathBuf};

use openclaw_gateway::config;

fn regression(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/gateway_config")
        .join(name)
}

fn issues_of(text: &str) -> Vec<String> {
    let value: serde_json::Value = match json5::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("not valid JSON5: {e}")],
    };
    let parsed = config::parse(&value, Path::new("/etc/openclaw"));
    parsed.issues.iter().map(ToString::to_string).collect()
}

/// 100,000 unclosed `[`: `json5` 1.3 recurses once per level with no depth
/// limit, so this used to overflow the stack and abort the Gateway
/// (SIGABRT) instead of reporting an issue; `config::load` now refuses
/// nesting deeper than `MAX_NESTING` before parsing.
#[test]
fn a_config_file_nested_a_hundred_thousand_deep_is_one_clear_issue() {
    let path = regression("deep_nesting_stack_overflow.json5");
    let parsed = config::load(&path);
    assert!(parsed.config.is_none());
    assert_eq!(parsed.issues.len(), 1, "{:?}", parsed.issues);
    assert!(parsed.issues[0].path.is_empty());
    assert!(parsed.issues[0]
        .message
        .contains("nested deeper than 128 levels"));
}

#[test]
fn moderately_deep_plugin_config_reaches_the_plugin_as_json_it_refuses() {
    // Deeper than serde_json's limit of 128, shallow enough for json5.
    let nested = "[".repeat(300) + &"]".repeat(300);
    let text = format!("{{ plugins: {{ entries: {{ webhooks: {{ enabled: true, config: {{ routes: {nested} }} }} }} }} }}");
    let value: serde_json::Value = json5::from_str(&text).unwrap();
    let parsed = config::parse(&value, Path::new("/etc/openclaw"));
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let entry = &parsed.config.unwrap().plugins[0];
    let issues = openclaw_config_json_issues(&entry.config_json);
    assert!(issues, "the plugin must refuse JSON nested deeper than 128");
}

/// Whether `serde_json` (the plugin's parser) refuses the text.
fn openclaw_config_json_issues(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_err()
}

#[test]
fn odd_json5_values_are_issues_not_panics() {
    let cases = [
        "[]",
        "null",
        "{ gateway: { port: -1 } }",
        "{ gateway: { port: 1e400 } }",
        "{ gateway: { port: Infinity, shutdownGraceMs: NaN } }",
        "{ gateway: { port: 0x10000, bind: '::ffff:1.2.3.4%eth0' } }",
        "{ gateway: { trustedProxies: ['10.0.0.1/+8', '::/129', '', '1.2.3.4/'] } }",
        "{ tasks: { maxStoreBytes: 18446744073709551616, retentionMs: 1.5 } }",
        "{ plugins: { entries: { '': { config: null }, 'x\\u0000': 7 } } }",
        "{ logging: { level: 'INFO ' }, secrets: { providers: { A: {}, b: { source: 'vault' } } } }",
    ];
    for text in cases {
        let issues = issues_of(text);
        assert!(!issues.is_empty(), "accepted: {text}");
    }
}
