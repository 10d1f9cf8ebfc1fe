//! The route keys that decide who may call a route: `secret` (one or a
//! list), `signing`, `allowFrom` (also plugin-wide) and `actions`.

use jsoncfg::{join, Walker};
use serde_json::{Map, Value};

use super::{parse_secret, parse_secret_with, SecretInput, SigningConfig};
use crate::access::{Access, ActionSet};
use crate::client_ip::IpNet;
use crate::request::ACTIONS;
use crate::signing::SigningKey;

/// Live secrets per list (`secret` and `signing.secrets`), enough to rotate
/// without downtime.
pub const MAX_SECRETS: usize = 4;

const SCHEMES: [&str; 1] = ["standard-webhooks"];
const DEFAULT_TOLERANCE_SECS: u64 = 300;
const MAX_TOLERANCE_SECS: u64 = 3600;

/// A route's `secret` and `signing`. A route needs at least one of them;
/// with both, a request must pass both.
pub(super) fn parse_credentials(
    w: &mut Walker,
    route: &str,
    obj: &Map<String, Value>,
) -> (Vec<SecretInput>, Option<SigningConfig>) {
    let secret = obj.get("secret");
    let signing = obj.get("signing");
    if secret.is_none() && signing.is_none() {
        w.issue(&join(route, "secret"), "is required unless signing is set");
    }
    let secrets = secret
        .and_then(|v| parse_secrets(w, &join(route, "secret"), v))
        .unwrap_or_default();
    let signing = signing.and_then(|v| parse_signing(w, &join(route, "signing"), v));
    (secrets, signing)
}

/// `secret`: a string, a SecretRef, or an array of 1 to 4 of them.
fn parse_secrets(w: &mut Walker, path: &str, v: &Value) -> Option<Vec<SecretInput>> {
    match v {
        Value::Array(items) => list(w, path, items, parse_secret),
        Value::String(_) | Value::Object(_) => parse_secret(w, path, v).map(|s| vec![s]),
        _ => {
            w.issue(
                path,
                format!("expected a string, a SecretRef object {{source, provider, id}}, or an array of 1 to {MAX_SECRETS} of them"),
            );
            None
        }
    }
}

fn parse_signing(w: &mut Walker, path: &str, v: &Value) -> Option<SigningConfig> {
    let obj = w.object(path, v, &["scheme", "secrets", "toleranceSec"])?;
    let scheme_path = join(path, "scheme");
    let scheme = w.required(&scheme_path, obj.get("scheme"));
    w.choice(&scheme_path, scheme, &SCHEMES);
    let secrets = parse_signing_keys(w, &join(path, "secrets"), obj.get("secrets"));
    let tolerance_secs = w
        .integer(
            &join(path, "toleranceSec"),
            obj.get("toleranceSec"),
            1,
            MAX_TOLERANCE_SECS,
        )
        .unwrap_or(DEFAULT_TOLERANCE_SECS);
    Some(SigningConfig {
        secrets: secrets?,
        tolerance_secs,
    })
}

/// A required list of 1 to [`MAX_SECRETS`] signing keys at `path` (a
/// route's `signing.secrets`, a callback's `signing.secrets`).
pub(crate) fn parse_signing_keys(
    w: &mut Walker,
    path: &str,
    v: Option<&Value>,
) -> Option<Vec<SecretInput<SigningKey>>> {
    match w.required(path, v)? {
        Value::Array(items) => list(w, path, items, parse_signing_secret),
        other => {
            w.issue(
                path,
                format!(
                    "expected an array of 1 to {MAX_SECRETS} \"whsec_\" secrets or SecretRefs, got {}",
                    jsoncfg::type_name(other)
                ),
            );
            None
        }
    }
}

/// A `whsec_<base64>` string (checked now) or a SecretRef (checked when it
/// is resolved).
fn parse_signing_secret(w: &mut Walker, path: &str, v: &Value) -> Option<SecretInput<SigningKey>> {
    parse_secret_with(w, path, v, |w, path, s| {
        let text = w.text(path, Some(s))?;
        SigningKey::parse(&text)
            .map_err(|e| w.issue(path, e.to_string()))
            .ok()
    })
}

