//! Forwards the plugin's log records and panic messages to the Gateway's
//! logger. A cdylib has its own copy of the `log` facade and its own panic
//! hook; without this they would print nowhere or bypass the host's format.
//!
//! Records that any client can cause once per connection, before a route
//! or a limit applies (actix's HTTP/1 parse and I/O errors, logged by
//! `actix_http` at ERROR), are a client's fault, not the server's: they are
//! logged at WARN, at most [`NOISE_BURST`] per cause in each
//! [`NOISE_PERIOD`], and the number left out is logged once the period is
//! over (or when the server stops).

use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::RStr;
use log::{Level, LevelFilter, Log, Metadata, Record};
use openclaw_ffi::runtime::{LogLevel, RuntimeBox, STRUCTURED_LOG_MARK};
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// Records from targets under this one describe one connection.
const NOISY_TARGET: &str = "actix_http";
/// Records of one cause logged per period; the rest are counted.
pub const NOISE_BURST: u32 = 5;
pub const NOISE_PERIOD: Duration = Duration::from_secs(60);
/// Distinct causes kept apart; further ones share one count.
const NOISE_CAUSES: usize = 32;

static NOISE: Mutex<Noise> = parking_lot::const_mutex(Noise::new());

struct Forward {
    runtime: Arc<RuntimeBox>,
}

impl Log for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let target = record.target();
        if target.starts_with(NOISY_TARGET) && record.level() <= Level::Warn {
            let (show, summary) = NOISE.lock().admit(target, &message, Instant::now());
            if let Some(summary) = summary {
                self.warn(SUMMARY_TARGET, &summary.to_string());
            }
            if show {
                self.warn(target, &message);
            }
            return;
        }
        self.runtime.log(
            to_ffi(record.level()),
            RStr::from_str(target),
            RStr::from_str(&message),
        );
    }

    fn flush(&self) {}
}

impl Forward {
    fn warn(&self, target: &str, message: &str) {
        if Level::Warn <= log::max_level() {
            self.runtime.log(
                LogLevel::Warn,
                RStr::from_str(target),
                RStr::from_str(message),
            );
        }
    }
}

const SUMMARY_TARGET: &str = "webhooks";

/// Logs how many records were left out, for every cause whose period is
/// over, or for every cause when `all` (the server is stopping).
pub fn log_suppressed(all: bool) {
    let due = NOISE.lock().due(Instant::now(), all);
    for summary in due {
        log::warn!(target: SUMMARY_TARGET, "{summary}");
    }
}

/// Per-cause counts of the records from [`NOISY_TARGET`].
struct Noise {
    causes: Vec<Cause>,
}

struct Cause {
    target: String,
    message: String,
    /// Start of the current period.
    since: Instant,
    shown: u32,
    left_out: u64,
}

/// How many records of one cause were left out, and over how long.
#[derive(Debug, PartialEq)]
struct Suppressed {
    target: String,
    message: String,
    count: u64,
    over: Duration,
}

impl std::fmt::Display for Suppressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} more {} records not logged in the last {} s: {}",
            self.count,
            self.target,
            self.over.as_secs().max(1),
            self.message
        )
    }
}

impl Noise {
    const fn new() -> Self {
        Self { causes: Vec::new() }
    }

    /// Whether a record is logged now, and the count its cause left out in
    /// a period that has just ended.
    fn admit(&mut self, target: &str, message: &str, now: Instant) -> (bool, Option<Suppressed>) {
        let found = self
            .causes
            .iter()
            .position(|c| c.target == target && c.message == message);
        let at = match found {
            Some(i) => i,
            None if self.causes.len() + 1 < NOISE_CAUSES => self.add(target, message, now),
            None => {
                let other = "(messages of further kinds)";
                match self.causes.iter().position(|c| c.message == other) {
                    Some(i) => i,
                    None => self.add(NOISY_TARGET, other, now),
                }
            }
        };
        let cause = &mut self.causes[at];
        let summary = if now.saturating_duration_since(cause.since) >= NOISE_PERIOD {
            cause.restart(now)
        } else {
            None
        };
        if cause.shown < NOISE_BURST {
            cause.shown += 1;
            (true, summary)
        } else {
            cause.left_out += 1;
            (false, summary)
        }
    }

    fn add(&mut self, target: &str, message: &str, now: Instant) -> usize {
        self.causes.push(Cause {
            target: target.to_owned(),
            message: message.to_owned(),
            since: now,
            shown: 0,
            left_out: 0,
        });
        self.causes.len() - 1
    }

    /// The counts of the causes whose period is over (or of all causes),
    /// each starting a new period.
    fn due(&mut self, now: Instant, all: bool) -> Vec<Suppressed> {
        self.causes
            .iter_mut()
            .filter(|c| all || now.saturating_duration_since(c.since) >= NOISE_PERIOD)
            .filter_map(|c| c.restart(now))
            .collect()
    }
}

