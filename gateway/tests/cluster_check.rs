//! A config with `cluster`: `--check` reaches both services and says so
//! (URLs without passwords), and refuses one it cannot reach, naming it.

// Test support: a broken expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use testkit::{PgSchema, TempDir};

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_openclaw-gateway"))
}

fn cluster_config(dir: &TempDir, postgres: serde_json::Value, redis: serde_json::Value) -> String {
    let cfg = serde_json::json!({
        "cluster": { "postgres": { "url": postgres, "poolSize": 4 }, "redis": { "url": redis } }
    });
    dir.write("gateway.json5", &cfg.to_string())
        .display()
        .to_string()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reaches_both_services_through_secret_refs() {
    let dir = TempDir::new("cluster-check");
    let schema = PgSchema::new("cluster_check");
    let env_ref =
        |id: &str| serde_json::json!({ "source": "env", "provider": "default", "id": id });
    let cfg = cluster_config(&dir, env_ref("PG_URL"), env_ref("REDIS_URL"));
    let out = gateway()
        .args(["--config", &cfg, "--check"])
        .env("PG_URL", schema.url())
        .env("REDIS_URL", testkit::redis_url())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("cluster postgres postgres://")
            && stdout.contains("reachable, schema version 0"),
        "{stdout}"
    );
    assert!(stdout.contains("cluster redis redis://"), "{stdout}");
}

#[test]
fn check_names_the_unreachable_service_and_never_the_password() {
    let dir = TempDir::new("cluster-down");
    let schema = PgSchema::new("cluster_down");
    let cfg = cluster_config(
        &dir,
        "postgres://gw:hunter2@127.0.0.1:1/test".into(),
        testkit::redis_url().into(),
    );
    let out = gateway()
        .args(["--config", &cfg, "--check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "cluster.postgres.url: cannot reach PostgreSQL at postgres://gw:***@127.0.0.1:1/test"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));

    let cfg = cluster_config(
        &dir,
        schema.url().into(),
        "redis://:hunter2@127.0.0.1:1/".into(),
    );
    let out = gateway()
        .args(["--config", &cfg, "--check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("cluster.redis.url: cannot reach Redis at redis://:***@127.0.0.1:1/"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));
}

#[test]
fn a_secret_ref_that_resolves_to_a_bad_url_is_refused_without_echoing_it() {
    let dir = TempDir::new("cluster-badref");
    let cfg = cluster_config(
        &dir,
        serde_json::json!({ "source": "env", "provider": "default", "id": "PG_URL" }),
        testkit::redis_url().into(),
    );
    let out = gateway()
        .args(["--config", &cfg, "--check"])
        .env("PG_URL", "mysql://u:hunter2@db/x")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "cluster.postgres.url: the resolved value is not usable: expected a postgres://"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