/// An array of 1 to [`MAX_SECRETS`] entries, each read by `entry` at its
/// index path. `None` when anything was wrong.
fn list<T>(
    w: &mut Walker,
    path: &str,
    items: &[Value],
    mut entry: impl FnMut(&mut Walker, &str, &Value) -> Option<T>,
) -> Option<Vec<T>> {
    if !(1..=MAX_SECRETS).contains(&items.len()) {
        w.issue(
            path,
            format!("expected 1 to {MAX_SECRETS} entries, got {}", items.len()),
        );
        return None;
    }
    let out: Vec<T> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| entry(w, &join(path, &i.to_string()), item))
        .collect();
    (out.len() == items.len()).then_some(out)
}

/// A route's `allowFrom` (else the plugin-wide `inherited` one) and
/// `actions` (else all of them).
pub(super) fn parse_access(
    w: &mut Walker,
    route: &str,
    obj: &Map<String, Value>,
    inherited: Option<&[IpNet]>,
) -> Access {
    let own = parse_allow_from(w, &join(route, "allowFrom"), obj.get("allowFrom"));
    let actions = parse_actions(w, &join(route, "actions"), obj.get("actions"));
    Access {
        allow_from: own.or_else(|| inherited.map(<[IpNet]>::to_vec)),
        actions: actions.unwrap_or_default(),
    }
}

/// `allowFrom`: a non-empty array of IP addresses and CIDR blocks.
pub(super) fn parse_allow_from(
    w: &mut Walker,
    path: &str,
    v: Option<&Value>,
) -> Option<Vec<IpNet>> {
    let entries = non_empty_list(w, path, v, "IP address or CIDR block")?;
    let mut nets = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match IpNet::parse(entry) {
            Some(net) => nets.push(net),
            None => w.issue(
                &join(path, &i.to_string()),
                "expected an IP address or CIDR block",
            ),
        }
    }
    (nets.len() == entries.len()).then_some(nets)
}

