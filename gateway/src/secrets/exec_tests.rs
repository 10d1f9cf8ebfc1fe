//! Tests for the exec provider: real `#!/bin/sh` scripts written into a private temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::exec::parse_reply;
use super::paths::check_command;
use super::tests::{failure, providers, TempDir, MARKER};
use super::*;

/// A script in its own private directory.
struct Script {
    dir: TempDir,
    path: PathBuf,
}

fn script(body: &str) -> Script {
    let dir = TempDir::new();
    let path = dir.write("provider.sh", &format!("#!/bin/sh\n{body}\n"), 0o700);
    Script { dir, path }
}

fn exec_provider(command: &Path, extra: Value) -> SecretProviders {
    let mut cfg = json!({"source": "exec", "command": command.to_str().unwrap(), "timeoutMs": 1000,
                         "env": {"PATH": "/usr/bin:/bin"}});
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    providers(json!({"providers": {"vault": cfg}}))
}

fn env_with_pass(name: &str) -> Option<String> {
    (name == "PASSED").then(|| "yes".to_owned())
}

fn resolve(p: &SecretProviders, id: &str) -> Result<Secret, String> {
    p.resolve_with_env("exec", "vault", id, &env_with_pass)
}

fn reply(value: &str) -> String {
    json!({"protocolVersion": 1, "values": {"db/pw": value}}).to_string()
}

#[test]
fn an_exec_provider_resolves_from_a_json_reply() {
    let s = script(&format!(
        "cat >/dev/null\nprintf '%s' '{}'",
        reply(&format!(" {MARKER} "))
    ));
    let secret = resolve(&exec_provider(&s.path, json!({})), "db/pw").unwrap();
    assert_eq!(secret.expose(), MARKER);
    assert!(!format!("{secret:?}").contains(MARKER));
}

#[test]
fn the_command_gets_the_request_a_clean_env_and_its_own_directory() {
    let s = script(&format!(
        "IFS= read -r line\n\
         [ \"$line\" = '{{\"protocolVersion\":1,\"provider\":\"vault\",\"ids\":[\"db/pw\"]}}' ] || exit 11\n\
         [ \"$PASSED\" = yes ] && [ \"$LITERAL\" = ' v ' ] && [ -z \"$HOME\" ] || exit 12\n\
         [ \"$(pwd -P)\" = \"$(cd \"$(dirname \"$0\")\" && pwd -P)\" ] || exit 13\n\
         [ \"$1\" = '' ] && [ \"$2\" = 'two words' ] || exit 14\n\
         printf '%s' '{}'",
        reply(MARKER)
    ));
    let p = exec_provider(
        &s.path,
        json!({"passEnv": ["PASSED", "UNSET"], "args": ["", "two words"],
               "env": {"PATH": "/usr/bin:/bin", "LITERAL": " v "}}),
    );
    assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
}

#[test]
fn a_plain_reply_is_the_value_when_json_only_is_false() {
    let s = script(&format!("printf '%s\\n' '{MARKER}'"));
    let p = exec_provider(&s.path, json!({"jsonOnly": false}));
    assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
    let s = script(&format!("printf '%s' '\"{MARKER}\"'"));
    let p = exec_provider(&s.path, json!({"jsonOnly": false}));
    assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
}

#[test]
fn an_exec_timeout_kills_the_command() {
    let s = script(&format!("echo '{MARKER}' >&2\nsleep 5"));
    let p = exec_provider(&s.path, json!({"timeoutMs": 300}));
    let start = Instant::now();
    let msg = failure(resolve(&p, "db/pw"), MARKER);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        msg,
        "SecretRef exec:vault:db/pw is unresolved: Exec provider \"vault\" timed out after 300ms."
    );
}

#[test]
fn a_silent_command_hits_the_no_output_timeout() {
    let s = script("sleep 5");
    let p = exec_provider(&s.path, json!({"noOutputTimeoutMs": 200}));
    let start = Instant::now();
    let msg = failure(resolve(&p, "db/pw"), MARKER);
    assert!(start.elapsed() < Duration::from_millis(900));
    assert!(
        msg.ends_with("Exec provider \"vault\" produced no output for 200ms."),
        "{msg}"
    );
}

#[test]
fn a_non_zero_exit_reports_only_the_code_never_stderr() {
    let s = script(&format!(
        "echo 'token={MARKER}' >&2\nprintf '%s' '{}'\nexit 3",
        reply(MARKER)
    ));
    let msg = failure(resolve(&exec_provider(&s.path, json!({})), "db/pw"), MARKER);
    assert!(
        msg.ends_with("Exec provider \"vault\" exited with code 3."),
        "{msg}"
    );
}

#[test]
fn oversized_output_is_cut_off() {
    let s = script(&format!("printf '%s' '{}'", reply(&MARKER.repeat(10))));
    let msg = failure(
        resolve(
            &exec_provider(&s.path, json!({"maxOutputBytes": 64})),
            "db/pw",
        ),
        MARKER,
    );
    assert!(
        msg.ends_with("Exec provider output exceeded maxOutputBytes (64)."),
        "{msg}"
    );
    // stderr counts too.
    let s = script(&format!(
        "printf '%s' '{}' >&2\nprintf ok",
        MARKER.repeat(10)
    ));
    let msg = failure(
        resolve(
            &exec_provider(&s.path, json!({"maxOutputBytes": 64})),
            "db/pw",
        ),
        MARKER,
    );
    assert!(msg.ends_with("exceeded maxOutputBytes (64)."), "{msg}");
}

