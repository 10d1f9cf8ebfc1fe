//! What a callback says: its id and its JSON body, both the same on every
//! attempt.

use openclaw_ffi::runtime::OutboxEvent;
use serde::Serialize;

use crate::views::{self, FlowView};

/// `evt_<flowId>_<revision>`: one change of one flow.
pub fn webhook_id(event: &OutboxEvent) -> String {
    format!("evt_{}_{}", event.flow.flow_id, event.flow.revision)
}

/// `flow.created` for the creation, else `flow.<status>`.
pub fn event_type(event: &OutboxEvent) -> String {
    if event.created {
        "flow.created".to_owned()
    } else {
        format!("flow.{}", event.flow.status.as_str())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    route_id: &'a str,
    flow: FlowView<'a>,
}

/// `{"type","timestamp","data":{"routeId","flow"}}`; the timestamp is when
/// the change was committed, and the flow is the client view as of it.
pub fn body(route_id: &str, event: &OutboxEvent) -> Vec<u8> {
    let body = Body {
        kind: event_type(event),
        timestamp: rfc3339_millis(event.occurred_at),
        data: Data {
            route_id,
            flow: views::flow(&event.flow),
        },
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
/// e.g. `2026-11-30T21:04:05.123Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(
            rfc3339_millis(1_614_265_330_123),
            "2021-02-25T15:02:10.123Z"
        );
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
