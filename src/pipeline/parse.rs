//! The body of an admitted request turned into what it asks: an action the
//! route permits and, for a write, its idempotency key claimed (or the
//! reply a finished key is answered with again).

use actix_web::http::header::HeaderMap;
use openclaw_ffi::runtime::StoredReply;

use crate::actions::{self, Key};
use crate::audit::Facts;
use crate::body;
use crate::error::{ApiError, Code};
use crate::idempotency::{self, Claimed};
use crate::request::{self, Action};
use crate::routes::Route;

/// What a request's body asks for.
// Lives on the stack for one request; boxing the action would only allocate.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    /// An action the route permits, with the write's idempotency key
    /// claimed as running for this request.
    Run(Action, Option<Key>),
    /// A keyed write whose key finished here with the same request: its
    /// reply, sent again.
    Replay(StoredReply),
}

/// The body as an action the route permits, and a write's idempotency key,
/// claimed for this request. A signed delivery without a key header is
/// keyed by its verified `webhook-id`, so a redelivery inside the
/// signature's tolerance gets the first answer.
pub(super) fn parse(
    route: &Route,
    headers: &HeaderMap,
    bytes: &[u8],
    delivery_id: Option<String>,
    facts: &mut Facts,
) -> Result<Parsed, ApiError> {
    let value = body::parse_json(bytes)?;
    let action = request::parse(&value).map_err(ApiError::invalid_request)?;
    let writes = actions::writes(&action);
    facts.action(&action, writes);
    route.access.permit(&action)?;
    if !writes {
        // Reads are safe to repeat: a key on one is ignored.
        return Ok(Parsed::Run(action, None));
    }
    let presented = match idempotency::presented_key(headers)? {
        Some(key) => Some(key),
        None => match delivery_id {
            Some(id) => {
                idempotency::check_key(&id)?;
                Some(id)
            }
            None => None,
        },
    };
    if let Some(key) = &presented {
        facts.key(key);
    }
    let Some(key) = presented else {
        if route.idempotency.required {
            return Err(ApiError::new(Code::IdempotencyKeyRequired));
        }
        return Ok(Parsed::Run(action, None));
    };
    let fingerprint = idempotency::fingerprint(&value);
    let marker = match route.keys.claim(&key, fingerprint)? {
        Claimed::Run(marker) => marker,
        Claimed::Replay(reply) => return Ok(Parsed::Replay(reply)),
    };
    let key = Key {
        key,
        fingerprint,
        marker,
    };
    Ok(Parsed::Run(action, Some(key)))
}
