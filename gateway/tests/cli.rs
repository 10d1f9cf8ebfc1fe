//! The Gateway's command line. (This file also makes `cargo test` build
//! the `openclaw-gateway` binary that the workspace integration tests run.)

use std::process::Command;

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_openclaw-gateway"))
}

#[test]
fn without_a_config_it_explains_its_usage_and_exits_2() {
    let out = gateway().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config is required"), "{stderr}");
    assert!(stderr.contains("usage: openclaw-gateway"), "{stderr}");
}

#[test]
fn unknown_arguments_are_refused() {
    let out = gateway()
        .args(["--config", "x", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument \"--frobnicate\""));
}

#[test]
fn version_prints_the_version() {
    let out = gateway().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("openclaw-gateway "));
}

#[test]
fn an_unreadable_config_file_is_a_clear_error() {
    let out = gateway()
        .args(["--config", "/nonexistent/gateway.json5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/gateway.json5"));
}
