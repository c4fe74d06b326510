//! Parsing of the values that external models and truth sources return.
//!
//! A single value may be (after trimming whitespace):
//!
//! - a plain number: `0.0123`, `-1e-5` (what the Allora off-chain node expects);
//! - a JSON string holding a number: `"0.0123"`;
//! - a JSON object with a `value` field holding either: `{"value": 0.0123}`,
//!   `{"value": "0.0123"}`;
//! - a JSON array of exactly one of these: `[0.0123]`, `["0.0123"]`.
//!
//! `null` (or `{"value": null}`) means "no value" ([`parse_optional_value`] gives `None`;
//! [`parse_value`] an error). NaN, infinities and numbers too large for `f64` are rejected as
//! [`ValueError::NonFinite`].
//!
//! Forecasts come in either of the Allora off-chain node's two shapes:
//! - its current one, a JSON object mapping an inferer id to a value: a number, a numeric
//!   string, or an array whose first element is one (empty arrays are skipped);
//! - its earlier one, an array of `{"worker": "<inferer>", "value": <value>}` objects.

use std::collections::BTreeMap;

use serde_json::Value;

/// A response is not a usable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Nothing but whitespace.
    #[error("empty response")]
    Empty,
    /// `null` where a value is required.
    #[error("response holds no value (null)")]
    Missing,
    /// Not a number in any accepted form; carries a short excerpt.
    #[error("not a number: {0:?}")]
    NotANumber(String),
    /// A number that is NaN or infinite (or overflows `f64`).
    #[error("not finite: {0:?}")]
    NonFinite(String),
    /// One forecast entry is unusable.
    #[error("forecast for `{inferer}`: {reason}")]
    Forecast {
        /// The inferer id.
        inferer: String,
        /// What is wrong.
        reason: Box<ValueError>,
    },
}

impl ValueError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ValueError::Empty => "empty",
            ValueError::Missing => "missing",
            ValueError::NotANumber(_) => "not_a_number",
            ValueError::NonFinite(_) => "non_finite",
            ValueError::Forecast { reason, .. } => reason.reason(),
        }
    }
}

const EXCERPT: usize = 64;

fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn number_from_str(s: &str) -> Result<f64, ValueError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(ValueError::NonFinite(excerpt(s))),
        Err(_) => Err(ValueError::NotANumber(excerpt(s))),
    }
}

fn number_from_json(v: &Value) -> Result<Option<f64>, ValueError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ValueError::NonFinite(n.to_string())),
        },
        Value::String(s) => number_from_str(s).map(Some),
        other => Err(ValueError::NotANumber(excerpt(&other.to_string()))),
    }
}

/// Parses one value; `Ok(None)` for `null` / `{"value": null}`.
pub fn parse_optional_value(body: &[u8]) -> Result<Option<f64>, ValueError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ValueError::NotANumber(excerpt(&String::from_utf8_lossy(body))))?
        .trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('{') || text.starts_with('"') || text.starts_with('[') {
        let json: Value = serde_json::from_str(text).map_err(|e| {
            // serde_json refuses numbers that overflow f64.
            if e.to_string().contains("out of range") {
                ValueError::NonFinite(excerpt(text))
            } else {
                ValueError::NotANumber(excerpt(text))
            }
        })?;
        return match &json {
            Value::Object(map) => match map.get("value") {
                Some(v) => number_from_json(v),
                None => Err(ValueError::NotANumber(excerpt(text))),
            },
            Value::Array(items) => match items.as_slice() {
                [one @ (Value::Number(_) | Value::String(_) | Value::Null)] => {
                    number_from_json(one)
                }
                _ => Err(ValueError::NotANumber(excerpt(text))),
            },
            other => number_from_json(other),
        };
    }
    number_from_str(text).map(Some)
}

/// Parses one value; `null` is [`ValueError::Missing`].
pub fn parse_value(body: &[u8]) -> Result<f64, ValueError> {
    parse_optional_value(body)?.ok_or(ValueError::Missing)
}