/// `actions`: a non-empty array of action names.
fn parse_actions(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<ActionSet> {
    let names = non_empty_list(w, path, v, "action")?;
    let mut set = ActionSet::NONE;
    let mut clean = true;
    for (i, name) in names.iter().enumerate() {
        if !set.insert(name) {
            clean = false;
            w.issue(
                &join(path, &i.to_string()),
                format!("expected one of {}", ACTIONS.join(", ")),
            );
        }
    }
    clean.then_some(set)
}

fn non_empty_list(
    w: &mut Walker,
    path: &str,
    v: Option<&Value>,
    what: &str,
) -> Option<Vec<String>> {
    let list = w.text_list(path, v)?;
    if list.is_empty() {
        w.issue(path, format!("must list at least one {what}"));
        return None;
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, PluginConfig, RouteConfig};
    use super::*;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn route(json: &str) -> RouteConfig {
        let text = format!(r#"{{"routes":{{"r":{json}}}}}"#);
        let mut config: PluginConfig = parse(&text).unwrap();
        config.routes.remove(0)
    }

    fn issues(json: &str) -> Vec<String> {
        match parse(json) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_secret_may_be_one_entry_or_a_list_of_up_to_four() {
        assert_eq!(route(r#"{"sessionKey":"s","secret":"x"}"#).secrets.len(), 1);
        let listed = route(
            r#"{"sessionKey":"s","secret":["a",{"source":"env","provider":"p","id":"I"},"c","d"]}"#,
        );
        assert_eq!(listed.secrets.len(), 4);
        assert!(matches!(listed.secrets[1], SecretInput::Ref(_)));
        assert!(listed.signing.is_none());
    }

    #[test]
    fn signing_alone_is_enough_and_gets_the_default_tolerance() {
        let r = route(&format!(
            r#"{{"sessionKey":"s","signing":{{"scheme":"standard-webhooks","secrets":["{WHSEC}",{{"source":"env","provider":"p","id":"W"}}]}}}}"#
        ));
        assert!(r.secrets.is_empty());
        let signing = r.signing.unwrap();
        assert_eq!(signing.tolerance_secs, 300);
        assert_eq!(signing.secrets.len(), 2);
    }

    #[test]
    fn allow_from_is_inherited_unless_the_route_sets_its_own() {
        let c = parse(
            r#"{"allowFrom":["10.0.0.0/8"],"routes":{
                "a":{"path":"/a","sessionKey":"s","secret":"x"},
                "b":{"path":"/b","sessionKey":"s","secret":"x","allowFrom":["::1"],"actions":["get_flow"]}}}"#,
        )
        .unwrap();
        let (a, b) = (&c.routes[0].access, &c.routes[1].access);
        assert_eq!(
            a.allow_from,
            Some(vec![IpNet::parse("10.0.0.0/8").unwrap()])
        );
        assert_eq!(a.actions, ActionSet::ALL);
        assert_eq!(b.allow_from, Some(vec![IpNet::parse("::1").unwrap()]));
        assert!(b.actions.contains("get_flow") && !b.actions.contains("list_flows"));
        let open = route(r#"{"sessionKey":"s","secret":"x"}"#);
        assert_eq!(open.access.allow_from, None);
    }

    #[test]
    fn every_access_mistake_is_reported_at_once() {
        let short = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="; // 22 bytes
        let got = issues(&format!(
            r#"{{"allowFrom":[],"routes":{{
                "none":{{"path":"/none","sessionKey":"s"}},
                "empty":{{"path":"/empty","sessionKey":"s","secret":[]}},
                "five":{{"path":"/five","sessionKey":"s","secret":["a","b","c","d","e"]}},
                "typed":{{"path":"/typed","sessionKey":"s","secret":7}},
                "signed":{{"path":"/signed","sessionKey":"s","signing":{{
                    "scheme":"github","toleranceSec":0,
                    "secrets":["whsec_not*base64","{short}","plain",{{"source":"env","provider":"p"}}]}}}},
                "nokeys":{{"path":"/nokeys","sessionKey":"s","signing":{{"scheme":"standard-webhooks","secrets":[],"toleranceSec":3601}}}},
                "policy":{{"path":"/policy","sessionKey":"s","secret":"x",
                    "allowFrom":["10.0.0.0/33","nope","::1"],"actions":["get_flow","drop_table"]}},
                "nothing":{{"path":"/nothing","sessionKey":"s","secret":"x","allowFrom":[],"actions":[]}}
            }}}}"#
        ));
        assert_eq!(
            got,
            [
                "allowFrom: must list at least one IP address or CIDR block",
                "routes.none.secret: is required unless signing is set",
                "routes.empty.secret: expected 1 to 4 entries, got 0",
                "routes.five.secret: expected 1 to 4 entries, got 5",
                "routes.typed.secret: expected a string, a SecretRef object {source, provider, id}, or an array of 1 to 4 of them",
                "routes.signed.signing.scheme: expected one of standard-webhooks",
                "routes.signed.signing.secrets.0: is not valid base64 after \"whsec_\"",
                "routes.signed.signing.secrets.1: decodes to 22 bytes; at least 24 are required",
                "routes.signed.signing.secrets.2: expected \"whsec_\" followed by base64",
                "routes.signed.signing.secrets.3.id: is required",
                "routes.signed.signing.toleranceSec: expected a whole number from 1 to 3600",
                "routes.nokeys.signing.secrets: expected 1 to 4 entries, got 0",
                "routes.nokeys.signing.toleranceSec: expected a whole number from 1 to 3600",
                "routes.policy.allowFrom.0: expected an IP address or CIDR block",
                "routes.policy.allowFrom.1: expected an IP address or CIDR block",
                "routes.policy.actions.1: expected one of create_flow, get_flow, list_flows, find_latest_flow, resolve_flow, get_task_summary, set_waiting, resume_flow, finish_flow, fail_flow, request_cancel, cancel_flow, run_task",
                "routes.nothing.allowFrom: must list at least one IP address or CIDR block",
                "routes.nothing.actions: must list at least one action",
            ]
        );
        assert!(!got.iter().any(|i| i.contains("AAAAAAAA")));
    }
}
