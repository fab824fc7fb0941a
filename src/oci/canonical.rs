//! The one canonical JSON serialisation for everything Strata hashes:
//! compact, object keys sorted by their UTF-8 bytes, no trailing newline.
//! Sorting is done here explicitly, so it holds whatever map type a value
//! came from and whatever order a struct declares its fields in.

use serde::Serialize;
use serde_json::Value;

/// Serialises `v` canonically.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(v)?;
    let mut out = Vec::new();
    write(&value, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write(&map[*k], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "Mid", "beta"] {
            m.insert(k.to_string(), serde_json::json!({"b": 1, "a": [ {"y": 2, "x": 1} ]}));
        }
        let s = String::from_utf8(to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"Mid":{"a":[{"x":1,"y":2}],"b":1},"alpha":{"a":[{"x":1,"y":2}],"b":1},"beta":{"a":[{"x":1,"y":2}],"b":1},"zeta":{"a":[{"x":1,"y":2}],"b":1}}"#
        );
    }
}