impl Cause {
    /// Starts a new period; returns what the old one left out, if anything.
    fn restart(&mut self, now: Instant) -> Option<Suppressed> {
        let summary = (self.left_out > 0).then(|| Suppressed {
            target: self.target.clone(),
            message: self.message.clone(),
            count: self.left_out,
            over: now.saturating_duration_since(self.since),
        });
        self.since = now;
        self.shown = 0;
        self.left_out = 0;
        summary
    }
}

fn to_ffi(level: Level) -> LogLevel {
    match level {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warn,
        Level::Info => LogLevel::Info,
        Level::Debug => LogLevel::Debug,
        Level::Trace => LogLevel::Trace,
    }
}

fn to_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Installs the forwarder and the panic hook. Safe to call again (a second
/// start keeps the first logger).
pub fn install(runtime: Arc<RuntimeBox>) {
    log::set_max_level(to_filter(runtime.max_log_level()));
    let _ = log::set_boxed_logger(Box::new(Forward { runtime }));
    std::panic::set_hook(Box::new(|info| {
        log::error!(target: "webhooks", "panic inside the plugin: {info}");
    }));
}

/// Logs `message` with structured `fields` (names and JSON values), which
/// the Gateway writes as fields of the record rather than inside its text.
pub fn structured(level: Level, target: &str, message: &str, fields: Map<String, Value>) {
    if level > log::max_level() {
        return;
    }
    let payload = serde_json::json!({"message": message, "fields": fields});
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{STRUCTURED_LOG_MARK}{payload}"))
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARSE: &str = "stream error: request parse error: invalid Header provided";
    const TARGET: &str = "actix_http::h1::dispatcher";

    #[test]
    fn a_cause_is_shown_a_few_times_per_period_then_counted() {
        let mut noise = Noise::new();
        let t0 = Instant::now();
        let shown: Vec<bool> = (0..2_000)
            .map(|_| noise.admit(TARGET, PARSE, t0).0)
            .collect();
        assert_eq!(shown.iter().filter(|s| **s).count(), NOISE_BURST as usize);
        assert!(shown[..NOISE_BURST as usize].iter().all(|s| *s));
        // Another cause has its own allowance.
        assert!(noise.admit(TARGET, "stream error: I/O error", t0).0);
        // The next record after the period brings the count with it.
        let later = t0 + NOISE_PERIOD;
        let (shown, summary) = noise.admit(TARGET, PARSE, later);
        assert!(shown, "a new period shows records again");
        assert_eq!(
            summary,
            Some(Suppressed {
                target: TARGET.to_owned(),
                message: PARSE.to_owned(),
                count: 2_000 - u64::from(NOISE_BURST),
                over: NOISE_PERIOD,
            })
        );
        assert_eq!(
            summary.map(|s| s.to_string()).as_deref(),
            Some("1995 more actix_http::h1::dispatcher records not logged in the last 60 s: stream error: request parse error: invalid Header provided")
        );
    }

    #[test]
    fn counts_are_due_when_the_period_ends_or_on_demand_and_only_once() {
        let mut noise = Noise::new();
        let t0 = Instant::now();
        for _ in 0..NOISE_BURST + 3 {
            noise.admit(TARGET, PARSE, t0);
        }
        noise.admit(TARGET, "quiet cause", t0);
        assert!(noise.due(t0 + NOISE_PERIOD / 2, false).is_empty());
        let due = noise.due(t0 + NOISE_PERIOD, false);
        assert_eq!(due.len(), 1, "only causes that left something out");
        assert_eq!(due[0].count, 3);
        assert!(
            noise.due(t0 + NOISE_PERIOD * 3, true).is_empty(),
            "reported once"
        );
        for _ in 0..NOISE_BURST + 1 {
            noise.admit(TARGET, PARSE, t0 + NOISE_PERIOD * 3);
        }
        let all = noise.due(t0 + NOISE_PERIOD * 3, true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 1);
    }

    #[test]
    fn kinds_beyond_the_cap_share_one_count() {
        let mut noise = Noise::new();
        let t0 = Instant::now();
        for n in 0..1_000 {
            let message = format!("kind {n}");
            for _ in 0..NOISE_BURST + 1 {
                noise.admit(TARGET, &message, t0);
            }
        }
        assert_eq!(noise.causes.len(), NOISE_CAUSES);
        let due = noise.due(t0, true);
        let shared = due.last().map(|s| s.count);
        let kinds_sharing = 1_000 - (NOISE_CAUSES as u64 - 1);
        assert_eq!(
            shared,
            Some(kinds_sharing * u64::from(NOISE_BURST + 1) - u64::from(NOISE_BURST))
        );
    }
}
