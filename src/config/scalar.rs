//! The small textual forms config values use: durations (`30d`), renewal shares (`33%`), file
//! modes (`"0644"`), dates (`2027-06-01`), item names, service URLs, and lexical path
//! resolution.
//!
//! Every function returns the message of what is wrong; the caller knows where. Performs no I/O.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use time::macros::format_description;
use time::{Date, Duration};

use super::report::shown;
use crate::spec::RenewBefore;

/// Longest accepted duration: beyond it, date arithmetic would leave the calendar's range.
const MAX_DURATION_DAYS: i64 = 36_500;

/// `30d`, `12h`, `90m`, `45s`, `2w`: a positive whole number and one unit.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let shape = "expected a whole number and a unit (`s`, `m`, `h`, `d`, `w`), like `30d`";
    if text.is_empty() {
        return Err(format!("empty duration: {shape}"));
    }
    if let Some(rest) = text.strip_prefix('-') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("duration `{}` must be positive", shown(text)));
        }
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("invalid duration `{}`: {shape}", shown(text)));
    }
    let seconds_per_unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "" => return Err(format!("duration `{}` has no unit: {shape}", shown(text))),
        other => {
            return Err(format!(
                "unknown unit `{}` in duration `{}`: {shape}",
                shown(other),
                shown(text)
            ))
        }
    };
    let too_long = || {
        format!(
            "duration `{}` is too long: at most {MAX_DURATION_DAYS} days",
            shown(text)
        )
    };
    let count: i64 = digits.parse().map_err(|_| too_long())?;
    if count == 0 {
        return Err(format!("duration `{}` must be positive", shown(text)));
    }
    let seconds = count.checked_mul(seconds_per_unit).ok_or_else(too_long)?;
    if seconds > MAX_DURATION_DAYS * 86_400 {
        return Err(too_long());
    }
    Ok(Duration::seconds(seconds))
}

/// `renew_before`: a duration, or `NN%` of the lifetime with NN in 1..=99.
pub(crate) fn renew_before(text: &str) -> Result<RenewBefore, String> {
    let Some(number) = text.strip_suffix('%') else {
        return duration(text).map(RenewBefore::Duration);
    };
    let out_of_range = || {
        format!(
            "renewal share `{}` must be between `1%` and `99%`",
            shown(text)
        )
    };
    let digits = number.strip_prefix('-').unwrap_or(number);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "invalid renewal share `{}`: expected a whole percentage like `33%`",
            shown(text)
        ));
    }
    if number.starts_with('-') {
        return Err(out_of_range());
    }
    match digits.parse::<u8>() {
        Ok(percent @ 1..=99) => Ok(RenewBefore::Percent(percent)),
        _ => Err(out_of_range()),
    }
}

/// An octal file mode written as a string: `"0644"`, `"600"`, `"0o640"`; at most `0777`.
pub(crate) fn file_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty()
        || digits.len() > 4
        || !digits.bytes().all(|byte| (b'0'..=b'7').contains(&byte))
    {
        return Err(format!(
            "invalid file mode `{}`: expected an octal string like `0644`",
            shown(text)
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| {
        format!(
            "invalid file mode `{}`: expected an octal string like `0644`",
            shown(text)
        )
    })?;
    if mode > 0o777 {
        return Err(format!(
            "file mode `{}` is above `0777`: special bits are not supported",
            shown(text)
        ));
    }
    Ok(mode)
}

/// `YYYY-MM-DD`.
pub(crate) fn date(text: &str) -> Result<Date, String> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).map_err(|_| {
        format!(
            "invalid date `{}`: expected a date like `2027-06-01`",
            shown(text)
        )
    })
}

/// Names of certificates, CAs and DNS providers: `[a-z0-9][a-z0-9_-]{0,62}`.
pub(crate) fn is_item_name(name: &str) -> bool {
    let Some((first, rest)) = name.as_bytes().split_first() else {
        return false;
    };
    (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.len() <= 62
        && rest.iter().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'_' | b'-')
        })
}

