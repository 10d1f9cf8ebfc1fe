//! The Gateway's logger: one line per event on stderr, as text
//! (`<RFC 3339 UTC time> <LEVEL> <target>: <message> [name=value ...]`) or
//! as JSON (one object per line: `time`, `level`, `target`, `message`,
//! `fields`), chosen by `logging.format`.
//!
//! Plugin records arrive through the runtime handle and are logged with
//! their target prefixed by `plugin:`; those that carry fields are written
//! through [`emit`].

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Map, Value};

/// How lines are written (`logging.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

fn format() -> Format {
    if FORMAT.load(Ordering::Relaxed) == 1 {
        Format::Json
    } else {
        Format::Text
    }
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        write_line(
            record.level(),
            record.target(),
            &record.args().to_string(),
            None,
        );
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger at `level`, writing `format`. Later calls only
/// change the level and format.
pub fn init(level: LevelFilter, format: Format) {
    let _ = log::set_logger(&StderrLogger);
    log::set_max_level(level);
    FORMAT.store(u8::from(format == Format::Json), Ordering::Relaxed);
}

/// Logs one record with structured `fields`, if `level` is enabled.
pub fn emit(level: Level, target: &str, message: &str, fields: &Map<String, Value>) {
    if level <= log::max_level() {
        write_line(level, target, message, Some(fields));
    }
}

fn write_line(level: Level, target: &str, message: &str, fields: Option<&Map<String, Value>>) {
    let line = match format() {
        Format::Text => text_line(level, target, message, fields),
        Format::Json => json_line(level, target, message, fields),
    };
    // One write per line so concurrent records never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn text_line(
    level: Level,
    target: &str,
    message: &str,
    fields: Option<&Map<String, Value>>,
) -> String {
    let mut line = format!(
        "{} {:<5} {}: {}",
        timestamp(),
        level,
        target,
        single_line(message)
    );
    for (name, value) in fields.into_iter().flatten() {
        line.push(' ');
        line.push_str(name);
        line.push('=');
        match value {
            // Bare when unambiguous, else quoted and escaped as JSON.
            Value::String(s)
                if !s.is_empty()
                    && !s.contains(|c: char| {
                        c.is_whitespace() || c.is_control() || "\"=".contains(c)
                    }) =>
            {
                line.push_str(s)
            }
            other => line.push_str(&other.to_string()),
        }
    }
    line.push('\n');
    line
}

fn json_line(
    level: Level,
    target: &str,
    message: &str,
    fields: Option<&Map<String, Value>>,
) -> String {
    let object = serde_json::json!({
        "time": timestamp(),
        "level": level.as_str(),
        "target": target,
        "message": message,
        "fields": fields.cloned().unwrap_or_default(),
    });
    // serde_json escapes control characters, so the object is one line.
    format!("{object}\n")
}

/// Keeps one event on one line: embedded newlines are escaped.
fn single_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.replace('\r', "\\r").replace('\n', "\\n")
    } else {
        s.to_owned()
    }
}

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_computed_correctly() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_420), (2025, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn records_stay_on_one_line() {
        assert_eq!(single_line("a\nb\r"), "a\\nb\\r");
    }

    #[test]
    fn a_json_line_is_one_object_with_every_part() {
        let mut fields = Map::new();
        fields.insert("route".into(), "zapier".into());
        fields.insert("revisionAfter".into(), 2.into());
        let line = json_line(
            Level::Info,
            "plugin:webhooks:audit",
            "write\nx",
            Some(&fields),
        );
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "plugin:webhooks:audit");
        assert_eq!(v["message"], "write\nx");
        assert_eq!(v["fields"]["revisionAfter"], 2);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        let plain: Value =
            serde_json::from_str(&json_line(Level::Warn, "gateway", "m", None)).unwrap();
        assert_eq!(plain["fields"], serde_json::json!({}));
    }

    #[test]
    fn text_fields_follow_the_message() {
        let mut fields = Map::new();
        fields.insert("route".into(), "zapier".into());
        fields.insert("flowId".into(), Value::Null);
        fields.insert("error".into(), "two words".into());
        let line = text_line(Level::Info, "audit", "write", Some(&fields));
        assert!(
            line.trim_end()
                .ends_with(r#": write route=zapier flowId=null error="two words""#),
            "{line}"
        );
    }
}
