//! The `file` provider: secrets read from one file, either as a single value or out of a JSON
//! object by JSON Pointer, with ownership/permission checks and size and time bounds.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use jsoncfg::{join, Walker};
use serde_json::Value;

use super::paths;

pub(super) const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub(super) const MAX_TIMEOUT_MS: u64 = 120_000;
pub(super) const DEFAULT_MAX_BYTES: u64 = 1_048_576;
pub(super) const MAX_MAX_BYTES: u64 = 16 * 1_048_576;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The file is a JSON object; the ref id is a JSON Pointer into it.
    Json,
    /// The whole file is the secret; the ref id must be `value`.
    SingleValue,
}

/// `{ source: "file", path, mode?, timeoutMs?, maxBytes?, allowInsecurePath? }`.
///
/// Unless `allowInsecurePath` is set, the file (after following symlinks) must be a regular file
/// that is not writable by group or others and is owned by the current uid; being readable by
/// others is allowed. Without these checks anyone who can write the file chooses the secret.
pub(super) struct FileProvider {
    path: PathBuf,
    mode: Mode,
    timeout_ms: u64,
    max_bytes: u64,
    allow_insecure_path: bool,
}

pub(super) fn parse(w: &mut Walker, path: &str, v: &Value) -> Option<FileProvider> {
    let keys = [
        "source",
        "path",
        "mode",
        "timeoutMs",
        "maxBytes",
        "allowInsecurePath",
    ];
    let map = w.object(path, v, &keys)?;
    let ppath = join(path, "path");
    let file = w.required(&ppath, map.get("path"));
    let file = paths::absolute_path(w, &ppath, file);
    let mode = match w.choice(
        &join(path, "mode"),
        map.get("mode"),
        &["json", "singleValue"],
    ) {
        Some("singleValue") => Mode::SingleValue,
        _ => Mode::Json,
    };
    let timeout_ms = w.integer(
        &join(path, "timeoutMs"),
        map.get("timeoutMs"),
        1,
        MAX_TIMEOUT_MS,
    );
    let max_bytes = w.integer(
        &join(path, "maxBytes"),
        map.get("maxBytes"),
        1,
        MAX_MAX_BYTES,
    );
    let insecure = w.bool(
        &join(path, "allowInsecurePath"),
        map.get("allowInsecurePath"),
    );
    Some(FileProvider {
        path: file?,
        mode,
        timeout_ms: timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        max_bytes: max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        allow_insecure_path: insecure.unwrap_or(false),
    })
}

impl FileProvider {
    pub(super) fn resolve(&self, provider: &str, id: &str) -> Result<String, String> {
        if self.mode == Mode::SingleValue && id != "value" {
            return Err(format!(
                "singleValue file provider \"{provider}\" expects ref id \"value\"."
            ));
        }
        let bytes = self.read(provider)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("File provider \"{provider}\" payload is not valid UTF-8."))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        match self.mode {
            Mode::SingleValue => {
                let value = text.strip_suffix('\n').unwrap_or(text);
                Ok(value.strip_suffix('\r').unwrap_or(value).to_owned())
            }
            Mode::Json => {
                let doc: Value = serde_json::from_str(text).map_err(|_| {
                    format!("File provider \"{provider}\" payload is not a JSON object.")
                })?;
                if !doc.is_object() {
                    return Err(format!(
                        "File provider \"{provider}\" payload is not a JSON object."
                    ));
                }
                match pointer(&doc, id) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(format!(
                        "File provider \"{provider}\" value at JSON pointer \"{id}\" is not a string."
                    )),
                    None => Err(format!(
                        "File provider \"{provider}\" has no value at JSON pointer \"{id}\" (ids are JSON Pointers such as \"/a/b\")."
                    )),
                }
            }
        }
    }

    /// Reads the file on a helper thread so that a stalled filesystem cannot block the caller
    /// beyond `timeoutMs` (the helper is abandoned then).
    fn read(&self, provider: &str) -> Result<Vec<u8>, String> {
        let (path, max, insecure) = (self.path.clone(), self.max_bytes, self.allow_insecure_path);
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("secret-file-read".to_owned())
            .spawn(move || {
                let _ = tx.send(read_checked(&path, max, insecure));
            })
            .map_err(|e| format!("File provider \"{provider}\" could not start a reader: {e}."))?;
        let shown = paths::show(&self.path);
        match rx.recv_timeout(Duration::from_millis(self.timeout_ms)) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(reason)) => Err(format!(
                "File provider \"{provider}\" path \"{shown}\" {reason}."
            )),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "File provider \"{provider}\" timed out after {}ms.",
                self.timeout_ms
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!(
                "File provider \"{provider}\" path \"{shown}\" could not be read."
            )),
        }
    }
}

/// Checks and reads the file; the error is a reason phrase that follows the path in a message.
fn read_checked(path: &Path, max_bytes: u64, allow_insecure: bool) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot be read ({e})"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if !allow_insecure {
        paths::check_owner_and_mode(&meta)?;
    }
    if meta.len() > max_bytes {
        return Err(format!("exceeds maxBytes ({max_bytes})"));
    }
    // O_NONBLOCK: if the path was swapped for a FIFO after the check, opening it must not hang.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot be opened ({e})"))?;
    let opened = file
        .metadata()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if opened.dev() != meta.dev() || opened.ino() != meta.ino() {
        return Err("changed while it was being checked".to_owned());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("exceeds maxBytes ({max_bytes})"));
    }
    Ok(bytes)
}

/// Looks up an RFC 6901 JSON Pointer (`""` is the whole document; `~1` is `/`, `~0` is `~`).
fn pointer<'v>(doc: &'v Value, ptr: &str) -> Option<&'v Value> {
    if ptr.is_empty() {
        return Some(doc);
    }
    let rest = ptr.strip_prefix('/')?;
    rest.split('/').try_fold(doc, |node, raw| {
        let token = unescape(raw)?;
        match node {
            Value::Object(map) => map.get(&token),
            Value::Array(items) => {
                let valid = token == "0" || (!token.starts_with('0') && !token.is_empty());
                let index: usize = token.parse().ok().filter(|_| valid)?;
                items.get(index)
            }
            _ => None,
        }
    })
}

/// Decodes `~1` and `~0`; any other `~` sequence makes the pointer invalid.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_pointers_follow_rfc_6901() {
        let doc = json!({"a": {"b/c": "slash", "d~e": "tilde", "list": ["x", "y"]}, "": "empty"});
        assert_eq!(pointer(&doc, "/a/b~1c"), Some(&json!("slash")));
        assert_eq!(pointer(&doc, "/a/d~0e"), Some(&json!("tilde")));
        assert_eq!(pointer(&doc, "/a/list/1"), Some(&json!("y")));
        assert_eq!(pointer(&doc, "/"), Some(&json!("empty")));
        assert_eq!(pointer(&doc, ""), Some(&doc));
        assert_eq!(pointer(&doc, "/a/list/01"), None);
        assert_eq!(pointer(&doc, "/a/list/9"), None);
        assert_eq!(pointer(&doc, "/a/x~2"), None);
        assert_eq!(pointer(&doc, "a"), None);
        assert_eq!(pointer(&doc, "/missing"), None);
    }
}
