//! Walks a parsed JSON config value and collects every problem at once.
//!
//! Config is parsed, not validated: callers read each key through a
//! [`Walker`], which converts it to a typed value or records an [`Issue`]
//! naming the full dotted path, and keeps going. Unknown keys are issues too.
//! After the walk, a non-empty [`Walker::issues`] means the whole config is
//! refused, with every problem listed.

use std::fmt;

use serde_json::{Map, Value};

/// One problem, at one dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Joins a dotted path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Names the JSON type of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Collects issues while typed values are read out of a JSON tree.
#[derive(Debug, Default)]
pub struct Walker {
    pub issues: Vec<Issue>,
}

impl Walker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Reads an object whose keys must all be in `allowed`; every other key
    /// is reported as unknown.
    pub fn object<'v>(
        &mut self,
        path: &str,
        v: &'v Value,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let map = self.map(path, v)?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.issue(&join(path, key), "unknown key");
            }
        }
        Some(map)
    }

    /// Reads an object with arbitrary keys (a map of named entries).
    pub fn map<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(map) => Some(map),
            other => {
                self.issue(
                    path,
                    format!("expected an object, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Reports a missing required key.
    pub fn required<'v>(&mut self, path: &str, v: Option<&'v Value>) -> Option<&'v Value> {
        if v.is_none() {
            self.issue(path, "is required");
        }
        v
    }

    pub fn bool(&mut self, path: &str, v: Option<&Value>) -> Option<bool> {
        match v? {
            Value::Bool(b) => Some(*b),
            other => {
                self.issue(
                    path,
                    format!("expected a boolean, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Reads a string, trimmed; an empty result is an issue.
    pub fn text(&mut self, path: &str, v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) if s.trim().is_empty() => {
                self.issue(path, "must not be empty");
                None
            }
            Value::String(s) => Some(s.trim().to_owned()),
            other => {
                self.issue(path, format!("expected a string, got {}", type_name(other)));
                None
            }
        }
    }

    /// Reads a whole number within `min..=max`.
    pub fn integer(&mut self, path: &str, v: Option<&Value>, min: u64, max: u64) -> Option<u64> {
        let v = v?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if v.is_number() => {
                self.issue(path, format!("expected a whole number from {min} to {max}"));
                None
            }
            _ => {
                self.issue(path, format!("expected a number, got {}", type_name(v)));
                None
            }
        }
    }

    /// Reads an array.
    pub fn array<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v Vec<Value>> {
        match v {
            Value::Array(items) => Some(items),
            other => {
                self.issue(path, format!("expected an array, got {}", type_name(other)));
                None
            }
        }
    }

    /// Reads an array of non-empty strings.
    pub fn text_list(&mut self, path: &str, v: Option<&Value>) -> Option<Vec<String>> {
        let items = self.array(path, v?)?;
        let before = self.issues.len();
        let out: Vec<String> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.text(&join(path, &i.to_string()), Some(item)))
            .collect();
        (self.issues.len() == before).then_some(out)
    }

    /// Reads a string that must be one of `choices`.
    pub fn choice<'c>(
        &mut self,
        path: &str,
        v: Option<&Value>,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let s = self.text(path, v)?;
        let found = choices.iter().find(|c| **c == s).copied();
        if found.is_none() {
            self.issue(path, format!("expected one of {}", choices.join(", ")));
        }
        found
    }

    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_collected_with_its_path() {
        let v = json!({"a": {"b": 1, "extra": true}, "c": "", "d": [1, "x"]});
        let mut w = Walker::new();
        let root = w
            .object("", &v, &["a", "c", "d"])
            .unwrap_or_else(|| unreachable!());
        let a = w.object("a", &root["a"], &["b"]);
        assert!(a.is_some());
        w.text("a.b", root["a"].get("b"));
        w.text("c", root.get("c"));
        w.text_list("d", root.get("d"));
        let paths: Vec<_> = w.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["a.extra", "a.b", "c", "d.0"]);
    }

    #[test]
    fn integers_are_range_checked() {
        let mut w = Walker::new();
        assert_eq!(w.integer("n", Some(&json!(5)), 1, 10), Some(5));
        assert_eq!(w.integer("n", Some(&json!(0)), 1, 10), None);
        assert_eq!(w.integer("n", Some(&json!(1.5)), 1, 10), None);
        assert_eq!(w.integer("n", Some(&json!("5")), 1, 10), None);
        assert_eq!(w.issues.len(), 3);
    }
}
