//! The push remote: how a remote that is not a configured name reads (URL or path), and git
//! errors with the remote's credentials taken out.

use std::path::Path;

use crate::http::redact_url;

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

/// The `user[:password]` part of a URL, if any.
fn userinfo(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(&rest[..at]).filter(|userinfo| !userinfo.is_empty())
}

/// `error` with `remote`'s secrets removed from its message (see `redact_text`).
pub(super) fn redact_git_error(error: git2::Error, remote: &str) -> git2::Error {
    let message = redact_text(error.message(), remote);
    if message == error.message() {
        return error;
    }
    git2::Error::new(error.code(), error.class(), message)
}

/// `text` with `remote`'s secrets removed: the remote as written becomes `redact_url`'s form
/// (user info and secret query values masked), and its user info and every query value are
/// masked wherever else they appear (git prints URLs in its own forms).
pub(super) fn redact_text(text: &str, remote: &str) -> String {
    if remote.is_empty() {
        return text.to_string();
    }
    let mut text = text.replace(remote, &redact_url(remote));
    if let Some(userinfo) = userinfo(remote) {
        text = text.replace(userinfo, "***");
    }
    if let Some((_, query)) = remote.split('#').next().unwrap_or_default().split_once('?') {
        for value in query
            .split('&')
            .filter_map(|pair| pair.split_once('=').map(|p| p.1))
        {
            if value.len() >= 4 {
                text = text.replace(value, "***");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_git_messages() {
        let error = git2::Error::from_str("cannot reach https://u:hunter2@host/x");
        let redacted = redact_git_error(error, "https://u:hunter2@host/x");
        assert!(!redacted.message().contains("hunter2"), "{redacted}");

        let remote = "https://u:hunter2@host/x.git?access_token=t0ps3cret";
        let error = git2::Error::from_str(&format!("failed to push to '{remote}': refused"));
        let redacted = redact_git_error(error, remote);
        assert_eq!(
            redacted.message(),
            "failed to push to 'https://***@host/x.git?access_token=***': refused"
        );

        // A message without the remote's secrets is kept as it is.
        let error = git2::Error::from_str("unsupported URL protocol");
        let kept = redact_git_error(error, remote);
        assert_eq!(kept.message(), "unsupported URL protocol");
    }

    #[test]
    fn redacts_the_forms_git_prints() {
        let remote = "https://u:hunter22@host/x.git?access_token=t0ps3cret";
        let text = "fatal: unable to access 'https://host/x.git?access_token=t0ps3cret/': 403";
        assert_eq!(
            redact_text(text, remote),
            "fatal: unable to access 'https://host/x.git?access_token=***/': 403"
        );
        assert_eq!(
            redact_text("u:hunter22 was refused", remote),
            "*** was refused"
        );
        assert_eq!(redact_text("plain", ""), "plain");
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
