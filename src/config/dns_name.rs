//! Validation and normalisation of the DNS names a certificate covers.
//!
//! Names are lowercased, IDNs become punycode (`bücher.example` → `xn--bcher-kva.example`), and
//! the result must be a hostname of LDH labels, optionally with `*` as the whole leftmost label.
//! IP addresses are refused. Performs no I/O.

use std::net::IpAddr;

use super::report::shown;
use crate::spec::DnsName;

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Check and normalise one name; the error is a complete message.
pub(crate) fn dns_name(input: &str) -> Result<DnsName, String> {
    normalise(input).map_err(|reason| format!("invalid DNS name `{}`: {reason}", shown(input)))
}

fn normalise(input: &str) -> Result<DnsName, String> {
    if input.is_empty() {
        return Err("the name is empty".to_string());
    }
    let unbracketed = input
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(input);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err("IP addresses are not supported, only DNS names".to_string());
    }
    let (wildcard, rest) = match input.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    if rest.contains('*') {
        return Err(
            "`*` is allowed only as the whole leftmost label, like `*.example.com`".to_string(),
        );
    }
    if rest.is_empty() {
        return Err("a wildcard needs a name after `*.`".to_string());
    }
    if rest.split('.').any(str::is_empty) {
        return Err("empty label (a leading or trailing `.`, or `..`)".to_string());
    }
    let ascii = if rest.is_ascii() {
        rest.to_ascii_lowercase()
    } else {
        let converted = idna::domain_to_ascii(rest)
            .map_err(|_| "not a valid internationalized name".to_string())?;
        if !converted.is_ascii() {
            return Err("not a valid internationalized name".to_string());
        }
        converted
    };
    for label in ascii.split('.') {
        check_label(label)?;
    }
    if ascii.split('.').any(|label| label.starts_with("xn--"))
        && idna::domain_to_ascii(&ascii).is_err()
    {
        return Err("invalid punycode (`xn--`) label".to_string());
    }
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err("the last label must not be all digits".to_string());
    }
    let name = if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    };
    if name.len() > MAX_NAME {
        return Err(format!(
            "the name is {} characters long, at most {MAX_NAME} are allowed",
            name.len()
        ));
    }
    Ok(DnsName::new_unchecked(name))
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (a leading or trailing `.`, or `..`)".to_string());
    }
    if label.len() > MAX_LABEL {
        return Err(format!(
            "label `{}` is {} characters long, at most {MAX_LABEL} are allowed",
            shown(label),
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "label `{}` contains `{}`: only letters, digits and `-` are allowed",
            shown(label),
            shown(&bad.to_string())
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label `{}` starts or ends with `-`", shown(label)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        match dns_name(input) {
            Ok(name) => name.to_string(),
            Err(message) => panic!("{input}: {message}"),
        }
    }

    fn err(input: &str) -> String {
        match dns_name(input) {
            Ok(name) => panic!("{input} accepted as {name}"),
            Err(message) => message,
        }
    }

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(ok("www.Example.TEST"), "www.example.test");
        assert_eq!(ok("*.a.b"), "*.a.b");
        assert_eq!(ok("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("*.Bücher.example"), "*.xn--bcher-kva.example");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("a-b.c1"), "a-b.c1");
        assert_eq!(
            ok(&format!("{}.example", "a".repeat(63))),
            format!("{}.example", "a".repeat(63))
        );
    }

    #[test]
    fn rejects_with_reasons() {
        assert!(err("a.*.b").contains("leftmost label"));
        assert!(err("*a.b").contains("leftmost label"));
        assert!(err("**.b").contains("leftmost label"));
        assert!(err("*").contains("leftmost label"));
        assert!(err("a.b.").contains("empty label"));
        assert!(err("a..b").contains("empty label"));
        assert!(err("").contains("empty"));
        assert!(err("-a.b").contains("starts or ends with `-`"));
        assert!(err("a-.b").contains("starts or ends with `-`"));
        assert!(err("a_b.c").contains("contains `_`"));
        assert!(err(&format!("{}.b", "a".repeat(64))).contains("at most 63"));
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(err(&long).contains("at most 253"));
        assert!(err("10.0.0.1").contains("IP addresses"));
        assert!(err("::1").contains("IP addresses"));
        assert!(err("[2001:db8::1]").contains("IP addresses"));
        assert!(err("1.2.3").contains("all digits"));
        assert!(err("a b.c").contains("contains ` `"));
    }
}
