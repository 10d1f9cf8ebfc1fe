//! Unit tests of `config`.

use super::*;

fn parse_text(text: &str) -> Result<Config, Vec<String>> {
    let v: Value = json5::from_str(text).unwrap();
    let parsed = parse(&v, Path::new("/etc/openclaw"));
    match parsed.config {
        Some(c) if parsed.issues.is_empty() => Ok(c),
        _ => Err(parsed.issues.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn nesting_depth_ignores_strings_and_comments() {
    assert!(!exceeds_depth("{a: [1, {b: 2}]}", 3));
    assert!(exceeds_depth("{a: [1, {b: [2]}]}", 3));
    assert!(!exceeds_depth(r#"{a: "[[[[", b: '{{{{\'{{'}"#, 1));
    assert!(!exceeds_depth("{ // [[[[\n a: 1 /* {{{{ */ }", 1));
    assert!(exceeds_depth(&"[".repeat(100_000), MAX_NESTING));
}

#[test]
fn an_empty_config_has_the_documented_defaults() {
    let c = parse_text("{}").unwrap();
    assert_eq!(c.gateway.bind, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.gateway.port, 18789);
    assert!(c.plugins.is_empty());
    assert_eq!(c.tasks.retention, Duration::from_secs(604_800));
    assert_eq!(c.tasks.cache_max_flows, 20_000);
}

#[test]
fn the_flow_cache_size_is_read_and_checked() {
    let c = parse_text("{ tasks: { cacheMaxFlows: 100 } }").unwrap();
    assert_eq!(c.tasks.cache_max_flows, 100);
    let errors = parse_text("{ tasks: { cacheMaxFlows: 0 } }").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("tasks.cacheMaxFlows: "), "{errors:?}");
}

#[test]
fn every_mistake_is_listed_with_its_full_path() {
    let errors = parse_text(
        r#"{ gateway: { port: 70000, trustedProxies: ["10.0.0.0/40"], extra: 1 },
             plugins: { load: { paths: [3] }, entries: { webhooks: { enabled: "yes" } } },
             bogus: true }"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "bogus: unknown key",
            "gateway.extra: unknown key",
            "gateway.port: expected a whole number from 0 to 65535",
            "gateway.trustedProxies.0: expected an IP address or CIDR block",
            "plugins.load.paths.0: expected a string, got number",
            "plugins.entries.webhooks.enabled: expected a boolean, got string",
        ]
    );
}

#[test]
fn every_bad_trusted_proxy_is_listed() {
    let errors = parse_text(
        r#"{ gateway: { trustedProxies: ["", "proxy.local", 7, "10.0.0.1", "10.0.0.0/40", "::ffff:10.0.0.0/64"] } }"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "gateway.trustedProxies.0: must not be empty",
            "gateway.trustedProxies.1: expected an IP address or CIDR block",
            "gateway.trustedProxies.2: expected a string, got number",
            "gateway.trustedProxies.4: expected an IP address or CIDR block",
            "gateway.trustedProxies.5: expected an IP address or CIDR block",
        ]
    );
    let c = parse_text(r#"{ gateway: { trustedProxies: [" 10.0.0.1 ", "fd00::/8"] } }"#).unwrap();
    assert_eq!(c.gateway.trusted_proxies, ["10.0.0.1", "fd00::/8"]);
}

#[test]
fn plugin_paths_resolve_against_the_config_directory() {
    let c = parse_text(r#"{ plugins: { load: { paths: ["lib", "/opt/p"] }, entries: { webhooks: { enabled: true, config: { routes: {} } } } } }"#)
        .unwrap();
    assert_eq!(
        c.plugin_paths,
        [PathBuf::from("/etc/openclaw/lib"), PathBuf::from("/opt/p")]
    );
    assert_eq!(c.plugins[0].config_json, r#"{"routes":{}}"#);
    assert!(c.plugins[0].enabled);
}

#[test]
fn the_admin_section_and_log_format_are_optional_and_checked() {
    let c = parse_text("{}").unwrap();
    assert!(c.gateway.admin.is_none());
    assert_eq!(c.log_format, Format::Text);
    let c = parse_text(
        r#"{ gateway: { admin: { token: { source: "env", provider: "default", id: "T" } } },
             logging: { format: "json" } }"#,
    )
    .unwrap();
    let admin = c.gateway.admin.unwrap();
    assert_eq!(admin.bind, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(admin.port, DEFAULT_ADMIN_PORT);
    assert!(matches!(admin.token, Some(TokenInput::Ref { ref id, .. }) if id == "T"));
    assert_eq!(c.log_format, Format::Json);
    let errors = parse_text(
        r#"{ gateway: { admin: { port: -1, token: "", extra: 1 } }, logging: { format: "xml" } }"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "gateway.admin.extra: unknown key",
            "gateway.admin.port: expected a whole number from 0 to 65535",
            "gateway.admin.token: must not be empty",
            "logging.format: expected one of text, json",
        ]
    );
}

#[test]
fn cluster_needs_both_services_and_reports_every_issue_by_path() {
    use crate::cluster::config::UrlInput;
    let c = parse_text(
        r#"{ cluster: {
            postgres: { url: "postgres://gw:pw@db:5432/gw" },
            redis: { url: { source: "env", provider: "default", id: "REDIS_URL" } } } }"#,
    )
    .unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.postgres.pool_size, 8, "the documented default");
    assert!(
        matches!(&cluster.postgres.url, UrlInput::Plain(u) if u.to_string() == "postgres://gw:***@db:5432/gw")
    );
    assert!(matches!(&cluster.redis.url, UrlInput::Ref { id, .. } if id == "REDIS_URL"));
    assert_eq!(cluster.redis.key_prefix, "openclaw:");
    assert!(parse_text("{}").unwrap().cluster.is_none());
    let prefixed = parse_text(
        r#"{ cluster: { postgres: { url: "postgres://db/gw" },
            redis: { url: "redis://r:6379/", keyPrefix: "gw-eu:" } } }"#,
    )
    .unwrap();
    assert_eq!(prefixed.cluster.unwrap().redis.key_prefix, "gw-eu:");
    let errors = parse_text(
        r#"{ cluster: { postgres: { url: "postgres://db/gw" },
            redis: { url: "redis://r:6379/", keyPrefix: "a {b}" } } }"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        ["cluster.redis.keyPrefix: expected up to 128 visible ASCII characters without braces"]
    );

    let errors =
        parse_text(r#"{ cluster: { postgres: { url: "postgres://db/gw" } } }"#).unwrap_err();
    assert_eq!(
        errors,
        ["cluster.redis: is required: cluster needs both postgres and redis"]
    );

    let errors = parse_text(
        r#"{ cluster: {
            postgres: { url: "mysql://u:hunter2@db/gw", poolSize: 0, pool: 3 },
            redis: { url: { source: "env", provider: "default" } },
            extra: 1 } }"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "cluster.extra: unknown key",
            "cluster.postgres.pool: unknown key",
            "cluster.postgres.url: expected a postgres:// or postgresql:// URL",
            "cluster.postgres.poolSize: expected a whole number from 1 to 256",
            "cluster.redis.url.id: is required",
        ]
    );
    assert!(errors.iter().all(|e| !e.contains("hunter2")));
}
