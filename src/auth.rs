//! Shared-secret authentication: the secret type, header extraction and a
//! comparison that leaks neither content nor length through timing.

use std::fmt;

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The alternate header a client may use instead of `Authorization: Bearer`.
pub const SECRET_HEADER: &str = "x-openclaw-webhook-secret";

/// A route's shared secret. It has no `Display`, its `Debug` is redacted,
/// and it is only ever compared through its digest.
#[derive(Clone)]
pub struct Secret {
    value: String,
    digest: [u8; 32],
}

impl Secret {
    pub fn new(value: String) -> Self {
        let digest = digest(value.as_bytes());
        Self { value, digest }
    }

    /// Length in characters, for the weak-secret warning.
    pub fn char_len(&self) -> usize {
        self.value.chars().count()
    }

    /// Whether `presented` equals this secret. Both sides are reduced to
    /// SHA-256 digests first, so the comparison takes the same time whatever
    /// the presented value's content or length. An empty presented value
    /// never matches.
    pub fn matches(&self, presented: &str) -> bool {
        if presented.is_empty() || self.value.is_empty() {
            return false;
        }
        bool::from(digest(presented.as_bytes()).ct_eq(&self.digest))
    }
}

/// A route's live secrets (1 to 4, for rotation); any one matches.
#[derive(Debug)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self(secrets)
    }

    /// How many live secrets there are (slots `0..len`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a serving route (it has 1 to 4), kept for symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The 0-based position of the secret `presented` equals, if any. The
    /// presented value is digested once and compared against every slot
    /// without stopping early, so timing reveals neither which slot matched
    /// nor how many there are to try. An empty presented value never
    /// matches.
    pub fn matching_slot(&self, presented: &str) -> Option<usize> {
        if presented.is_empty() {
            return None;
        }
        let presented = digest(presented.as_bytes());
        let mut found = None;
        for (slot, secret) in self.0.iter().enumerate() {
            let equal = bool::from(presented.ct_eq(&secret.digest)) && !secret.value.is_empty();
            if equal && found.is_none() {
                found = Some(slot);
            }
        }
        found
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The secret a request presents, per the OpenClaw rules:
///
/// 1. The `Authorization` value, if it starts with `bearer ` (scheme
///    matched case-insensitively, exactly one space): the rest, trimmed.
///    `Bearer` with an empty token yields an empty secret; the alternate
///    header is then not consulted.
/// 2. Otherwise the `x-openclaw-webhook-secret` value, trimmed.
///
/// `None` when either header comes on more than one line: two credentials
/// are ambiguous, and picking one would let whoever added the other line
/// decide which is checked. Such a request is refused like a wrong secret.
/// Query strings and bodies are never consulted.
pub fn presented_secret(headers: &HeaderMap) -> Option<&str> {
    let auth = single(headers, AUTHORIZATION.as_str())?;
    let alternate = single(headers, SECRET_HEADER)?;
    if let Some(auth) = auth.and_then(|v| v.to_str().ok()) {
        if auth.len() >= 7 && auth.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(auth[7..].trim());
        }
    }
    Some(
        alternate
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or(""),
    )
}

/// The one value of header `name`: `Some(None)` when absent, `None` when it
/// comes on more than one line.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<Option<&'h HeaderValue>> {
    let mut lines = headers.get_all(name);
    match (lines.next(), lines.next()) {
        (first, None) => Some(first),
        _ => None,
    }
}

/// Builds a header map from name/value pairs (tests of every guard use it).
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    use actix_web::http::header::HeaderName;
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        test_headers(pairs)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_is_trimmed() {
        assert_eq!(
            presented_secret(&headers(&[("authorization", "bEaReR  tok ")])),
            Some("tok")
        );
    }

    #[test]
    fn bearer_takes_precedence_over_the_alternate_header() {
        let h = headers(&[("authorization", "Bearer a"), (SECRET_HEADER, "b")]);
        assert_eq!(presented_secret(&h), Some("a"));
    }

    #[test]
    fn an_empty_bearer_token_does_not_fall_back() {
        let h = headers(&[("authorization", "Bearer   "), (SECRET_HEADER, "b")]);
        assert_eq!(presented_secret(&h), Some(""));
    }

    #[test]
    fn other_schemes_fall_back_to_the_alternate_header() {
        let h = headers(&[("authorization", "Basic abc"), (SECRET_HEADER, " b ")]);
        assert_eq!(presented_secret(&h), Some("b"));
        let tab = headers(&[("authorization", "Bearer\tx")]);
        assert_eq!(presented_secret(&tab), Some(""));
        assert_eq!(presented_secret(&headers(&[])), Some(""));
    }

    #[test]
    fn a_secret_header_on_two_lines_presents_no_secret() {
        for name in ["authorization", SECRET_HEADER] {
            let value = if name == SECRET_HEADER {
                "tok"
            } else {
                "Bearer tok"
            };
            let same_twice = headers(&[(name, value), (name, value)]);
            assert_eq!(presented_secret(&same_twice), None, "{name}");
        }
        // Either header repeated spoils the other too.
        let h = headers(&[
            ("authorization", "Bearer a"),
            (SECRET_HEADER, "b"),
            (SECRET_HEADER, "c"),
        ]);
        assert_eq!(presented_secret(&h), None);
        let h = headers(&[
            ("authorization", "Basic x"),
            ("authorization", "Bearer a"),
            (SECRET_HEADER, "b"),
        ]);
        assert_eq!(presented_secret(&h), None);
    }

    #[test]
    fn secrets_match_exactly_and_never_when_empty() {
        let s = Secret::new("shared-secret".into());
        assert!(s.matches("shared-secret"));
        assert!(!s.matches("shared-secreT"));
        assert!(!s.matches("shared-secret-and-more"));
        assert!(!s.matches(""));
        assert!(!Secret::new(String::new()).matches(""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn any_live_secret_matches_and_names_its_slot() {
        let set = Secrets::new(vec![
            Secret::new("old-secret-0123456789".into()),
            Secret::new("new-secret-0123456789".into()),
        ]);
        assert_eq!(set.matching_slot("old-secret-0123456789"), Some(0));
        assert_eq!(set.matching_slot("new-secret-0123456789"), Some(1));
        assert_eq!(set.matching_slot("other"), None);
        assert_eq!(set.matching_slot(""), None);
        assert_eq!(
            format!("{set:?}"),
            "Secrets([Secret(<redacted>), Secret(<redacted>)])"
        );
    }
}
