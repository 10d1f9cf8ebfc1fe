//! A bad config is refused before anything is bound, with every problem
//! listed at its full dotted path.

use serde_json::json;

use crate::support::*;

#[test]
fn every_config_mistake_of_gateway_and_plugin_is_listed_at_once_and_nothing_is_served() {
    let mut config = gateway_config(
        json!({
            "routes": {
                "zapier": route(json!({"secret": {"source": "vault", "provider": "p", "id": "x"}})),
                "bad id!": route(json!({"path": "/other"})),
                "nosession": {"secret": SECRET},
                "limited": route(json!({"path": "/limited", "limits": {"maxInFlight": 0, "burst": 3}}))
            },
            "colour": "blue"
        }),
        json!({"tasks": {"retentionMs": "soon"}}),
    );
    config["gateway"]["port"] = json!(-1);
    config["gateway"]["trustedProxies"] = json!(["not-an-ip"]);
    config["unknownTop"] = json!(true);
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(!out.stdout.contains("listening on"));
    for expected in [
        "unknownTop: unknown key",
        "gateway.port: expected a whole number from 0 to 65535",
        "gateway.trustedProxies.0: expected an IP address or CIDR block",
        "tasks.retentionMs: expected a number, got string",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
    let base = "plugins.entries.webhooks.config";
    for expected in [
        format!("{base}.colour: unknown key"),
        format!("{base}.routes.zapier.secret.source: expected one of env, file, exec"),
        format!("{base}.routes.bad id!: route id must match [A-Za-z0-9_-]{{1,64}}"),
        format!("{base}.routes.nosession.sessionKey: is required"),
        format!("{base}.routes.limited.limits.burst: unknown key"),
        format!(
            "{base}.routes.limited.limits.maxInFlight: expected a whole number from 1 to 100000"
        ),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("(10 problems)"), "{}", out.stderr);
}

#[test]
fn two_routes_with_the_same_normalised_path_are_a_config_error_naming_both() {
    let config = gateway_config(
        json!({"routes": {
            "first": route(json!({"path": "/plugins/webhooks/shared"})),
            "second": route(json!({"path": "plugins/webhooks/shared/"}))
        }}),
        json!({}),
    );
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains(
            "plugins.entries.webhooks.config.routes.second.path: conflicts with routes.first.path (/plugins/webhooks/shared)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_config_file_that_is_not_json5_is_refused() {
    let dir = TempDir::new("badjson");
    let path = dir.write("gateway.json5", "{ gateway: { port: 1, }");
    let out = Gateway::run_file_to_exit(&path, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("is not valid JSON5"), "{}", out.stderr);
}

#[test]
fn json5_comments_and_trailing_commas_are_accepted() {
    let dir = TempDir::new("json5");
    let text = format!(
        "// demo\n{{ gateway: {{ port: 0, }}, plugins: {{ load: {{ paths: [{:?}], }}, entries: {{ webhooks: {{ enabled: true, config: {{ routes: {{ a: {{ sessionKey: 's', secret: 'abcdefghijklmnopq', }}, }}, }}, }}, }}, }}, }}",
        plugin_dirs()[0].display().to_string()
    );
    let path = dir.write("gateway.json5", &text);
    let out = Gateway::run_file_to_exit(&path, dir.path(), &["--check"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("route a: POST /plugins/webhooks/a"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_configured_path_is_keyed_like_a_request_path_dot_segments_included() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {
            "dots": route(json!({"path": "/hooks/../plugins/webhooks/dots/"})),
            "odd": route(json!({"path": "/hooks/{a}|b^c%20d"}))
        }}),
        json!({}),
    ));
    let list = br#"{"action":"list_flows"}"#;
    for path in [
        "/plugins/webhooks/dots",
        "/hooks/../plugins/webhooks/dots",
        "/hooks/{a}|b^c%20d",
    ] {
        let res = gw.post(path, &hdrs(&authed()), list);
        assert_eq!(res.status, 200, "{path}: {}", res.text);
    }
    let dup = gateway_config(
        json!({"routes": {
            "first": route(json!({"path": "/plugins/webhooks/shared"})),
            "second": route(json!({"path": "/plugins/other/../webhooks/shared"}))
        }}),
        json!({}),
    );
    let out = Gateway::run_to_exit(&dup, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains(
            "plugins.entries.webhooks.config.routes.second.path: conflicts with routes.first.path (/plugins/webhooks/shared)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn configured_paths_no_request_can_reach_are_refused() {
    let config = gateway_config(
        json!({"routes": {
            "query": route(json!({"path": "/hooks?token=1"})),
            "accent": route(json!({"path": "/hööks"})),
            "space": route(json!({"path": "/my hooks"}))
        }}),
        json!({}),
    );
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let base = "plugins.entries.webhooks.config.routes";
    for expected in [
        format!("{base}.query.path: no request can reach it: a request's path ends at '?'"),
        format!("{base}.accent.path: no request can reach it: a request's path cannot carry 'ö'"),
        format!("{base}.space.path: no request can reach it: a request's path cannot carry ' '"),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn check_reports_per_route_what_a_start_does_with_its_secret() {
    let dir = TempDir::new("check-secrets");
    let file = dir.write(
        "secrets.json",
        &json!({"token": "FILE-SECRET-0123456789abcdef"}).to_string(),
    );
    let file_ref = |id: &str| json!({"source": "file", "provider": "vault", "id": id});
    let config = gateway_config(
        json!({"routes": {
            "resolved": route(json!({"path": "/hooks/resolved", "secret": file_ref("/token")})),
            "missing": route(json!({"path": "/hooks/missing", "secret": file_ref("/absent")})),
            "unset": route(json!({"path": "/hooks/unset",
                "secret": {"source": "env", "provider": "default", "id": "OPENCLAW_IT_NEVER_SET_VAR"}})),
            "weak": route(json!({"path": "/hooks/weak", "secret": "short"})),
            "off": route(json!({"path": "/hooks/off", "enabled": false}))
        }}),
        json!({"secrets": {"providers": {
            "vault": {"source": "file", "path": file, "mode": "json"}
        }}}),
    );
    let out = Gateway::run_to_exit(&config, &["--check"]);
    assert!(out.status.success(), "{}", out.stderr);
    let routes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  route "))
        .collect();
    assert_eq!(routes.len(), 5, "{}", out.stdout);
    assert_eq!(
        routes[0],
        "resolved: POST /hooks/resolved -> session agent:main:main"
    );
    // Skipped routes carry the provider's reason, as the start's warning does.
    assert!(
        routes[1].starts_with("missing: skipped: SecretRef file:vault:/absent is unresolved: "),
        "{}",
        routes[1]
    );
    assert_eq!(
        routes[2],
        "unset: skipped: SecretRef env:default:OPENCLAW_IT_NEVER_SET_VAR is unresolved: Environment variable \"OPENCLAW_IT_NEVER_SET_VAR\" is missing or empty."
    );
    assert_eq!(
        routes[3],
        "weak: POST /hooks/weak -> session agent:main:main (warning: plain-text secret shorter than 16 characters)"
    );
    assert_eq!(
        routes[4],
        "off: POST /hooks/off -> session agent:main:main (disabled)"
    );
    assert!(!out.stdout.contains("FILE-SECRET"), "{}", out.stdout);

    // A start does exactly that.
    let gw = Gateway::start(&config);
    let list = br#"{"action":"list_flows"}"#;
    let status = |path: &str, secret: &str| {
        let auth = format!("Bearer {secret}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ];
        gw.post(path, &headers, list).status
    };
    assert_eq!(
        status("/hooks/resolved", "FILE-SECRET-0123456789abcdef"),
        200
    );
    assert_eq!(status("/hooks/weak", "short"), 200);
    for skipped in ["/hooks/missing", "/hooks/unset", "/hooks/off"] {
        assert_eq!(status(skipped, SECRET), 404, "{skipped}");
    }
    let logs = gw.logs();
    for skipped in ["missing", "unset"] {
        assert!(
            logs.contains(&format!("skipping route {skipped}: SecretRef")),
            "{logs}"
        );
    }
}

#[test]
fn every_bad_trusted_proxy_is_reported_at_its_index() {
    let mut config = default_config();
    config["gateway"]["trustedProxies"] = json!([
        "",
        "proxy.internal",
        7,
        "10.0.0.1",
        "10.0.0.0/40",
        "::ffff:10.0.0.0/64"
    ]);
    let out = Gateway::run_to_exit(&config, &["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    for expected in [
        "gateway.trustedProxies.0: must not be empty",
        "gateway.trustedProxies.1: expected an IP address or CIDR block",
        "gateway.trustedProxies.2: expected a string, got number",
        "gateway.trustedProxies.4: expected an IP address or CIDR block",
        "gateway.trustedProxies.5: expected an IP address or CIDR block",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("(5 problems)"), "{}", out.stderr);
}
