//! Which proxy a request goes through: the account's `proxy`, else the standard environment
//! variables. Loopback is always reached directly through the environment's proxies, so local
//! simulators keep working on a machine that sets `HTTPS_PROXY`.

use super::error::Error;

/// Hosts never sent through an environment proxy, whatever `NO_PROXY` says.
const ALWAYS_DIRECT: &str = "localhost,127.0.0.0/8,::1";

/// The proxy environment variables, read once (`from_env`) or given (tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY` (or `https_proxy`, else `ALL_PROXY`): for `https://` URLs.
    pub https_proxy: Option<String>,
    /// `http_proxy` (or `HTTP_PROXY`, else `ALL_PROXY`): for `http://` URLs.
    pub http_proxy: Option<String>,
    /// `NO_PROXY` (or `no_proxy`): hosts, domains and CIDR ranges reached directly.
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// The process environment's proxy settings.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The proxy settings `lookup` answers for each variable name (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .filter_map(|name| lookup(name))
                .find(|value| !value.trim().is_empty())
        };
        Self {
            https_proxy: first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
            http_proxy: first(&["http_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"]),
            no_proxy: first(&["NO_PROXY", "no_proxy"]),
        }
    }

    /// No proxy at all.
    pub fn none() -> Self {
        Self::default()
    }
}

/// The reqwest proxies for an account: its `proxy` for every request (an explicit choice, so
/// loopback too), else the environment's, bypassed for `NO_PROXY` and loopback.
pub(super) fn proxies(
    account: &str,
    explicit: Option<&str>,
    env: &ProxyEnv,
) -> Result<Vec<reqwest::Proxy>, Error> {
    if let Some(url) = explicit {
        return Ok(vec![account_proxy(account, url)?]);
    }
    let no_proxy = match env.no_proxy.as_deref() {
        Some(list) if !list.trim().is_empty() => format!("{ALWAYS_DIRECT},{list}"),
        _ => ALWAYS_DIRECT.to_string(),
    };
    let mut list = Vec::new();
    if let Some(url) = &env.https_proxy {
        let proxy = reqwest::Proxy::https(url.as_str()).map_err(|error| Error::Setup {
            what: format!(
                "`HTTPS_PROXY` (`{}`) is not a proxy URL",
                super::redact_url(url)
            ),
            source: Some(Box::new(error)),
        })?;
        list.push(proxy.no_proxy(reqwest::NoProxy::from_string(&no_proxy)));
    }
    if let Some(url) = &env.http_proxy {
        let proxy = reqwest::Proxy::http(url.as_str()).map_err(|error| Error::Setup {
            what: format!(
                "`HTTP_PROXY` (`{}`) is not a proxy URL",
                super::redact_url(url)
            ),
            source: Some(Box::new(error)),
        })?;
        list.push(proxy.no_proxy(reqwest::NoProxy::from_string(&no_proxy)));
    }
    Ok(list)
}

/// The account's `proxy`: `http://host:port`, no credentials (they would sit in the config).
fn account_proxy(account: &str, url: &str) -> Result<reqwest::Proxy, Error> {
    let shown = super::redact_url(url);
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    match authority {
        Some(authority) if authority.contains('@') => Err(Error::Setup {
            what: format!(
                "`proxy` of account `{account}` (`{shown}`) holds credentials, which are not supported"
            ),
            source: None,
        }),
        Some(authority) if !authority.is_empty() => {
            reqwest::Proxy::all(url).map_err(|error| Error::Setup {
                what: format!("`proxy` of account `{account}` (`{shown}`) is not a proxy URL"),
                source: Some(Box::new(error)),
            })
        }
        _ => Err(Error::Setup {
            what: format!(
                "`proxy` of account `{account}` (`{shown}`) must be `http://host:port`"
            ),
            source: None,
        }),
    }
}
