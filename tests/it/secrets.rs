//! SecretRefs resolve once at startup through the Gateway's providers. A
//! route whose secret cannot be resolved is skipped with a warning naming
//! the route and the reason; the others serve. No secret value is ever
//! logged.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::support::*;

const ENV_SECRET: &str = "ENV-SECRET-c41b2e-0123456789";
const FILE_SECRET: &str = "FILE-SECRET-77de10-0123456789";
const EXEC_SECRET: &str = "EXEC-SECRET-9a0f33-0123456789";
const OTHER_VALUE: &str = "NOT-ALLOWLISTED-VALUE-5521";
const STDERR_MARKER: &str = "STDERR-MARKER-SHOULD-NOT-LEAK";

fn script(dir: &TempDir, name: &str, body: &str) -> String {
    let path = dir.write(name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.display().to_string()
}

fn secret_ref(source: &str, provider: &str, id: &str) -> Value {
    json!({"secret": {"source": source, "provider": provider, "id": id}})
}

fn routed(id: &str, source: &str, provider: &str, ref_id: &str) -> (String, Value) {
    let mut r = route(secret_ref(source, provider, ref_id));
    r["path"] = json!(format!("/plugins/webhooks/{id}"));
    (id.to_owned(), r)
}

#[test]
fn each_provider_resolves_and_each_failure_skips_only_its_route() {
    let dir = TempDir::new("secrets");
    let file = dir.write(
        "secrets.json",
        &json!({"webhook": {"token": FILE_SECRET}, "n": 3}).to_string(),
    );
    let ok = script(
        &dir,
        "ok.sh",
        &format!("cat >/dev/null\nprintf '%s' '{{\"protocolVersion\":1,\"values\":{{\"tok\":\"{EXEC_SECRET}\"}}}}'"),
    );
    let slow = script(&dir, "slow.sh", "sleep 5");
    let fails = script(
        &dir,
        "fail.sh",
        &format!("echo {STDERR_MARKER} >&2\nexit 3"),
    );
    let loud = script(&dir, "loud.sh", "head -c 5000 /dev/zero | tr '\\0' a");
    let providers = json!({
        "envp": {"source": "env", "allowlist": ["WEBHOOK_OK", "WEBHOOK_MISSING"]},
        "filep": {"source": "file", "path": file, "mode": "json"},
        "nofile": {"source": "file", "path": dir.path().join("absent.json")},
        "execp": {"source": "exec", "command": ok},
        "slow": {"source": "exec", "command": slow, "timeoutMs": 300},
        "fails": {"source": "exec", "command": fails},
        "loud": {"source": "exec", "command": loud, "maxOutputBytes": 1024}
    });
    let routes: serde_json::Map<String, Value> = [
        routed("env_ok", "env", "envp", "WEBHOOK_OK"),
        routed("env_missing", "env", "envp", "WEBHOOK_MISSING"),
        routed("env_not_allowed", "env", "envp", "WEBHOOK_OTHER"),
        routed("file_ok", "file", "filep", "/webhook/token"),
        routed("file_missing", "file", "nofile", "/webhook/token"),
        routed("file_pointer", "file", "filep", "/webhook/nope"),
        routed("exec_ok", "exec", "execp", "tok"),
        routed("exec_timeout", "exec", "slow", "tok"),
        routed("exec_exit", "exec", "fails", "tok"),
        routed("exec_big", "exec", "loud", "tok"),
    ]
    .into_iter()
    .collect();
    let config = gateway_config(
        json!({"routes": routes}),
        json!({"secrets": {"providers": providers}}),
    );
    let gw = Gateway::start_with_env(
        &config,
        &[("WEBHOOK_OK", ENV_SECRET), ("WEBHOOK_OTHER", OTHER_VALUE)],
    );

    for (id, secret) in [
        ("env_ok", ENV_SECRET),
        ("file_ok", FILE_SECRET),
        ("exec_ok", EXEC_SECRET),
    ] {
        let path = format!("/plugins/webhooks/{id}");
        let res = gw.post(
            &path,
            &[
                ("content-type", "application/json"),
                ("x-openclaw-webhook-secret", secret),
            ],
            br#"{"action":"list_flows"}"#,
        );
        assert_eq!(res.status, 200, "{id}: {}", res.text);
        let wrong = gw.post(
            &path,
            &[
                ("content-type", "application/json"),
                ("x-openclaw-webhook-secret", "nope"),
            ],
            br#"{"action":"list_flows"}"#,
        );
        assert_eq!(wrong.status, 401, "{id}");
    }

    let logs = gw.logs();
    let skipped = [
        (
            "env_missing",
            "Environment variable \"WEBHOOK_MISSING\" is missing or empty.",
        ),
        (
            "env_not_allowed",
            "is not allowlisted in secrets.providers.envp.allowlist",
        ),
        ("file_missing", "cannot be read"),
        (
            "file_pointer",
            "has no value at JSON pointer \"/webhook/nope\"",
        ),
        (
            "exec_timeout",
            "Exec provider \"slow\" timed out after 300ms.",
        ),
        ("exec_exit", "Exec provider \"fails\" exited with code 3."),
        (
            "exec_big",
            "Exec provider output exceeded maxOutputBytes (1024).",
        ),
    ];
    for (id, reason) in skipped {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("skipping route {id}: ")))
            .unwrap_or_else(|| panic!("no skip warning for {id} in:\n{logs}"));
        assert!(line.contains(" WARN "), "{line}");
        assert!(line.contains(reason), "{id}: expected {reason:?} in {line}");
        let res = gw.post(
            &format!("/plugins/webhooks/{id}"),
            &[
                ("content-type", "application/json"),
                ("x-openclaw-webhook-secret", "x"),
            ],
            br#"{"action":"list_flows"}"#,
        );
        assert_eq!(res.status, 404, "skipped route {id} must not serve");
    }
    for value in [
        ENV_SECRET,
        FILE_SECRET,
        EXEC_SECRET,
        OTHER_VALUE,
        STDERR_MARKER,
    ] {
        assert!(
            !logs.contains(value),
            "secret material {value} leaked into the log:\n{logs}"
        );
    }
}

#[test]
fn a_short_plain_secret_loads_with_a_warning_that_names_the_route_only() {
    let weak = "tiny-secret";
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({"secret": weak}))}}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let res = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer tiny-secret"),
        ],
        br#"{"action":"list_flows"}"#,
    );
    assert_eq!(res.status, 200);
    let logs = gw.logs();
    assert!(
        logs.lines().any(|l| l.contains(" WARN ")
            && l.contains("route zapier uses a plain-text secret shorter than 16")),
        "{logs}"
    );
    assert!(!logs.contains(weak));
}

#[test]
fn plain_string_secrets_are_taken_literally() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({"secret": "${WEBHOOK_LITERAL_TEST}"}))}}),
        json!({}),
    );
    let gw = Gateway::start_with_env(
        &config,
        &[("WEBHOOK_LITERAL_TEST", "expanded-value-0123456")],
    );
    let call = |secret: &str| {
        gw.post(
            ROUTE_PATH,
            &[
                ("content-type", "application/json"),
                ("x-openclaw-webhook-secret", secret),
            ],
            br#"{"action":"list_flows"}"#,
        )
        .status
    };
    assert_eq!(call("${WEBHOOK_LITERAL_TEST}"), 200);
    assert_eq!(call("expanded-value-0123456"), 401);
}