/// A URL certform sends credentials to: a CA's API (`url`), an ACME directory (`directory`).
/// It must be `https://`; plain `http://` is accepted only for a loopback host (`localhost`,
/// `127.0.0.0/8`, `[::1]`) such as a local simulator. No user or password in the URL.
// Every provider field holding such a URL, present or future, has this type, so one rule covers
// them all. The text is private: the only way to use the value is `ServiceUrl::checked`, which
// applies the rule. An HTTP proxy is not a `ServiceUrl`: requests go through it in a CONNECT
// tunnel that is TLS from end to end, so a plain `http://` proxy sees no key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("format" = "uri", "pattern" = SERVICE_URL_PATTERN))]
pub(crate) struct ServiceUrl(String);

/// What editors are told about a `ServiceUrl` (the full rule is `ServiceUrl::checked`).
const SERVICE_URL_PATTERN: &str =
    r"^(https://[^/@?#]+|http://(localhost|127\.[0-9.]+|\[::1\])(:[0-9]+)?)([/?#].*)?$";

impl ServiceUrl {
    /// The URL, if it satisfies the rule; else what is wrong, naming `field`.
    pub(crate) fn checked(&self, field: &str) -> Result<String, String> {
        let text = self.0.as_str();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "`{field}` must be an `https://` URL, found `{}`",
                shown(text)
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!(
                "`{field}` must not carry a user or password: it would be a plaintext secret"
            ));
        }
        let Some(host) = url_host(authority) else {
            return Err(format!(
                "`{field}` must be an `https://` URL with a host, found `{}`",
                shown(text)
            ));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Ok(text.to_string());
        }
        if scheme.eq_ignore_ascii_case("http") && is_loopback(host) {
            return Ok(text.to_string());
        }
        if scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "`{field}` must be an `https://` URL: over `http://` to `{}` credentials would cross the network in clear",
                shown(host)
            ));
        }
        Err(format!(
            "`{field}` must be an `https://` URL, found scheme `{}`",
            shown(scheme)
        ))
    }
}

/// The hint every `ServiceUrl` error carries.
pub(crate) const SERVICE_URL_HINT: &str =
    "use `https://`; plain `http://` is accepted only for loopback hosts (`localhost`, `127.0.0.1`, `[::1]`), e.g. a local simulator";

/// The host of `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when malformed.
fn url_host(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        port.parse::<u16>().ok()?;
    }
    let valid = !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '\\'));
    valid.then_some(host)
}

/// `localhost`, an address in `127.0.0.0/8`, or `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `value` resolved against `base` (absolute values stay), with `.` and `..` removed lexically.
pub(crate) fn absolute(base: &Path, value: &str) -> PathBuf {
    let joined = base.join(value);
    if is_normal(&joined) {
        joined
    } else {
        normalize(&joined)
    }
}

/// Whether `normalize` gives `path` back as it is: no `.`, `..` or empty segment (`a//b`, a
/// trailing `/`). Checked on the bytes, so the common case builds no second path.
fn is_normal(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;

    path.as_os_str()
        .as_bytes()
        .split(|byte| *byte == b'/')
        .enumerate()
        .all(|(position, segment)| match segment {
            // Only the root's: `/a` splits into `""` and `a`.
            b"" => position == 0,
            b"." | b".." => false,
            _ => true,
        })
        && !path.as_os_str().is_empty()
}

