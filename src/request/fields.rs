//! The field reader behind the action schemas: typed reads of one JSON
//! object, each failure recorded as an issue worded like zod's (the
//! OpenClaw plugin validates with zod 4), and the number rules JavaScript
//! implies.
//!
//! Strings are trimmed before their length is checked, and the trimmed
//! value is what is used (zod's `string().trim()`); enumerations and the
//! action name match exactly (zod's `enum` and `literal`).

use abi_stable::std_types::{ROption, RString};
use jsoncfg::Issue;
use openclaw_ffi::records::TextPatch;
use serde_json::{Map, Value};

pub(super) fn issue(path: &str, message: impl Into<String>) -> Issue {
    Issue {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Whether `v` holds a float with no fractional part within the range where
/// JavaScript prints it as an integer.
fn whole_float(n: &serde_json::Number) -> Option<serde_json::Number> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    let f = n.as_f64().filter(|_| n.is_f64())?;
    (f.fract() == 0.0 && f.abs() <= MAX_SAFE).then(|| {
        if f < 0.0 {
            serde_json::Number::from(f as i64)
        } else {
            serde_json::Number::from(f as u64)
        }
    })
}

fn has_whole_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => whole_float(n).is_some(),
        Value::Array(items) => items.iter().any(has_whole_float),
        Value::Object(map) => map.values().any(has_whole_float),
        _ => false,
    }
}

fn whole_floats_to_integers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(int) = whole_float(n) {
                *n = int;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(whole_floats_to_integers),
        _ => {}
    }
}

