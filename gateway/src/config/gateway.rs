//! The `gateway` section: the webhook listener's address, trusted
//! proxies, the shutdown grace, and the admin listener with its token.

use std::net::IpAddr;
use std::time::Duration;

use jsoncfg::Walker;
use serde_json::Value;

use super::{
    parse_secret_ref, AdminSection, GatewaySection, TokenInput, DEFAULT_ADMIN_PORT, DEFAULT_PORT,
};
use crate::secrets::Secret;

pub(super) fn parse_gateway(w: &mut Walker, v: Option<&Value>) -> GatewaySection {
    let mut section = GatewaySection {
        bind: IpAddr::from([127, 0, 0, 1]),
        port: DEFAULT_PORT,
        trusted_proxies: Vec::new(),
        allow_real_ip_fallback: false,
        shutdown_grace: Duration::from_secs(10),
        admin: None,
    };
    let keys = [
        "bind",
        "port",
        "trustedProxies",
        "allowRealIpFallback",
        "shutdownGraceMs",
        "admin",
    ];
    let Some(obj) = v.and_then(|v| w.object("gateway", v, &keys)) else {
        return section;
    };
    if let Some(bind) = parse_bind(w, "gateway.bind", obj.get("bind")) {
        section.bind = bind;
    }
    section.admin = obj.get("admin").and_then(|v| parse_admin(w, v));
    if let Some(port) = w.integer("gateway.port", obj.get("port"), 0, 65535) {
        section.port = port as u16;
    }
    let proxies = obj.get("trustedProxies");
    if let Some(items) = proxies.and_then(|v| w.array("gateway.trustedProxies", v)) {
        // Every entry is checked, whatever is wrong with the others.
        for (i, item) in items.iter().enumerate() {
            let at = format!("gateway.trustedProxies.{i}");
            match w.text(&at, Some(item)) {
                Some(entry) if is_ip_or_cidr(&entry) => section.trusted_proxies.push(entry),
                Some(_) => w.issue(&at, "expected an IP address or CIDR block"),
                None => {}
            }
        }
    }
    if let Some(b) = w.bool(
        "gateway.allowRealIpFallback",
        obj.get("allowRealIpFallback"),
    ) {
        section.allow_real_ip_fallback = b;
    }
    if let Some(ms) = w.integer(
        "gateway.shutdownGraceMs",
        obj.get("shutdownGraceMs"),
        0,
        600_000,
    ) {
        section.shutdown_grace = Duration::from_millis(ms);
    }
    section
}

/// An IP address, or `loopback` / `lan`.
fn parse_bind(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<IpAddr> {
    let bind = w.text(path, v)?;
    match bind.as_str() {
        "loopback" | "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
        "lan" | "all" => Some(IpAddr::from([0, 0, 0, 0])),
        other => match other.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                w.issue(path, "expected an IP address, \"loopback\" or \"lan\"");
                None
            }
        },
    }
}

fn parse_admin(w: &mut Walker, v: &Value) -> Option<AdminSection> {
    let obj = w.object("gateway.admin", v, &["bind", "port", "token"])?;
    let mut admin = AdminSection {
        bind: IpAddr::from([127, 0, 0, 1]),
        port: DEFAULT_ADMIN_PORT,
        token: None,
    };
    if let Some(bind) = parse_bind(w, "gateway.admin.bind", obj.get("bind")) {
        admin.bind = bind;
    }
    if let Some(port) = w.integer("gateway.admin.port", obj.get("port"), 0, 65535) {
        admin.port = port as u16;
    }
    admin.token = obj
        .get("token")
        .and_then(|v| parse_token(w, "gateway.admin.token", v));
    Some(admin)
}

fn parse_token(w: &mut Walker, path: &str, v: &Value) -> Option<TokenInput> {
    if v.is_string() {
        let token = w.text(path, Some(v))?;
        if token.trim().is_empty() {
            w.issue(path, "must not be empty");
            return None;
        }
        return Some(TokenInput::Plain(Secret::new(token)));
    }
    let (source, provider, id) = parse_secret_ref(w, path, v)?;
    Some(TokenInput::Ref {
        source,
        provider,
        id,
    })
}

fn is_ip_or_cidr(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    // An IPv4-mapped block must cover whole IPv4 blocks (prefix >= 96), as
    // the plugin matches it against IPv4 clients.
    let mapped = matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
    let min = if mapped { 96 } else { 0 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| (min..=max).contains(&p)))
}
