//! How an attempt's result becomes a settlement: delivered, gone, retried
//! later (backoff with jitter, or the receiver's `Retry-After`), or dead.

use std::time::{Duration, SystemTime};

use awc::http::header::HttpDate;
use openclaw_ffi::runtime::EventOutcome;

/// Longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Any 2xx.
    Delivered,
    /// 410: the receiver does not want the event.
    Gone,
    /// Anything else: another status (redirects are not followed), a
    /// timeout or a connection error. `error` is for operators.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Judges a response status. `retry_after` is the header's value, read
/// only for 429 and 503.
pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        410 => Attempt::Gone,
        _ => Attempt::Failed {
            error: format!("HTTP {status}"),
            retry_after: match status {
                429 | 503 => retry_after.and_then(|v| parse_retry_after(v, now)),
                _ => None,
            },
        },
    }
}

/// `Retry-After`: whole seconds, or an HTTP date (a date in the past is
/// zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at: SystemTime = value.parse::<HttpDate>().ok()?.into();
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The settlement of attempt number `attempt` (1-based) that ended as
/// `result` at `now_ms`.
pub fn settle(
    result: &Attempt,
    attempt: u32,
    max_attempts: u32,
    schedule: &[Duration],
    now_ms: u64,
    seed: u64,
) -> EventOutcome {
    match result {
        Attempt::Delivered => EventOutcome::Delivered,
        Attempt::Gone => EventOutcome::Gone,
        Attempt::Failed { .. } if attempt >= max_attempts => EventOutcome::Dead,
        Attempt::Failed { retry_after, .. } => {
            let delay = retry_after.unwrap_or_else(|| backoff(schedule, attempt, seed));
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            EventOutcome::Retry {
                at: now_ms.saturating_add(delay_ms),
            }
        }
    }
}

/// The delay after failed attempt number `attempt` (1-based): the
/// schedule's entry for it (the last one repeats), between 80% and 120% of
/// it, so that receivers coming back are not hit by every sender at once.
pub fn backoff(schedule: &[Duration], attempt: u32, seed: u64) -> Duration {
    let index = (attempt.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    let base = schedule.get(index).copied().unwrap_or(Duration::ZERO);
    let unit = (mix(seed) >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.8 + 0.4 * unit)
}

/// SplitMix64: spreads a seed over 64 bits (jitter needs no more).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::callbacks::config::RETRY_SCHEDULE;

    fn failed(error: &str) -> Attempt {
        Attempt::Failed {
            error: error.into(),
            retry_after: None,
        }
    }

    #[test]
    fn any_2xx_is_delivered_410_is_gone_and_the_rest_fail() {
        let now = SystemTime::now();
        assert_eq!(classify(200, None, now), Attempt::Delivered);
        assert_eq!(classify(204, None, now), Attempt::Delivered);
        assert_eq!(classify(410, None, now), Attempt::Gone);
        assert_eq!(classify(301, None, now), failed("HTTP 301"));
        assert_eq!(classify(500, Some("5"), now), failed("HTTP 500"));
        assert_eq!(
            classify(429, Some("7"), now),
            Attempt::Failed {
                error: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn the_schedule_is_followed_with_jitter_and_its_last_delay_repeats() {
        for attempt in 1..=10u32 {
            let base = RETRY_SCHEDULE[(attempt as usize - 1).min(7)];
            for seed in 0..200 {
                let d = backoff(&RETRY_SCHEDULE, attempt, seed);
                assert!(d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2), "{d:?}");
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|s| backoff(&RETRY_SCHEDULE, 1, s)).collect();
        assert!(spread.len() > 40, "jittered");
    }

    #[test]
    fn the_last_attempt_is_dead_and_retry_after_beats_the_schedule() {
        let schedule = [Duration::from_secs(5)];
        assert_eq!(
            settle(&failed("x"), 8, 8, &schedule, 1000, 1),
            EventOutcome::Dead
        );
        assert_eq!(
            settle(&Attempt::Gone, 8, 8, &schedule, 1000, 1),
            EventOutcome::Gone
        );
        let hinted = Attempt::Failed {
            error: "HTTP 503".into(),
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            settle(&hinted, 1, 8, &schedule, 1000, 1),
            EventOutcome::Retry { at: 61_000 }
        );
        let EventOutcome::Retry { at } = settle(&failed("x"), 1, 8, &schedule, 1000, 1) else {
            panic!("expected a retry");
        };
        assert!((5_000..=7_000).contains(&at));
    }
}
