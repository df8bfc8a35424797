//! A small EDN value tree and writer, for results.edn and history.edn, plus
//! the matching JSON form for results.json.
//!
//! Floats print like Java's `Float.toString` / `Double.toString` (JDK 19 and
//! later: the shortest decimal that reads back as the same value), because
//! that is what Maelstrom's results.edn shows (`8.181818`, `1.0`, `1.0E-4`).

use std::fmt::{self, Write};

use serde_json::Value;

/// One EDN value. Maps keep their insertion order, so output follows the
/// order in which a map was built.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    /// Wide enough for every JSON integer (u64 and i64 alike).
    Int(i128),
    /// A single-precision float, as Clojure's `(float x)`.
    Float(f32),
    Double(f64),
    Str(String),
    /// A keyword, stored without its leading colon.
    Keyword(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Set(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    pub fn keyword(name: &str) -> Edn {
        Edn::Keyword(name.to_string())
    }

    pub fn str(s: &str) -> Edn {
        Edn::Str(s.to_string())
    }

    /// A map with keyword keys, the common case.
    pub fn kw_map<'a>(entries: impl IntoIterator<Item = (&'a str, Edn)>) -> Edn {
        Edn::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Edn::keyword(k), v))
                .collect(),
        )
    }

    /// Converts a JSON value the way Maelstrom reads a node's JSON: arrays
    /// become vectors and object keys become keywords (strings when they
    /// cannot be written as a keyword).
    pub fn from_json(value: &Value) -> Edn {
        match value {
            Value::Null => Edn::Nil,
            Value::Bool(b) => Edn::Bool(*b),
            Value::Number(n) => json_number_to_edn(n),
            Value::String(s) => Edn::Str(s.clone()),
            Value::Array(items) => Edn::Vector(items.iter().map(Edn::from_json).collect()),
            Value::Object(map) => Edn::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = if is_keyword_name(k) {
                            Edn::keyword(k)
                        } else {
                            Edn::str(k)
                        };
                        (key, Edn::from_json(v))
                    })
                    .collect(),
            ),
        }
    }

    /// The JSON form used by results.json: keywords become their names,
    /// lists and sets become arrays, map keys become strings (numbers as
    /// their EDN text, so quantile keys read "0", "0.5", ..., "1").
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => int_to_json(*i),
            Edn::Float(f) => float_to_json(java_float_string(*f), f.is_finite()),
            Edn::Double(d) => float_to_json(java_double_string(*d), d.is_finite()),
            Edn::Str(s) | Edn::Keyword(s) => Value::String(s.clone()),
            Edn::Vector(items) | Edn::List(items) | Edn::Set(items) => {
                Value::Array(items.iter().map(Edn::to_json).collect())
            }
            Edn::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (json_key(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn json_number_to_edn(n: &serde_json::Number) -> Edn {
    if let Some(u) = n.as_u64() {
        Edn::Int(i128::from(u))
    } else if let Some(i) = n.as_i64() {
        Edn::Int(i128::from(i))
    } else {
        // serde_json without arbitrary_precision: every other number is an f64.
        Edn::Double(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn int_to_json(i: i128) -> Value {
    if let Ok(u) = u64::try_from(i) {
        Value::from(u)
    } else if let Ok(s) = i64::try_from(i) {
        Value::from(s)
    } else {
        Value::String(i.to_string())
    }
}

/// Parses the shortest decimal back as an f64 so serde_json prints the same
/// digits (an f32 widened to f64 would print 8.181818008422852).
fn float_to_json(text: String, finite: bool) -> Value {
    if !finite {
        return Value::Null;
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn json_key(key: &Edn) -> String {
    match key {
        Edn::Str(s) | Edn::Keyword(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `name` can be written as `:name` and read back by an EDN reader.
pub fn is_keyword_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let symbol_char = |c: char| c.is_ascii_alphanumeric() || "*+!-_?<>=.".contains(c) || c == '/';
    !first.is_ascii_digit()
        && first != ':'
        && first != '/'
        && symbol_char(first)
        && chars.all(symbol_char)
        && !name.ends_with('/')
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write_edn_float(f, *x as f64, java_float_string(*x)),
            Edn::Double(x) => write_edn_float(f, *x, java_double_string(*x)),
            Edn::Str(s) => write_edn_string(f, s),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Vector(items) => write_seq(f, "[", items, "]"),
            Edn::List(items) => write_seq(f, "(", items, ")"),
            Edn::Set(items) => write_seq(f, "#{", items, "}"),
            Edn::Map(entries) => {
                f.write_char('{')?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_edn_float(f: &mut fmt::Formatter<'_>, x: f64, java: String) -> fmt::Result {
    // Java prints NaN/Infinity; Clojure's printer writes them as ##NaN etc.
    if x.is_nan() {
        f.write_str("##NaN")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "##Inf" } else { "##-Inf" })
    } else {
        f.write_str(&java)
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_char(' ')?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(close)
}

fn write_edn_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Java's `Float.toString` for `x`.
pub fn java_float_string(x: f32) -> String {
    if !x.is_finite() || x == 0.0 {
        return java_special(x as f64);
    }
    let shortest = format!("{:e}", x.abs());
    let digits = widen_single_digit(shortest, || {
        let two = format!("{:.1e}", f64::from(x.abs()));
        (two.parse::<f32>().ok() == Some(x.abs())).then_some(two)
    });
    java_layout(x < 0.0, &digits)
}

/// Java's `Double.toString` for `x`.
pub fn java_double_string(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return java_special(x);
    }
    let shortest = format!("{:e}", x.abs());
    let digits = widen_single_digit(shortest, || {
        let two = format!("{:.1e}", x.abs());
        (two.parse::<f64>().ok() == Some(x.abs())).then_some(two)
    });
    java_layout(x < 0.0, &digits)
}

fn java_special(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if x.is_sign_negative() {
        "-0.0".into()
    } else {
        "0.0".into()
    }
}

/// Java picks, among the shortest decimals that read back as the value, the
/// closest one; when the shortest has a single digit it also considers the
/// two-digit ones (so Float.MIN_VALUE prints 1.4E-45, not 1.0E-45).
/// `two_digit` returns the closest two-digit decimal if it reads back.
fn widen_single_digit(shortest: String, two_digit: impl Fn() -> Option<String>) -> String {
    let mantissa_len = shortest.find('e').unwrap_or(shortest.len());
    if mantissa_len == 1 {
        two_digit().unwrap_or(shortest)
    } else {
        shortest
    }
}

/// Lays out Rust's `{:e}` text (`d[.ddd]e[-]x`, shortest digits) the way
/// Java does: plain decimal for 1e-3 <= |x| < 1e7, else `d.dddE[-]x`; always
/// at least one digit after the point.
fn java_layout(negative: bool, sci: &str) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-3..7).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        out.push_str(&exp.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_float_strings() {
        let cases: &[(f32, &str)] = &[
            (450.0 / 55.0, "8.181818"),
            (320.0 / 55.0, "5.818182"),
            (10.0 / 3.0, "3.3333333"),
            (8.0 / 7.0, "1.1428572"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (0.00012345, "1.2345E-4"),
            (9_999_999.0, "9999999.0"),
            (1.0e7, "1.0E7"),
            (1.25e10, "1.25E10"),
            (1234567.0, "1234567.0"),
            (f32::MAX, "3.4028235E38"),
            (f32::from_bits(1), "1.4E-45"),
            // JDK 19+ prints the shortest digits here; older JDKs printed 1.17549435E-38.
            (f32::MIN_POSITIVE, "1.1754944E-38"),
            (f32::NAN, "NaN"),
            (f32::INFINITY, "Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(java_float_string(*x), *want, "bits {:#x}", x.to_bits());
        }
    }

    #[test]
    fn java_double_strings() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.95, "0.95"),
            (1.0e-5, "1.0E-5"),
            (1.0e23, "1.0E23"),
            (2.0e23, "2.0E23"),
            (123456789.0, "1.23456789E8"),
            (f64::from_bits(1), "4.9E-324"),
            (f64::MAX, "1.7976931348623157E308"),
        ];
        for (x, want) in cases {
            assert_eq!(java_double_string(*x), *want);
        }
    }

    #[test]
    fn writes_values() {
        let v = Edn::kw_map([
            ("valid?", Edn::Bool(true)),
            ("a", Edn::List(vec![Edn::Int(1), Edn::Int(-2)])),
            ("s", Edn::Set(vec![Edn::str("n0")])),
            ("v", Edn::Vector(vec![])),
            (
                "m",
                Edn::Map(vec![
                    (Edn::Int(0), Edn::Nil),
                    (Edn::Double(0.5), Edn::Float(1.0)),
                ]),
            ),
            ("t", Edn::str("q\"\\\n\u{1}")),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{:valid? true, :a (1 -2), :s #{"n0"}, :v [], :m {0 nil, 0.5 1.0}, :t "q\"\\\n\u0001"}"#
        );
    }

    #[test]
    fn json_form() {
        let v = Edn::kw_map([
            ("k", Edn::keyword("unknown")),
            (
                "q",
                Edn::Map(vec![
                    (Edn::Int(0), Edn::Int(3)),
                    (Edn::Double(0.95), Edn::Int(4)),
                ]),
            ),
            ("f", Edn::Float(450.0 / 55.0)),
            ("l", Edn::Set(vec![Edn::Int(1)])),
        ]);
        assert_eq!(
            v.to_json().to_string(),
            r#"{"f":8.181818,"k":"unknown","l":[1],"q":{"0":3,"0.95":4}}"#
        );
    }

    #[test]
    fn json_to_edn_keeps_number_types() {
        let v: Value = serde_json::from_str(r#"[1, 1.0, -3, {"a b": null, "type": "x"}]"#).unwrap();
        assert_eq!(
            Edn::from_json(&v).to_string(),
            r#"[1 1.0 -3 {"a b" nil, :type "x"}]"#
        );
    }

    #[test]
    fn keyword_names() {
        assert!(is_keyword_name("valid?"));
        assert!(is_keyword_name("start-partition"));
        assert!(!is_keyword_name("0"));
        assert!(!is_keyword_name("a b"));
        assert!(!is_keyword_name(""));
    }
}
