//! Query strings (`filters[status]=issued&limit=1000`), filter operators and request bodies.

use serde::de::DeserializeOwned;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, Time};

use super::model::{parse_date, ApiError};

/// Decoded `key=value` pairs, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (key, value) = part.split_once('=').unwrap_or((part, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Self { pairs }
    }

    /// The last value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `true`/`1` (anything else is false).
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|value| matches!(value.to_ascii_lowercase().as_str(), "true" | "1"))
    }

    /// `filters[PROP]=VALUE` pairs as `(PROP, VALUE)`.
    pub(crate) fn filters(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter_map(|(key, value)| {
                key.strip_prefix("filters[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(|prop| (prop.to_string(), value.clone()))
            })
            .collect()
    }

    /// A non-negative integer parameter.
    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(text) => text.trim().parse::<u64>().map(Some).map_err(|_| {
                ApiError::invalid(key, format!("`{key}` must be a non-negative integer."))
            }),
        }
    }
}

/// `%XX` and `+` decoding; invalid escapes stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A filter value: `%x` contains, `>x`, `>=x`, `<x`, `<=x`, `a...b` (inclusive), else equals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    Equals(String),
    Contains(String),
    Greater(String, bool),
    Less(String, bool),
    Range(String, String),
}

impl Condition {
    pub(crate) fn parse(value: &str) -> Self {
        let value = value.trim();
        if let Some(rest) = value.strip_prefix('%') {
            return Self::Contains(rest.trim_end_matches('%').to_ascii_lowercase());
        }
        if let Some(rest) = value.strip_prefix(">=") {
            return Self::Greater(rest.to_string(), true);
        }
        if let Some(rest) = value.strip_prefix('>') {
            return Self::Greater(rest.to_string(), false);
        }
        if let Some(rest) = value.strip_prefix("<=") {
            return Self::Less(rest.to_string(), true);
        }
        if let Some(rest) = value.strip_prefix('<') {
            return Self::Less(rest.to_string(), false);
        }
        if let Some((start, end)) = value.split_once("...") {
            return Self::Range(start.to_string(), end.to_string());
        }
        Self::Equals(value.to_string())
    }

    /// Match a text property (case-insensitive).
    pub(crate) fn text(&self, actual: &str) -> bool {
        let actual = actual.to_ascii_lowercase();
        match self {
            Self::Equals(wanted) => actual == wanted.to_ascii_lowercase(),
            Self::Contains(part) => actual.contains(part.as_str()),
            Self::Greater(bound, inclusive) => {
                let bound = bound.to_ascii_lowercase();
                actual > bound || (*inclusive && actual == bound)
            }
            Self::Less(bound, inclusive) => {
                let bound = bound.to_ascii_lowercase();
                actual < bound || (*inclusive && actual == bound)
            }
            Self::Range(start, end) => {
                actual >= start.to_ascii_lowercase() && actual <= end.to_ascii_lowercase()
            }
        }
    }

    /// Match a number; a bound that is not a number matches nothing.
    pub(crate) fn number(&self, actual: i128) -> bool {
        let parse = |text: &str| text.trim().parse::<i128>().ok();
        match self {
            Self::Equals(wanted) => wanted.split(',').any(|one| parse(one) == Some(actual)),
            Self::Contains(part) => actual.to_string().contains(part.as_str()),
            Self::Greater(bound, inclusive) => {
                parse(bound).is_some_and(|b| actual > b || (*inclusive && actual == b))
            }
            Self::Less(bound, inclusive) => {
                parse(bound).is_some_and(|b| actual < b || (*inclusive && actual == b))
            }
            Self::Range(start, end) => match (parse(start), parse(end)) {
                (Some(start), Some(end)) => actual >= start && actual <= end,
                _ => false,
            },
        }
    }