/// Parses a forecasts object `{"<inferer>": value, …}` (see the module docs). Any unusable entry
/// fails the whole response.
pub fn parse_forecasts(body: &[u8]) -> Result<BTreeMap<String, f64>, ValueError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ValueError::NotANumber(excerpt(&String::from_utf8_lossy(body))))?
        .trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    let json: Value =
        serde_json::from_str(text).map_err(|_| ValueError::NotANumber(excerpt(text)))?;
    let entries: Vec<(String, Value)> = match json {
        Value::Object(map) => map.into_iter().collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(mut o) => match (o.remove("worker"), o.remove("value")) {
                    (Some(Value::String(worker)), Some(value)) => Ok((worker, value)),
                    _ => Err(ValueError::NotANumber(excerpt(text))),
                },
                _ => Err(ValueError::NotANumber(excerpt(text))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ValueError::NotANumber(excerpt(text))),
    };
    let mut out = BTreeMap::new();
    for (inferer, v) in entries {
        let v = match v {
            Value::Array(items) => match items.into_iter().next() {
                Some(first) => first,
                None => continue,
            },
            v => v,
        };
        match number_from_json(&v) {
            Ok(Some(x)) => {
                out.insert(inferer, x);
            }
            Ok(None) => {
                return Err(ValueError::Forecast {
                    inferer,
                    reason: Box::new(ValueError::Missing),
                });
            }
            Err(e) => {
                return Err(ValueError::Forecast {
                    inferer,
                    reason: Box::new(e),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for body in [
            "0.0123",
            " 0.0123\n",
            "\"0.0123\"",
            "{\"value\": 0.0123}",
            "{\"value\": \"0.0123\", \"extra\": 1}",
            "1.23e-2",
            "[0.0123]",
            "[\"0.0123\"]",
        ] {
            assert_eq!(parse_value(body.as_bytes()), Ok(0.0123), "{body}");
        }
        assert_eq!(parse_optional_value(b"null"), Ok(None));
        assert_eq!(parse_optional_value(b"{\"value\":null}"), Ok(None));
        assert_eq!(parse_value(b"null"), Err(ValueError::Missing));
    }

    #[test]
    fn garbage_is_typed() {
        assert_eq!(parse_value(b"  "), Err(ValueError::Empty));
        assert!(matches!(
            parse_value(b"abc"),
            Err(ValueError::NotANumber(_))
        ));
        for not_one in ["[]", "[1, 2]", "[[1]]", "[{\"value\": 1}]"] {
            assert!(
                matches!(
                    parse_value(not_one.as_bytes()),
                    Err(ValueError::NotANumber(_))
                ),
                "{not_one}"
            );
        }
        assert!(matches!(
            parse_value(b"{\"v\": 1}"),
            Err(ValueError::NotANumber(_))
        ));
        assert!(matches!(
            parse_value(b"{\"value\": true}"),
            Err(ValueError::NotANumber(_))
        ));
        assert!(matches!(
            parse_value(&[0xff, 0xfe]),
            Err(ValueError::NotANumber(_))
        ));
        for nf in [
            "NaN",
            "inf",
            "-infinity",
            "1e999",
            "\"nan\"",
            "{\"value\": \"inf\"}",
            "{\"value\": 1e999}",
        ] {
            assert!(
                matches!(parse_value(nf.as_bytes()), Err(ValueError::NonFinite(_))),
                "{nf}"
            );
        }
        let long = "x".repeat(1000);
        match parse_value(long.as_bytes()) {
            Err(ValueError::NotANumber(s)) => assert!(s.chars().count() <= EXCERPT + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forecasts() {
        let f = parse_forecasts(br#"{"w1": 0.5, "w2": "-1.5", "w3": [2.5, 9], "w4": []}"#).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f["w1"], 0.5);
        assert_eq!(f["w2"], -1.5);
        assert_eq!(f["w3"], 2.5);
        let e = parse_forecasts(br#"{"w1": 0.5, "w2": "NaN"}"#).unwrap_err();
        assert_eq!(e.reason(), "non_finite");
        assert!(parse_forecasts(b"[1,2]").is_err());
        assert!(parse_forecasts(br#"{"w": null}"#).is_err());
    }

    #[test]
    fn forecasts_in_allora_earlier_shape() {
        let f = parse_forecasts(
            br#"[{"worker": "w1", "value": "0.5"}, {"worker": "w2", "value": -1.5}]"#,
        )
        .unwrap();
        assert_eq!(f, BTreeMap::from([("w1".into(), 0.5), ("w2".into(), -1.5)]));
        for bad in [
            r#"[{"worker": "w1"}]"#,
            r#"[{"value": 1}]"#,
            r#"[{"worker": 3, "value": 1}]"#,
            r#"[{"worker": "w1", "value": "inf"}]"#,
        ] {
            assert!(parse_forecasts(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
