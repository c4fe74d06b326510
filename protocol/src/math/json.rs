//! JSON output shared by [`super::synth_io`] and [`super::settle_io`]: pretty-printed with a
//! one-space indent and floats in Python's `repr` style (shortest round-trip digits; exponent
//! notation below 1e-4 and from 1e16 on, with a two-digit signed exponent such as `1e-07`), so
//! the output is byte-identical to the reference files (`json.dumps(obj, indent=1,
//! sort_keys=True)`). Keys come sorted because every map is a `BTreeMap` and struct fields are
//! declared in alphabetical order.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Formats a finite `f64` like Python's `repr(float)`.
pub fn python_float_repr(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    if !v.is_finite() {
        // not valid JSON; never produced for validated data
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // shortest round-trip digits via Rust's LowerExp: "d.ddddde±x"
    let s = format!("{:e}", v.abs());
    let (mant, exp) = match s.split_once('e') {
        Some(x) => x,
        None => (s.as_str(), "0"),
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let n = digits.len() as i32;
    let decpt = exp + 1; // value = 0.d1d2.. × 10^decpt
    let sign = if v < 0.0 { "-" } else { "" };
    let body = if !(-3..=16).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        let e = decpt - 1;
        let es = if e < 0 {
            format!("-{:02}", -e)
        } else {
            format!("+{e:02}")
        };
        if rest.is_empty() {
            format!("{first}e{es}")
        } else {
            format!("{first}.{rest}e{es}")
        }
    } else if decpt <= 0 {
        format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
    } else if decpt >= n {
        format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

/// serde_json formatter: pretty with one-space indent, Python float repr.
struct PyFormatter {
    inner: PrettyFormatter<'static>,
}

impl Formatter for PyFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

/// Serializes `value` as pretty JSON (one-space indent, Python float repr, no trailing newline).
pub fn to_pretty_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        PyFormatter {
            inner: PrettyFormatter::with_indent(b" "),
        },
    );
    value.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Maps a serde_json parse error to a one-line message; `true` if it is an out-of-range number
/// (a literal such as `1e999` that is not a finite f64).
pub fn classify_parse_error(e: &serde_json::Error) -> (String, bool) {
    let msg = e.to_string();
    let non_finite = msg.contains("number out of range");
    (msg.replace('\n', " "), non_finite)
}

#[cfg(test)]
mod tests {
    use super::python_float_repr as r;

    #[test]
    fn python_repr() {
        assert_eq!(r(7.75835596191402e-05), "7.75835596191402e-05");
        assert_eq!(r(1e-07), "1e-07");
        assert_eq!(r(0.0001), "0.0001");
        assert_eq!(r(0.12798500059105328), "0.12798500059105328");
        assert_eq!(r(-4.268034301375579), "-4.268034301375579");
        assert_eq!(r(3.0), "3.0");
        assert_eq!(r(1e16), "1e+16");
        assert_eq!(r(1e15), "1000000000000000.0");
        assert_eq!(r(123456.789), "123456.789");
        assert_eq!(r(-0.0), "-0.0");
        assert_eq!(r(1.5e300), "1.5e+300");
        assert_eq!(r(5e-324), "5e-324");
    }
}