/// Remove `.` and resolve `..` without touching the file system.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("30d"), Ok(Duration::days(30)));
        assert_eq!(duration("2w"), Ok(Duration::weeks(2)));
        assert_eq!(duration("90m"), Ok(Duration::minutes(90)));
        for bad in [
            "0d",
            "-5d",
            "abc",
            "10x",
            "",
            "10",
            "d",
            "1.5d",
            "99999999999999999999d",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert!(duration("0d").unwrap_err().contains("must be positive"));
        assert!(duration("-5d").unwrap_err().contains("must be positive"));
        assert!(duration("10x").unwrap_err().contains("unknown unit `x`"));
    }

    #[test]
    fn renewal_shares() {
        assert_eq!(renew_before("33%"), Ok(RenewBefore::Percent(33)));
        assert_eq!(
            renew_before("1d"),
            Ok(RenewBefore::Duration(Duration::days(1)))
        );
        for bad in ["0%", "100%", "-5%", "%", "x%", "150%"] {
            assert!(renew_before(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(file_mode("0644"), Ok(0o644));
        assert_eq!(file_mode("600"), Ok(0o600));
        assert_eq!(file_mode("0o640"), Ok(0o640));
        for bad in ["0999", "", "rw-r--r--", "01777", "07777"] {
            assert!(file_mode(bad).is_err(), "{bad}");
        }
    }

    fn url(text: &str) -> Result<String, String> {
        ServiceUrl(text.to_string()).checked("url")
    }

    #[test]
    fn service_urls_are_https_or_loopback_http() {
        for good in [
            "https://www.digicert.com/services/v2/",
            "https://acme.example:8443/directory",
            "HTTPS://example.com",
            "http://127.0.0.1:8080/services/v2/",
            "http://127.8.9.10/",
            "http://localhost:14000/dir",
            "http://LOCALHOST./",
            "http://[::1]:8080/",
            "http://[::1]",
        ] {
            assert_eq!(url(good), Ok(good.to_string()), "{good}");
        }
        for (bad, wanted) in [
            ("http://www.digicert.com/services/v2/", "in clear"),
            ("http://10.0.0.1/", "in clear"),
            ("http://128.0.0.1/", "in clear"),
            ("http://localhost.evil.example/", "in clear"),
            ("http://127.0.0.1.evil.example/", "in clear"),
            ("http://[::2]/", "in clear"),
            ("http://[::ffff:7f00:1]/", "in clear"),
            ("http://127.0.0.1@evil.example/", "user or password"),
            ("https://user:pass@example.com/", "user or password"),
            ("ftp://example.com/", "scheme `ftp`"),
            ("www.digicert.com", "must be an `https://` URL"),
            ("https://", "with a host"),
            ("https://:443/", "with a host"),
            ("https://example.com:99999/", "with a host"),
            ("http://[::1/", "with a host"),
        ] {
            let error = url(bad).expect_err(bad);
            assert!(error.contains(wanted), "{bad}: {error}");
        }
    }

    #[test]
    fn names_and_paths() {
        assert!(is_item_name("web"));
        assert!(is_item_name("0-a_b"));
        assert!(!is_item_name("Web"));
        assert!(!is_item_name("_web"));
        assert!(!is_item_name("a.b"));
        assert!(!is_item_name(&"a".repeat(64)));
        assert!(is_item_name(&"a".repeat(63)));
        assert_eq!(
            absolute(Path::new("/c/d"), "../x/./y"),
            PathBuf::from("/c/x/y")
        );
        assert_eq!(absolute(Path::new("/c"), "/abs"), PathBuf::from("/abs"));
        assert_eq!(absolute(Path::new("/"), "../.."), PathBuf::from("/"));
        assert_eq!(normalize(Path::new("a/../..")), PathBuf::from(".."));
        assert_eq!(normalize(Path::new("./.")), PathBuf::from("."));
    }

    #[test]
    fn the_shortcut_for_normal_paths_agrees_with_normalize() {
        for path in [
            "/etc/ssl",
            "a/b",
            "/",
            "a",
            "/a/./b",
            "a/../b",
            "a//b",
            "a/",
            "/a/..",
            "./a",
            ".",
            "..",
            "",
            "/.hidden/x..y/.z",
        ] {
            let path = Path::new(path);
            if is_normal(path) {
                assert_eq!(normalize(path), path, "{}", path.display());
            }
        }
        assert!(is_normal(Path::new("/etc/ssl/.hidden/x..y")));
        assert!(is_normal(Path::new("out/c1")));
        for not_normal in ["/", "a//b", "a/", "a/./b", "a/../b", "./a", "..", ""] {
            assert!(!is_normal(Path::new(not_normal)), "{not_normal}");
        }
        for (base, value, expected) in [
            ("/c/d", "out/c1", "/c/d/out/c1"),
            ("/c/d", "/srv//www/", "/srv/www"),
            ("/c/d", "./out", "/c/d/out"),
            ("/c/d", "", "/c/d"),
        ] {
            assert_eq!(absolute(Path::new(base), value), PathBuf::from(expected));
        }
    }
}
