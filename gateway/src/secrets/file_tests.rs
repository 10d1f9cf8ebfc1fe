//! Tests for the file provider: JSON and singleValue files in a private temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{json, Value};

use super::tests::{failure, no_env, providers, TempDir, MARKER};
use super::*;

fn file_provider(path: &Path, extra: Value) -> SecretProviders {
    let mut cfg = json!({"source": "file", "path": path.to_str().unwrap(), "timeoutMs": 1000});
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    providers(json!({"providers": {"files": cfg}}))
}

fn resolve_file(p: &SecretProviders, id: &str) -> Result<Secret, String> {
    p.resolve_with_env("file", "files", id, &no_env)
}

#[test]
fn a_json_file_resolves_by_json_pointer() {
    let dir = TempDir::new();
    let doc = json!({"db": {"pass/word": format!(" {MARKER} "), "til~de": "t"}, "n": 5});
    let path = dir.write("s.json", &format!("\u{feff}{doc}"), 0o600);
    let p = file_provider(&path, json!({}));
    let s = resolve_file(&p, "/db/pass~1word").unwrap();
    assert_eq!(s.expose(), MARKER);
    assert!(!format!("{s:?}").contains(MARKER));
    assert_eq!(resolve_file(&p, "/db/til~0de").unwrap().expose(), "t");
}

#[test]
fn a_missing_json_pointer_or_a_non_string_value_is_reported() {
    let dir = TempDir::new();
    let path = dir.write("s.json", &json!({"a": MARKER, "n": 5}).to_string(), 0o600);
    let p = file_provider(&path, json!({}));
    let msg = failure(resolve_file(&p, "/b"), MARKER);
    assert!(msg.starts_with("SecretRef file:files:/b is unresolved: File provider \"files\" has no value at JSON pointer \"/b\""), "{msg}");
    let msg = failure(resolve_file(&p, "a"), MARKER);
    assert!(msg.contains("has no value at JSON pointer \"a\""), "{msg}");
    let msg = failure(resolve_file(&p, "/n"), MARKER);
    assert!(
        msg.contains("value at JSON pointer \"/n\" is not a string."),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_a_json_object_is_refused() {
    let dir = TempDir::new();
    let array = dir.write("a.json", &json!([MARKER]).to_string(), 0o600);
    let broken = dir.write("b.json", &format!("{{\"a\": \"{MARKER}"), 0o600);
    for path in [array, broken] {
        let msg = failure(resolve_file(&file_provider(&path, json!({})), "/a"), MARKER);
        assert!(
            msg.ends_with("File provider \"files\" payload is not a JSON object."),
            "{msg}"
        );
    }
}

#[test]
fn a_single_value_file_loses_one_trailing_newline_and_needs_id_value() {
    let dir = TempDir::new();
    let path = dir.write("token", &format!("{MARKER}\r\n"), 0o400);
    let p = file_provider(&path, json!({"mode": "singleValue"}));
    assert_eq!(resolve_file(&p, "value").unwrap().expose(), MARKER);
    let msg = failure(resolve_file(&p, "/token"), MARKER);
    assert_eq!(
        msg,
        "SecretRef file:files:/token is unresolved: singleValue file provider \"files\" expects ref id \"value\"."
    );
}

#[test]
fn a_missing_file_is_reported_with_its_path() {
    let dir = TempDir::new();
    let path = dir.path().join("absent.json");
    let msg = failure(resolve_file(&file_provider(&path, json!({})), "/a"), MARKER);
    assert!(
        msg.contains(&format!(
            "File provider \"files\" path \"{}\" cannot be read",
            path.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_group_or_world_writable_file_is_refused_unless_allowed() {
    let dir = TempDir::new();
    for mode in [0o620, 0o602] {
        let path = dir.write("s.json", &json!({"a": MARKER}).to_string(), mode);
        let msg = failure(resolve_file(&file_provider(&path, json!({})), "/a"), MARKER);
        assert!(
            msg.contains(&format!("is writable by group or others (mode {mode:04o})")),
            "{msg}"
        );
        let p = file_provider(&path, json!({"allowInsecurePath": true}));
        assert_eq!(resolve_file(&p, "/a").unwrap().expose(), MARKER);
    }
    // Readable by others is allowed.
    let path = dir.write("r.json", &json!({"a": MARKER}).to_string(), 0o644);
    assert!(resolve_file(&file_provider(&path, json!({})), "/a").is_ok());
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    if paths::current_uid() != 0 {
        return; // Only root can give a file away; the rule itself is the same code path.
    }
    let dir = TempDir::new();
    let path = dir.write("s.json", &json!({"a": MARKER}).to_string(), 0o600);
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let msg = failure(resolve_file(&file_provider(&path, json!({})), "/a"), MARKER);
    assert!(
        msg.contains("is owned by uid 65534, not by the current uid 0"),
        "{msg}"
    );
}

#[test]
fn a_file_larger_than_max_bytes_is_refused() {
    let dir = TempDir::new();
    let path = dir.write("s.json", &json!({"a": MARKER}).to_string(), 0o600);
    let msg = failure(
        resolve_file(&file_provider(&path, json!({"maxBytes": 8})), "/a"),
        MARKER,
    );
    assert!(msg.ends_with("exceeds maxBytes (8)."), "{msg}");
}

#[test]
fn a_fifo_is_not_a_regular_file() {
    let dir = TempDir::new();
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !status.is_ok_and(|s| s.success()) {
        return;
    }
    let msg = failure(resolve_file(&file_provider(&fifo, json!({})), "/a"), MARKER);
    assert!(msg.ends_with("is not a regular file."), "{msg}");
}