/// zod's name for a value's type.
pub(super) fn received(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// Reads the fields of one action object, recording issues and which keys
/// were read so that the rest can be refused as unknown.
pub(super) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    read: Vec<&'static str>,
    pub(super) issues: Vec<Issue>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(obj: &'a Map<String, Value>) -> Self {
        Self {
            obj,
            read: vec!["action"],
            issues: Vec::new(),
        }
    }

    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.obj.get(key)
    }

    pub(super) fn expected(&mut self, key: &str, what: &str, v: Option<&Value>) {
        self.issues.push(issue(
            key,
            format!("Invalid input: expected {what}, received {}", received(v)),
        ));
    }

    fn trimmed(&mut self, key: &'static str, v: &str) -> Option<String> {
        let t = v.trim();
        if t.is_empty() {
            self.issues.push(issue(
                key,
                "Too small: expected string to have >=1 characters",
            ));
            return None;
        }
        Some(t.to_owned())
    }

    /// A required non-empty string.
    pub(super) fn text(&mut self, key: &'static str) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => self.trimmed(key, s),
            other => {
                self.expected(key, "string", other);
                None
            }
        }
    }

    /// An optional non-empty string.
    pub(super) fn opt_text(&mut self, key: &'static str) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => self.trimmed(key, s),
            other => {
                self.expected(key, "string", other);
                None
            }
        }
    }

    /// An optional string that may be `null` to clear.
    pub(super) fn nullable(&mut self, key: &'static str) -> TextPatch {
        match self.get(key) {
            None => TextPatch::Keep,
            Some(Value::Null) => TextPatch::Clear,
            Some(Value::String(s)) => self
                .trimmed(key, s)
                .map_or(TextPatch::Keep, |s| TextPatch::Set(s.into())),
            other => {
                self.expected(key, "string", other);
                TextPatch::Keep
            }
        }
    }

    /// Any JSON value, `null` included, as JSON text. Whole numbers written
    /// as floats (`1.0`, `1e3`) are stored as integers, as a JavaScript
    /// client reading them back would see them.
    pub(super) fn json(&mut self, key: &'static str) -> ROption<RString> {
        match self.get(key) {
            None => ROption::RNone,
            Some(v) if has_whole_float(v) => {
                let mut v = v.clone();
                whole_floats_to_integers(&mut v);
                ROption::RSome(v.to_string().into())
            }
            Some(v) => ROption::RSome(v.to_string().into()),
        }
    }

    pub(super) fn opt_bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            other => {
                self.expected(key, "boolean", other);
                None
            }
        }
    }

    /// A required non-negative safe integer.
    pub(super) fn revision(&mut self, key: &'static str) -> Option<u64> {
        let v = self.get(key);
        self.integer(key, v)
    }

    pub(super) fn opt_timestamp(&mut self, key: &'static str) -> Option<u64> {
        match self.get(key) {
            None => None,
            v => self.integer(key, v),
        }
    }

    pub(super) fn integer(&mut self, key: &'static str, v: Option<&Value>) -> Option<u64> {
        const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
        let Some(n) = v
            .and_then(Value::as_f64)
            .filter(|_| v.is_some_and(Value::is_number))
        else {
            self.expected(key, "number", v);
            return None;
        };
        if n.fract() != 0.0 {
            self.expected(key, "int", v);
            None
        } else if n < 0.0 {
            self.issues
                .push(issue(key, "Too small: expected number to be >=0"));
            None
        } else if n > MAX_SAFE {
            self.issues
                .push(issue(key, "Too big: expected int to be <=9007199254740991"));
            None
        } else {
            Some(n as u64)
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        options: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let v = self.get(key);
        // Enumerations match exactly, as zod's `enum` does: no trimming, no
        // case folding.
        let found = v
            .and_then(Value::as_str)
            .and_then(|s| options.iter().copied().find(|o| name(*o) == s));
        if found.is_none() {
            let list: Vec<String> = options
                .iter()
                .map(|o| format!("\"{}\"", name(*o)))
                .collect();
            self.issues.push(issue(
                key,
                format!("Invalid option: expected one of {}", list.join("|")),
            ));
        }
        found
    }

    pub(super) fn opt_choice<T: Copy>(
        &mut self,
        key: &'static str,
        options: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        if self.obj.contains_key(key) {
            self.choice(key, options, name)
        } else {
            self.read.push(key);
            None
        }
    }

    /// Whether the object has `key` at all (`null` included).
    pub(super) fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    /// Records a cross-field issue, unless a field already failed (the
    /// rule only judges fields that are each valid).
    pub(super) fn cross_field_issue(&mut self, path: &str, message: &str) {
        if self.issues.is_empty() {
            self.issues.push(issue(path, message));
        }
    }

    /// The value read, or every issue found: unknown keys are refused last.
    pub(super) fn finish<T>(mut self, value: Option<T>) -> Result<T, Vec<Issue>> {
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !self.read.contains(&k.as_str()))
            .map(|k| format!("\"{k}\""))
            .collect();
        if !unknown.is_empty() {
            let noun = if unknown.len() == 1 { "key" } else { "keys" };
            self.issues.push(issue(
                "",
                format!("Unrecognized {noun}: {}", unknown.join(", ")),
            ));
        }
        match value {
            Some(v) if self.issues.is_empty() => Ok(v),
            _ => Err(self.issues),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads one object with `read`, returning what it read and the first
    /// issue's `path: message`, if any.
    fn read<T>(v: Value, read: impl FnOnce(&mut Fields<'_>) -> Option<T>) -> Result<T, String> {
        let Value::Object(obj) = v else {
            panic!("not an object")
        };
        let mut f = Fields::new(&obj);
        let value = read(&mut f);
        f.finish(value).map_err(|issues| issues[0].to_string())
    }

    #[test]
    fn strings_are_trimmed_before_their_length_is_checked() {
        assert_eq!(
            read(json!({"goal": "  g  "}), |f| f.text("goal")),
            Ok("g".to_owned())
        );
        assert_eq!(
            read(json!({"goal": " \t "}), |f| f.text("goal")),
            Err("goal: Too small: expected string to have >=1 characters".to_owned())
        );
        assert_eq!(
            read(json!({"step": " s "}), |f| Some(f.nullable("step"))),
            Ok(TextPatch::Set("s".into()))
        );
    }

    #[test]
    fn enumerations_match_exactly() {
        const OPTIONS: [&str; 2] = ["subagent", "acp"];
        let choose = |v: Value| read(v, |f| f.choice("runtime", &OPTIONS, |o| o));
        assert_eq!(choose(json!({"runtime": "acp"})), Ok("acp"));
        for near in [" acp", "acp ", "ACP", "Acp"] {
            assert_eq!(
                choose(json!({"runtime": near})),
                Err("runtime: Invalid option: expected one of \"subagent\"|\"acp\"".to_owned()),
                "{near:?}"
            );
        }
    }

    #[test]
    fn integers_follow_zod_wording() {
        let revision = |v: Value| read(json!({"r": v}), |f| f.revision("r"));
        assert_eq!(revision(json!(0)), Ok(0));
        assert_eq!(revision(json!(3.0)), Ok(3));
        assert_eq!(
            revision(json!(-1)),
            Err("r: Too small: expected number to be >=0".to_owned())
        );
        assert_eq!(
            revision(json!(1.5)),
            Err("r: Invalid input: expected int, received number".to_owned())
        );
        assert_eq!(
            revision(json!(9_007_199_254_740_992_u64)),
            Err("r: Too big: expected int to be <=9007199254740991".to_owned())
        );
        assert_eq!(
            revision(json!("1")),
            Err("r: Invalid input: expected number, received string".to_owned())
        );
    }
}
