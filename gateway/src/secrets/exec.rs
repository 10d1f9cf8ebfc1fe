//! The `exec` provider: secrets produced by a trusted command (no shell) that answers a JSON
//! request on stdin; owns its config, the run (via `process`) and the reply protocol.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use jsoncfg::{join, type_name, Walker};
use serde_json::{Map, Value};

use super::file::{DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS, MAX_MAX_BYTES, MAX_TIMEOUT_MS};
use super::paths;
use super::process::{self, Limits, RunError};

const ID_RULE: &str = "Exec secret reference id must match /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}$/ and must not include \".\" or \"..\" path segments (example: \"vault/openai/api-key\").";

/// Longest provider-supplied error message (from the reply's `errors`) quoted in an error.
const MAX_QUOTED_MESSAGE: usize = 200;

/// `{ source: "exec", command, args?, timeoutMs?, noOutputTimeoutMs?, maxOutputBytes?, jsonOnly?,
/// env?, passEnv?, trustedDirs?, allowInsecurePath?, allowSymlinkCommand? }`.
pub(super) struct ExecProvider {
    command: PathBuf,
    args: Vec<String>,
    timeout_ms: u64,
    no_output_timeout_ms: u64,
    max_output_bytes: u64,
    json_only: bool,
    /// Literal variables for the command; values may be credentials, so never logged.
    env: BTreeMap<String, String>,
    pass_env: Vec<String>,
    trusted_dirs: Vec<PathBuf>,
    allow_insecure_path: bool,
    allow_symlink_command: bool,
}

pub(super) fn parse(w: &mut Walker, path: &str, v: &Value) -> Option<ExecProvider> {
    let keys = [
        "source",
        "command",
        "args",
        "timeoutMs",
        "noOutputTimeoutMs",
        "maxOutputBytes",
        "jsonOnly",
        "env",
        "passEnv",
        "trustedDirs",
        "allowInsecurePath",
        "allowSymlinkCommand",
    ];
    let map = w.object(path, v, &keys)?;
    let at = |key: &str| join(path, key);
    let command = w.required(&at("command"), map.get("command"));
    let command = paths::absolute_path(w, &at("command"), command);
    let args = raw_strings(w, &at("args"), map.get("args"));
    let timeout_ms = w.integer(&at("timeoutMs"), map.get("timeoutMs"), 1, MAX_TIMEOUT_MS);
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let no_output = w.integer(
        &at("noOutputTimeoutMs"),
        map.get("noOutputTimeoutMs"),
        1,
        MAX_TIMEOUT_MS,
    );
    let max_output = w.integer(
        &at("maxOutputBytes"),
        map.get("maxOutputBytes"),
        1,
        MAX_MAX_BYTES,
    );
    let json_only = w.bool(&at("jsonOnly"), map.get("jsonOnly"));
    let env = env_map(w, &at("env"), map.get("env"));
    let pass_env = w.text_list(&at("passEnv"), map.get("passEnv"));
    for (i, name) in pass_env.iter().flatten().enumerate() {
        if name.contains(['=', '\0']) {
            let ipath = join(&at("passEnv"), &i.to_string());
            w.issue(&ipath, "is not a valid environment variable name");
        }
    }
    let mut trusted_dirs = Vec::new();
    if let Some(list) = raw_list(w, &at("trustedDirs"), map.get("trustedDirs")) {
        for (i, item) in list.iter().enumerate() {
            let ipath = join(&at("trustedDirs"), &i.to_string());
            trusted_dirs.extend(paths::absolute_path(w, &ipath, Some(item)));
        }
    }
    let insecure = w.bool(&at("allowInsecurePath"), map.get("allowInsecurePath"));
    let symlink = w.bool(&at("allowSymlinkCommand"), map.get("allowSymlinkCommand"));
    Some(ExecProvider {
        command: command?,
        args: args.unwrap_or_default(),
        timeout_ms,
        no_output_timeout_ms: no_output.unwrap_or(timeout_ms),
        max_output_bytes: max_output.unwrap_or(DEFAULT_MAX_BYTES),
        json_only: json_only.unwrap_or(true),
        env: env.unwrap_or_default(),
        pass_env: pass_env.unwrap_or_default(),
        trusted_dirs,
        allow_insecure_path: insecure.unwrap_or(false),
        allow_symlink_command: symlink.unwrap_or(false),
    })
}

fn raw_list<'v>(w: &mut Walker, path: &str, v: Option<&'v Value>) -> Option<&'v Vec<Value>> {
    match v? {
        Value::Array(items) => Some(items),
        other => {
            w.issue(path, format!("expected an array, got {}", type_name(other)));
            None
        }
    }
}

/// Arguments are taken as written: not trimmed, and may be empty (but may not contain NUL).
fn raw_strings(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<Vec<String>> {
    let items = raw_list(w, path, v)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if s.contains('\0') => {
                w.issue(&join(path, &i.to_string()), "must not contain NUL")
            }
            Value::String(s) => out.push(s.clone()),
            other => w.issue(
                &join(path, &i.to_string()),
                format!("expected a string, got {}", type_name(other)),
            ),
        }
    }
    (out.len() == items.len()).then_some(out)
}