#[test]
fn an_invalid_json_reply_is_refused_without_quoting_it() {
    let s = script(&format!("printf '%s' 'not json {MARKER}'"));
    let msg = failure(resolve(&exec_provider(&s.path, json!({})), "db/pw"), MARKER);
    assert!(
        msg.ends_with("Exec provider \"vault\" returned invalid JSON."),
        "{msg}"
    );
}

#[test]
fn a_reply_without_the_id_is_refused() {
    let other = json!({"protocolVersion": 1, "values": {"other": MARKER}}).to_string();
    let s = script(&format!("printf '%s' '{other}'"));
    let msg = failure(resolve(&exec_provider(&s.path, json!({})), "db/pw"), MARKER);
    assert!(
        msg.ends_with("Exec provider \"vault\" response missing id \"db/pw\"."),
        "{msg}"
    );
}

#[test]
fn reply_shapes_are_checked_with_openclaw_messages() {
    let cases = [
        ("", "returned empty stdout."),
        ("  \n", "returned empty stdout."),
        ("[1]", "response must be an object."),
        (r#"{"values":{}}"#, "protocolVersion must be 1."),
        (
            r#"{"protocolVersion":2,"values":{}}"#,
            "protocolVersion must be 1.",
        ),
        (r#"{"protocolVersion":1}"#, "response missing \"values\"."),
        (
            r#"{"protocolVersion":1,"values":[]}"#,
            "response missing \"values\".",
        ),
        (
            r#"{"protocolVersion":1,"values":{"id":5}}"#,
            "value for id \"id\" is not a string.",
        ),
        (
            r#"{"protocolVersion":1,"values":{},"errors":{"id":{"message":"denied"}}}"#,
            "failed for id \"id\" (denied).",
        ),
    ];
    for (stdout, expected) in cases {
        let msg = parse_reply("p", "id", stdout.as_bytes(), true).unwrap_err();
        assert_eq!(
            msg,
            format!("Exec provider \"p\" {expected}"),
            "for {stdout:?}"
        );
    }
    assert!(parse_reply("p", "id", b"\"quoted\"", true).is_err());
    assert_eq!(parse_reply("p", "id", b" raw ", false).unwrap(), "raw");
}

#[test]
fn a_bad_exec_id_is_refused_with_the_openclaw_message() {
    let s = script("exit 0");
    let p = exec_provider(&s.path, json!({}));
    for id in [
        "",
        "/lead",
        "a/../b",
        "a/./b",
        "..",
        "sp ace",
        &"a".repeat(257),
    ] {
        let msg = failure(resolve(&p, id), MARKER);
        assert!(msg.ends_with("Exec secret reference id must match /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}$/ and must not include \".\" or \"..\" path segments (example: \"vault/openai/api-key\")."), "{msg}");
    }
}

#[test]
fn a_relative_command_is_a_config_issue_and_refused_at_run_time() {
    let mut w = jsoncfg::Walker::new();
    let cfg = json!({"providers": {"vault": {"source": "exec", "command": "vault"}}});
    let p = SecretProviders::parse(&mut w, "secrets", Some(&cfg));
    assert_eq!(
        w.issues[0].to_string(),
        "secrets.providers.vault.command: must be an absolute path (\"~/\" is expanded from HOME)"
    );
    assert!(p.names().is_empty());
    assert_eq!(
        check_command(Path::new("bin/vault"), &[], false, false).unwrap_err(),
        "must be an absolute path"
    );
}

#[test]
fn a_group_or_world_writable_command_is_refused_unless_allowed() {
    for mode in [0o770, 0o702] {
        let s = script(&format!("printf '%s' '{}'", reply(MARKER)));
        std::fs::set_permissions(&s.path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        let msg = failure(resolve(&exec_provider(&s.path, json!({})), "db/pw"), MARKER);
        let expected = format!(
            "command \"{}\" is writable by group or others (mode {mode:04o})",
            s.path.display()
        );
        assert!(msg.contains(&expected), "{msg}");
        let p = exec_provider(&s.path, json!({"allowInsecurePath": true}));
        assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
    }
}

#[test]
fn a_symlinked_command_needs_allow_symlink_command() {
    let s = script(&format!("printf '%s' '{}'", reply(MARKER)));
    let link = s.dir.path().join("link.sh");
    std::os::unix::fs::symlink(&s.path, &link).unwrap();
    let msg = failure(resolve(&exec_provider(&link, json!({})), "db/pw"), MARKER);
    assert!(
        msg.contains("is a symlink (set allowSymlinkCommand to allow it)."),
        "{msg}"
    );
    let p = exec_provider(&link, json!({"allowSymlinkCommand": true}));
    assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
}

#[test]
fn a_command_outside_trusted_dirs_is_refused() {
    let s = script(&format!("printf '%s' '{}'", reply(MARKER)));
    let elsewhere = TempDir::new();
    let p = exec_provider(
        &s.path,
        json!({"trustedDirs": [elsewhere.path().to_str().unwrap()]}),
    );
    let msg = failure(resolve(&p, "db/pw"), MARKER);
    assert!(msg.ends_with("is not inside any of trustedDirs."), "{msg}");
    let p = exec_provider(
        &s.path,
        json!({"trustedDirs": [s.dir.path().to_str().unwrap()]}),
    );
    assert_eq!(resolve(&p, "db/pw").unwrap().expose(), MARKER);
}

#[test]
fn a_provider_error_message_is_quoted_on_one_line() {
    let body =
        json!({"protocolVersion": 1, "values": {}, "errors": {"db/pw": {"message": "no\naccess"}}});
    let s = script(&format!("printf '%s' '{body}'"));
    let msg = failure(resolve(&exec_provider(&s.path, json!({})), "db/pw"), MARKER);
    assert!(
        msg.ends_with("failed for id \"db/pw\" (no\\naccess)."),
        "{msg}"
    );
}
