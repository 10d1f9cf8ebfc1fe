//! Tests for config parsing, provider lookup and the env provider, plus the test helpers
//! (temporary directories, config building, leak checks) shared with the file and exec tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use jsoncfg::Walker;
use serde_json::{json, Value};

use super::*;

/// A marker that stands for secret material: it must never show up in an error or in Debug.
pub(super) const MARKER: &str = "s3cr3t-MARKER-7f3a";

/// A private temporary directory (mode 0700), removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("openclaw-secrets-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file with the given mode and returns its path.
    pub(super) fn write(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Parses a `secrets` section that must be valid.
pub(super) fn providers(v: Value) -> SecretProviders {
    let mut w = Walker::new();
    let p = SecretProviders::parse(&mut w, "secrets", Some(&v));
    assert!(w.issues.is_empty(), "unexpected issues: {:?}", w.issues);
    p
}

/// Asserts that a resolution failed without leaking `secret`, and returns the message.
pub(super) fn failure(result: Result<Secret, String>, secret: &str) -> String {
    let message = result.expect_err("expected the SecretRef to be unresolved");
    assert!(!message.contains(secret), "secret leaked: {message}");
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
    message
}

fn issues(v: Value) -> Vec<String> {
    let mut w = Walker::new();
    SecretProviders::parse(&mut w, "secrets", Some(&v));
    w.issues.iter().map(ToString::to_string).collect()
}

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

fn marker_env(name: &str) -> Option<String> {
    (name == "MY_VAR").then(|| format!("  {MARKER}\n"))
}

#[test]
fn an_absent_section_has_no_providers() {
    let mut w = Walker::new();
    let p = SecretProviders::parse(&mut w, "secrets", None);
    assert!(w.is_clean());
    assert!(p.names().is_empty());
}

#[test]
fn every_config_problem_is_reported_at_once_with_its_dotted_path() {
    let found = issues(json!({
        "providers": {
            "vault": {"source": "exec", "command": "bin/vault", "timeoutMs": 0, "args": ["a", 1],
                      "env": {"TOKEN": 5}, "jsonOnly": "yes", "extra": true, "passEnv": ["A=B"]},
            "files": {"source": "file", "path": "relative.json", "mode": "yaml", "maxBytes": "big"},
            "plain": {"source": "env", "allowlist": "MY_VAR", "path": "/x"},
            "odd": {"source": "store", "typo": 1},
            "nosource": {"allowlist": []},
            "Bad.Name": {"source": "env"},
            "scalar": 7
        },
        "defaults": {"env": 3, "file": "x"},
        "resolution": {}
    }));
    let expected = [
        "secrets.resolution: unknown key",
        "secrets.defaults.file: unknown key",
        "secrets.defaults.env: expected a string, got number",
        "secrets.providers.Bad.Name: provider name must match [a-z][a-z0-9_-]{0,63}",
        "secrets.providers.files.path: must be an absolute path (\"~/\" is expanded from HOME)",
        "secrets.providers.files.mode: expected one of json, singleValue",
        "secrets.providers.files.maxBytes: expected a number, got string",
        "secrets.providers.nosource.source: is required",
        "secrets.providers.odd.source: expected one of env, file, exec",
        "secrets.providers.odd.typo: unknown key",
        "secrets.providers.plain.path: unknown key",
        "secrets.providers.plain.allowlist: expected an array, got string",
        "secrets.providers.scalar: expected an object, got number",
        "secrets.providers.vault.extra: unknown key",
        "secrets.providers.vault.command: must be an absolute path (\"~/\" is expanded from HOME)",
        "secrets.providers.vault.args.1: expected a string, got number",
        "secrets.providers.vault.timeoutMs: expected a whole number from 1 to 120000",
        "secrets.providers.vault.jsonOnly: expected a boolean, got string",
        "secrets.providers.vault.env.TOKEN: expected a string, got number",
        "secrets.providers.vault.passEnv.0: is not a valid environment variable name",
    ];
    let mut sorted_found = found.clone();
    sorted_found.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    sorted_expected.sort();
    assert_eq!(sorted_found, sorted_expected, "found in order: {found:#?}");
}

#[test]
fn required_keys_are_reported() {
    let found = issues(json!({"providers": {"f": {"source": "file"}, "x": {"source": "exec"}}}));
    assert_eq!(
        found,
        [
            "secrets.providers.f.path: is required",
            "secrets.providers.x.command: is required"
        ]
    );
}

#[test]
fn valid_providers_are_listed_by_name() {
    let p = providers(json!({
        "providers": {
            "vault": {"source": "exec", "command": "/usr/bin/vault", "args": ["", " x "],
                      "timeoutMs": 120000, "passEnv": ["PATH"], "trustedDirs": ["/usr/bin"]},
            "files": {"source": "file", "path": "/etc/secrets.json", "mode": "singleValue"},
            "plain": {"source": "env", "allowlist": ["MY_VAR"]}
        },
        "defaults": {"env": "plain"}
    }));
    assert_eq!(p.names(), ["files", "plain", "vault"]);
    let debug = format!("{p:?}");
    assert!(debug.contains("\"vault\": \"exec\""), "{debug}");
}

#[test]
fn secret_debug_is_redacted() {
    let s = Secret::new(MARKER.to_owned());
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    assert_eq!(s.expose(), MARKER);
}

#[test]
fn the_implicit_default_env_provider_resolves_and_trims() {
    let p = SecretProviders::default();
    let s = p
        .resolve_with_env("env", "default", "MY_VAR", &marker_env)
        .unwrap();
    assert_eq!(s.expose(), MARKER);
    assert!(!format!("{s:?}").contains(MARKER));
}

#[test]
fn a_missing_variable_is_reported_with_the_ref() {
    let p = SecretProviders::default();
    let msg = failure(
        p.resolve_with_env("env", "default", "MY_VAR", &no_env),
        MARKER,
    );
    assert_eq!(
        msg,
        "SecretRef env:default:MY_VAR is unresolved: Environment variable \"MY_VAR\" is missing or empty."
    );
}

#[test]
fn a_blank_variable_resolves_to_an_empty_value() {
    let p = SecretProviders::default();
    let blank = |_: &str| Some("  \t".to_owned());
    let msg = failure(
        p.resolve_with_env("env", "default", "MY_VAR", &blank),
        MARKER,
    );
    assert_eq!(
        msg,
        "SecretRef env:default:MY_VAR resolved to an empty value."
    );
}

#[test]
fn a_variable_outside_the_allowlist_is_refused() {
    let p = providers(json!({"providers": {"plain": {"source": "env", "allowlist": ["OTHER"]}}}));
    let msg = failure(
        p.resolve_with_env("env", "plain", "MY_VAR", &marker_env),
        MARKER,
    );
    assert_eq!(
        msg,
        "SecretRef env:plain:MY_VAR is unresolved: Environment variable \"MY_VAR\" is not allowlisted in secrets.providers.plain.allowlist."
    );
}

#[test]
fn the_default_env_alias_follows_the_config() {
    let p = providers(json!({"defaults": {"env": "sys"}}));
    assert!(p
        .resolve_with_env("env", "sys", "MY_VAR", &marker_env)
        .is_ok());
    let msg = failure(
        p.resolve_with_env("env", "default", "MY_VAR", &marker_env),
        MARKER,
    );
    assert_eq!(
        msg,
        "SecretRef env:default:MY_VAR is unresolved: Secret provider \"default\" is not configured (ref: env:default:MY_VAR)."
    );
}

#[test]
fn unknown_providers_and_source_mismatches_are_refused() {
    let p = providers(json!({"providers": {"plain": {"source": "env"}}}));
    let msg = failure(
        p.resolve_with_env("file", "default", "/a", &marker_env),
        MARKER,
    );
    assert!(
        msg.contains("Secret provider \"default\" is not configured (ref: file:default:/a)."),
        "{msg}"
    );
    let msg = failure(
        p.resolve_with_env("file", "plain", "/a", &marker_env),
        MARKER,
    );
    assert_eq!(
        msg,
        "SecretRef file:plain:/a is unresolved: Secret provider \"plain\" has source \"env\" but ref requests \"file\"."
    );
}

#[test]
fn control_characters_in_a_ref_are_escaped_to_keep_one_line() {
    let p = SecretProviders::default();
    let msg = failure(
        p.resolve_with_env("env", "default", "A\nB", &no_env),
        MARKER,
    );
    assert!(msg.contains("A\\nB"), "{msg}");
}