fn env_map(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let map: &Map<String, Value> = w.map(path, v?)?;
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let vpath = join(path, name);
        if name.is_empty() || name.contains(['=', '\0']) {
            w.issue(&vpath, "is not a valid environment variable name");
            continue;
        }
        match value {
            Value::String(s) if s.contains('\0') => w.issue(&vpath, "must not contain NUL"),
            Value::String(s) => {
                out.insert(name.clone(), s.clone());
            }
            other => w.issue(
                &vpath,
                format!("expected a string, got {}", type_name(other)),
            ),
        }
    }
    (out.len() == map.len()).then_some(out)
}

/// An exec secret id: `^[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}$`, no `.` or `..` segment.
fn valid_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
    id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.len() <= 256
        && id.chars().all(allowed)
        && !id.split('/').any(|seg| seg == "." || seg == "..")
}

impl ExecProvider {
    pub(super) fn resolve(
        &self,
        provider: &str,
        id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        if !valid_id(id) {
            return Err(ID_RULE.to_owned());
        }
        let exe = self.checked_command().map_err(|reason| {
            format!(
                "Exec provider \"{provider}\" command \"{}\" {reason}.",
                paths::show(&self.command)
            )
        })?;
        let mut cmd = Command::new(&exe);
        cmd.args(&self.args).env_clear();
        if let Some(dir) = exe.parent() {
            cmd.current_dir(dir);
        }
        for name in &self.pass_env {
            if let Some(value) = env(name) {
                cmd.env(name, value);
            }
        }
        cmd.envs(&self.env);
        let request = format!(
            "{{\"protocolVersion\":1,\"provider\":{},\"ids\":[{}]}}",
            Value::from(provider),
            Value::from(id)
        );
        let limits = Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            no_output: Duration::from_millis(self.no_output_timeout_ms),
            max_output_bytes: usize::try_from(self.max_output_bytes).unwrap_or(usize::MAX),
        };
        log::debug!(
            "exec secret provider {provider}: running {}",
            paths::show(&exe)
        );
        let p = provider;
        let done = process::run(&mut cmd, request.as_bytes(), &limits).map_err(|e| match e {
            RunError::Spawn(e) => format!("Exec provider \"{p}\" failed to start: {e}."),
            RunError::TimedOut => format!(
                "Exec provider \"{p}\" timed out after {}ms.",
                self.timeout_ms
            ),
            RunError::NoOutput => format!(
                "Exec provider \"{p}\" produced no output for {}ms.",
                self.no_output_timeout_ms
            ),
            RunError::OutputTooLarge => format!(
                "Exec provider output exceeded maxOutputBytes ({}).",
                self.max_output_bytes
            ),
            RunError::Wait(e) => format!("Exec provider \"{p}\" could not be waited for: {e}."),
        })?;
        // Only the exit code is reported: stderr may contain secret material.
        match done.status.code() {
            Some(0) => parse_reply(p, id, &done.stdout, self.json_only),
            Some(code) => Err(format!("Exec provider \"{p}\" exited with code {code}.")),
            None => Err(format!("Exec provider \"{p}\" was terminated by a signal.")),
        }
    }

    /// Applies the command-path rules and returns the path to spawn (the symlink's target when
    /// `allowSymlinkCommand` lets a symlink through). The error is a reason phrase.
    fn checked_command(&self) -> Result<PathBuf, String> {
        paths::check_command(
            &self.command,
            &self.trusted_dirs,
            self.allow_symlink_command,
            self.allow_insecure_path,
        )
    }
}

/// Parses the command's stdout into the value for `id`. Errors never quote stdout.
pub(super) fn parse_reply(
    p: &str,
    id: &str,
    stdout: &[u8],
    json_only: bool,
) -> Result<String, String> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| format!("Exec provider \"{p}\" returned stdout that is not valid UTF-8."))?
        .trim();
    if text.is_empty() {
        return Err(format!("Exec provider \"{p}\" returned empty stdout."));
    }
    let parsed = serde_json::from_str::<Value>(text);
    // Only one id is ever requested at a time, so the plain-value form applies whenever
    // jsonOnly is false.
    let reply = match parsed {
        Err(_) if !json_only => return Ok(text.to_owned()),
        Ok(Value::String(s)) if !json_only => return Ok(s),
        Err(_) => return Err(format!("Exec provider \"{p}\" returned invalid JSON.")),
        Ok(v) => v,
    };
    let Value::Object(reply) = reply else {
        return Err(format!("Exec provider \"{p}\" response must be an object."));
    };
    if reply.get("protocolVersion").and_then(Value::as_u64) != Some(1) {
        return Err(format!("Exec provider \"{p}\" protocolVersion must be 1."));
    }
    let Some(Value::Object(values)) = reply.get("values") else {
        return Err(format!(
            "Exec provider \"{p}\" response missing \"values\"."
        ));
    };
    if let Some(failure) = reply.get("errors").and_then(|e| e.get(id)) {
        let message = failure
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        let message: String = message.chars().take(MAX_QUOTED_MESSAGE).collect();
        return Err(format!(
            "Exec provider \"{p}\" failed for id \"{id}\" ({message})."
        ));
    }
    match values.get(id) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!(
            "Exec provider \"{p}\" value for id \"{id}\" is not a string."
        )),
        None => Err(format!(
            "Exec provider \"{p}\" response missing id \"{id}\"."
        )),
    }
}
