//! The standard Gateway configs the tests and the benchmark start from.

use serde_json::{json, Value};

use crate::dirs::plugin_dirs;

pub const SECRET: &str = "shared-secret-0123456789";
pub const SESSION: &str = "agent:main:main";
pub const ROUTE_PATH: &str = "/plugins/webhooks/zapier";

/// The standard route (`ROUTE_PATH`, `SESSION`, `SECRET`) with `extra`
/// merged in.
pub fn route(extra: Value) -> Value {
    let mut r = json!({"path": ROUTE_PATH, "sessionKey": SESSION, "secret": SECRET});
    merge(&mut r, extra);
    r
}

/// Sets every key of `extra` on `base` (one level deep; objects only).
pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// A whole Gateway config on an ephemeral loopback port, with the webhooks
/// plugin (configured by `plugin_config`) loaded from the build directory,
/// and `extra` merged in at the top level.
pub fn gateway_config(plugin_config: Value, extra: Value) -> Value {
    let mut config = json!({
        "gateway": {"bind": "127.0.0.1", "port": 0},
        "plugins": {
            "load": {"paths": plugin_dirs()},
            "entries": {"webhooks": {"enabled": true, "config": plugin_config}}
        }
    });
    merge(&mut config, extra);
    config
}

/// The default setup: one route `zapier` on `ROUTE_PATH`.
pub fn default_config() -> Value {
    gateway_config(json!({"routes": {"zapier": route(json!({}))}}), json!({}))
}

/// The default setup with `limits` on the route, and `gateway` merged into
/// the config's `gateway` section (e.g. `{"trustedProxies": [..]}`).
pub fn limited(limits: Value, gateway: Value) -> Value {
    let mut config = gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": limits}))}}),
        json!({}),
    );
    merge(&mut config["gateway"], gateway);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_puts_limits_on_the_route_and_merges_into_the_gateway_section() {
        let config = limited(
            json!({"maxInFlight": 1}),
            json!({"trustedProxies": ["127.0.0.1"]}),
        );
        assert_eq!(
            config["gateway"],
            json!({"bind": "127.0.0.1", "port": 0, "trustedProxies": ["127.0.0.1"]})
        );
        let route = &config["plugins"]["entries"]["webhooks"]["config"]["routes"]["zapier"];
        assert_eq!(route["limits"], json!({"maxInFlight": 1}));
        assert_eq!(route["path"], ROUTE_PATH);
    }
}
