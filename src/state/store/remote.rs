//! The push remote: how a remote that is not a configured name reads (URL or path), and git
//! errors with the remote's credentials taken out.

use std::path::Path;

pub(super) enum RemoteLocation<'a> {
    Url,
    Path(&'a Path),
}

/// How `remote` reads when it is not a configured remote name: a URL (`scheme://`, or
/// scp-like `host:path`), a path, or neither (a plain name).
pub(super) fn remote_location(remote: &str) -> Option<RemoteLocation<'_>> {
    if remote.contains("://") {
        return Some(RemoteLocation::Url);
    }
    let first_slash = remote.find('/');
    if let Some(colon) = remote.find(':') {
        if first_slash.is_none_or(|slash| colon < slash) {
            return Some(RemoteLocation::Url);
        }
    }
    if first_slash.is_some() || remote.starts_with('.') || remote.starts_with('~') {
        return Some(RemoteLocation::Path(Path::new(remote)));
    }
    None
}

/// `remote` with the credentials of a URL (`scheme://user:secret@host/…`) replaced by `***`.
pub fn redact_url(remote: &str) -> String {
    match userinfo(remote) {
        Some(userinfo) => remote.replacen(userinfo, "***", 1),
        None => remote.to_string(),
    }
}

/// The `user[:password]` part of a URL, if any.
fn userinfo(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(&rest[..at]).filter(|userinfo| !userinfo.is_empty())
}

/// `error` with `remote`'s credentials removed from its message.
pub(super) fn redact_git_error(error: git2::Error, remote: &str) -> git2::Error {
    match userinfo(remote) {
        Some(userinfo) if error.message().contains(userinfo) => git2::Error::new(
            error.code(),
            error.class(),
            error.message().replace(userinfo, "***"),
        ),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_urls_only() {
        assert_eq!(
            redact_url("https://user:hunter2@git.example.com/state.git"),
            "https://***@git.example.com/state.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@github.com/o/r"),
            "https://***@github.com/o/r"
        );
        assert_eq!(
            redact_url("https://github.com/o/r@v1"),
            "https://github.com/o/r@v1"
        );
        assert_eq!(redact_url("git@github.com:o/r"), "git@github.com:o/r");
        assert_eq!(redact_url("/srv/state.git"), "/srv/state.git");
    }

    #[test]
    fn redacts_credentials_in_git_messages() {
        let error = git2::Error::from_str("cannot reach https://u:hunter2@host/x");
        let redacted = redact_git_error(error, "https://u:hunter2@host/x");
        assert!(!redacted.message().contains("hunter2"), "{redacted}");
    }

    #[test]
    fn classifies_remotes() {
        assert!(remote_location("origin").is_none());
        assert!(matches!(
            remote_location("https://h/x"),
            Some(RemoteLocation::Url)
        ));
        assert!(matches!(
            remote_location("git@h:x"),
            Some(RemoteLocation::Url)
        ));
        assert!(matches!(
            remote_location("../bare"),
            Some(RemoteLocation::Path(_))
        ));
        assert!(matches!(
            remote_location("/srv/a:b"),
            Some(RemoteLocation::Path(_))
        ));
    }
}
