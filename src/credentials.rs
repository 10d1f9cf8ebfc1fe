//! A route's credentials as starting resolves them: its bearer secrets, its
//! signing keys and its callbacks' signing keys, SecretRefs resolved
//! through the Gateway's providers.
//! Used by the start and by the start check (`--check`), so both decide the
//! same way whether a route serves.

use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::runtime::RuntimeBox;

use crate::auth::{Secret, Secrets};
use crate::config::{RouteConfig, SecretInput, SecretRef, SigningConfig, WEAK_SECRET_CHARS};
use crate::signing::{SigningKey, Verifier};

/// What a route authenticates with.
pub struct Credentials {
    /// Bearer secrets; `None` when the route is authenticated by signature
    /// only.
    pub secrets: Option<Secrets>,
    /// Standard Webhooks verification, when the route is signed.
    pub signing: Option<Verifier>,
    /// The keys its callbacks are signed with, when it has callbacks (a
    /// route whose callbacks cannot be signed is skipped: its events would
    /// never be delivered).
    pub callback_keys: Option<Vec<SigningKey>>,
    /// Warnings to give about them (weak plain-text secrets), naming the
    /// slot, never the value.
    pub warnings: Vec<String>,
}

/// Resolves the credentials of `route`, taking them out of it.
///
/// # Errors
///
/// Why the route is skipped: an entry that cannot be resolved, naming the
/// reference and the provider's reason, never a value.
pub fn resolve(runtime: &RuntimeBox, route: &mut RouteConfig) -> Result<Credentials, String> {
    let inputs = std::mem::take(&mut route.secrets);
    let listed = inputs.len() > 1;
    let mut warnings = Vec::new();
    let mut secrets = Vec::with_capacity(inputs.len());
    for (slot, input) in inputs.into_iter().enumerate() {
        let secret = match input {
            SecretInput::Plain(secret) => {
                if secret.char_len() < WEAK_SECRET_CHARS {
                    let which = if listed {
                        format!(" (secret.{slot})")
                    } else {
                        String::new()
                    };
                    warnings.push(format!(
                        "plain-text secret shorter than {WEAK_SECRET_CHARS} characters{which}"
                    ));
                }
                secret
            }
            SecretInput::Ref(r) => Secret::new(resolve_ref(runtime, &r)?),
        };
        secrets.push(secret);
    }
    let signing = match route.signing.take() {
        Some(signing) => Some(resolve_signing(runtime, signing)?),
        None => None,
    };
    let callback_keys = match route.callbacks.as_mut() {
        Some(c) => Some(signing_keys(
            runtime,
            "callbacks.signing.secrets",
            std::mem::take(&mut c.secrets),
        )?),
        None => None,
    };
    Ok(Credentials {
        secrets: (!secrets.is_empty()).then(|| Secrets::new(secrets)),
        signing,
        callback_keys,
        warnings,
    })
}

fn resolve_signing(runtime: &RuntimeBox, signing: SigningConfig) -> Result<Verifier, String> {
    let keys = signing_keys(runtime, "signing.secrets", signing.secrets)?;
    Ok(Verifier::new(keys, signing.tolerance_secs))
}

/// Signing keys, SecretRefs resolved and checked; `field` is the config
/// path of the list, which errors name with the entry's index.
///
/// # Errors
///
/// The first entry that cannot be resolved or is not a signing key, named
/// by its path and reference, never by its value.
pub fn signing_keys(
    runtime: &RuntimeBox,
    field: &str,
    inputs: Vec<SecretInput<SigningKey>>,
) -> Result<Vec<SigningKey>, String> {
    let mut keys = Vec::with_capacity(inputs.len());
    for (slot, input) in inputs.into_iter().enumerate() {
        let key = match input {
            SecretInput::Plain(key) => key,
            SecretInput::Ref(r) => {
                let value = resolve_ref(runtime, &r).map_err(|e| format!("{field}.{slot}: {e}"))?;
                SigningKey::parse(&value).map_err(|e| {
                    format!("{field}.{slot} ({}:{}:{}) {e}", r.source, r.provider, r.id)
                })?
            }
        };
        keys.push(key);
    }
    Ok(keys)
}

/// A SecretRef's trimmed value.
fn resolve_ref(runtime: &RuntimeBox, r: &SecretRef) -> Result<String, String> {
    let resolved = runtime.resolve_secret(
        RStr::from_str(&r.source),
        RStr::from_str(&r.provider),
        RStr::from_str(&r.id),
    );
    match resolved {
        RResult::ROk(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        RResult::ROk(_) => Err(format!(
            "secret {}:{}:{} resolved to an empty value",
            r.source, r.provider, r.id
        )),
        RResult::RErr(reason) => Err(reason.into()),
    }
}
