//! The one JSON writer of the verifier. Object keys are kept sorted
//! (`BTreeMap`) so the same report always serialises the same way; numbers
//! are rounded to three decimals; non-finite numbers become `null`.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number, rounded to three decimals when written.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object with sorted keys.
    Obj(BTreeMap<String, Json>),
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<f64> for Json {
    fn from(x: f64) -> Self {
        Json::Num(x)
    }
}

impl From<i64> for Json {
    fn from(x: i64) -> Self {
        Json::Int(x)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(x: Option<T>) -> Self {
        x.map(Into::into).unwrap_or(Json::Null)
    }
}

/// Builds an object from `(key, value)` pairs.
pub fn obj<I, K>(pairs: I) -> Json
where
    I: IntoIterator<Item = (K, Json)>,
    K: Into<String>,
{
    Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    let rounded = (x * 1000.0).round() / 1000.0;
    // `-0` is valid JSON but surprising in a report.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    let _ = write!(out, "{rounded}");
}

fn write_value(out: &mut String, v: &Json, indent: usize) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Json::Num(x) => number(out, *x),
        Json::Str(s) => escape(out, s),
        Json::Arr(items) if items.is_empty() => out.push_str("[]"),
        Json::Arr(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 2);
                write_value(out, item, indent + 2);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, indent);
            out.push(']');
        }
        Json::Obj(map) if map.is_empty() => out.push_str("{}"),
        Json::Obj(map) => {
            out.push_str("{\n");
            for (i, (k, item)) in map.iter().enumerate() {
                pad(out, indent + 2);
                escape(out, k);
                out.push_str(": ");
                write_value(out, item, indent + 2);
                if i + 1 < map.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, indent);
            out.push('}');
        }
    }
}

/// Serialises with two-space indentation and a final newline.
pub fn to_string(v: &Json) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_strings_escaped() {
        let v = obj([
            ("b", Json::from("line\n\"q\"\u{1}")),
            (
                "a",
                Json::Arr(vec![Json::Int(1), Json::Null, Json::Bool(true)]),
            ),
            ("c", obj(Vec::<(String, Json)>::new())),
        ]);
        let s = to_string(&v);
        assert_eq!(
            s,
            "{\n  \"a\": [\n    1,\n    null,\n    true\n  ],\n  \"b\": \"line\\n\\\"q\\\"\\u0001\",\n  \"c\": {}\n}\n"
        );
    }

    #[test]
    fn numbers_are_rounded_and_never_nan() {
        let s = to_string(&Json::Arr(vec![
            Json::Num(1.23456),
            Json::Num(796.0),
            Json::Num(f64::NAN),
            Json::Num(-0.0001),
        ]));
        assert_eq!(s, "[\n  1.235,\n  796,\n  null,\n  0\n]\n");
    }
}