    /// Match an instant; date-only bounds cover their whole day.
    pub(crate) fn instant(&self, actual: OffsetDateTime) -> bool {
        match self {
            Self::Equals(wanted) => match parse_instant(wanted) {
                Some((at, true)) => actual.date() == at.date(),
                Some((at, false)) => actual == at,
                None => false,
            },
            Self::Contains(part) => super::model::iso(actual).contains(part.as_str()),
            Self::Greater(bound, inclusive) => match parse_instant(bound) {
                Some((at, true)) => {
                    actual.date() > at.date() || (*inclusive && actual.date() == at.date())
                }
                Some((at, false)) => actual > at || (*inclusive && actual == at),
                None => false,
            },
            Self::Less(bound, inclusive) => match parse_instant(bound) {
                Some((at, true)) => {
                    actual.date() < at.date() || (*inclusive && actual.date() == at.date())
                }
                Some((at, false)) => actual < at || (*inclusive && actual == at),
                None => false,
            },
            Self::Range(start, end) => match (parse_instant(start), parse_instant(end)) {
                (Some((start, start_day)), Some((end, end_day))) => {
                    let after = if start_day {
                        actual.date() >= start.date()
                    } else {
                        actual >= start
                    };
                    let before = if end_day {
                        actual.date() <= end.date()
                    } else {
                        actual <= end
                    };
                    after && before
                }
                _ => false,
            },
        }
    }
}

/// Parse `YYYY-MM-DD` (second value true), RFC 3339, `YYYY-MM-DDTHH:MM:SS+00:00` or
/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn parse_instant(text: &str) -> Option<(OffsetDateTime, bool)> {
    let text = text.trim();
    if let Some(day) = parse_date(text) {
        return Some((day.with_time(Time::MIDNIGHT).assume_utc(), true));
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some((at, false));
    }
    let spaced = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t_separated = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(text, spaced)
        .or_else(|_| PrimitiveDateTime::parse(text, t_separated))
        .ok()
        .map(|at| (at.assume_utc(), false))
}

/// Parse a JSON body; an empty or malformed body is a 400 `bad_request_format`.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_format("the body is empty"));
    }
    serde_json::from_slice(bytes).map_err(ApiError::bad_format)
}

/// Parse an optional JSON body: empty means the default.
pub(crate) fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(ApiError::bad_format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_escapes() {
        let query = Query::parse(Some(
            "filters%5Bstatus%5D=issued&filters[common_name]=%25shop&limit=10&x=a+b&bad=%zz%4",
        ));
        assert_eq!(
            query.filters(),
            vec![
                ("status".to_string(), "issued".to_string()),
                ("common_name".to_string(), "%shop".to_string())
            ]
        );
        assert_eq!(query.number("limit").unwrap(), Some(10));
        assert_eq!(query.get("x"), Some("a b"));
        assert_eq!(query.get("bad"), Some("%zz%4"));
        assert!(query.number("x").is_err());
        assert_eq!(Query::parse(None).get("x"), None);
    }

    #[test]
    fn conditions() {
        assert!(Condition::parse("%SHOP").text("www.shop.example"));
        assert!(Condition::parse("Shop.Example").text("shop.example"));
        assert!(Condition::parse(">5").number(6));
        assert!(!Condition::parse(">5").number(5));
        assert!(Condition::parse(">=5").number(5));
        assert!(Condition::parse("3,4").number(4));
        let at = parse_instant("2024-05-01T10:00:00+00:00").unwrap().0;
        assert!(Condition::parse("2024-05-01").instant(at));
        assert!(Condition::parse("2024-04-01...2024-05-01").instant(at));
        assert!(!Condition::parse(">2024-05-01").instant(at));
        assert!(Condition::parse("<2024-05-01 10:00:01").instant(at));
        assert!(!Condition::parse("nonsense").instant(at));
    }

    #[test]
    fn bodies() {
        #[derive(serde::Deserialize, Default, Debug)]
        struct Body {
            a: Option<u32>,
        }
        assert_eq!(body::<Body>(b" ").unwrap_err().code, "bad_request_format");
        assert_eq!(body::<Body>(b"{").unwrap_err().code, "bad_request_format");
        assert_eq!(
            body::<Body>(b"{\"a\":\"x\"}").unwrap_err().code,
            "bad_request_format"
        );
        assert!(optional_body::<Body>(b"").unwrap().a.is_none());
        assert_eq!(body::<Body>(b"{\"a\":1}").unwrap().a, Some(1));
    }
}
