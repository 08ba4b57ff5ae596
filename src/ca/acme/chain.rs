//! Alternate certificate chains: `Link: rel="alternate"` targets and the `preferred_chain` choice.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::problem::classify_with;
use super::transport::last_response;
use super::{Inner, Operation};
use crate::ca::{CaError, ErrorClass};
use crate::keys;

impl Inner {
    /// The default chain, or the first alternate whose top issuer is `preferred_chain`.
    pub(super) async fn choose_chain(&self, default: String, alternates: Vec<String>) -> String {
        let Some(preferred) = &self.settings.preferred_chain else {
            return default;
        };
        if top_issuer_common_name(&default).as_deref() == Some(preferred.as_str()) {
            return default;
        }
        for url in &alternates {
            match self.download_alternate(url).await {
                Ok(chain) if top_issuer_common_name(&chain).as_deref() == Some(preferred) => {
                    return chain
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    account = %self.name,
                    url = %url,
                    %error,
                    "cannot download an alternate chain"
                ),
            }
        }
        tracing::warn!(
            account = %self.name,
            preferred = %preferred,
            alternates = alternates.len(),
            "no chain ends at the preferred issuer; using the default chain"
        );
        default
    }

    /// POST-as-GET an alternate chain URL. `instant-acme` has no call for that, so this reads
    /// it as an order and takes the body the HTTP layer kept when the PEM does not parse as one.
    async fn download_alternate(&self, url: &str) -> Result<String, CaError> {
        let result = self
            .with_nonce_retry(|| self.account.order(url.to_string()))
            .await;
        let last = last_response();
        match result {
            Err(instant_acme::Error::Json(_)) if last.status == Some(200) => {
                let text = String::from_utf8(last.body.to_vec()).map_err(|_| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{}`: chain `{url}` is not text", self.name),
                    )
                })?;
                let (_, pems) = keys::inspect_chain(&text).map_err(|error| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{}`: chain `{url}` cannot be read", self.name),
                    )
                    .with_source(error)
                })?;
                Ok(pems.concat())
            }
            Err(error) => Err(classify_with(&self.name, Operation::Download, error, &last)),
            Ok(_) => Err(CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: alternate chain `{url}` is an order",
                    self.name
                ),
            )),
        }
    }
}

/// Absolute targets of `rel="alternate"` links in one `Link` header value.
pub(super) fn alternate_links(value: &str, request_url: &str) -> Vec<String> {
    let mut links = Vec::new();
    for link in value.split(',') {
        let link = link.trim();
        let Some(rest) = link.strip_prefix('<') else {
            continue;
        };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let alternate = params.split(';').any(|param| {
            let param = param.trim().replace(' ', "");
            param.eq_ignore_ascii_case("rel=\"alternate\"")
                || param.eq_ignore_ascii_case("rel=alternate")
        });
        if !alternate {
            continue;
        }
        if target.starts_with("https://") {
            links.push(target.to_string());
        } else if target.starts_with('/') {
            if let Some(origin) = origin_of(request_url) {
                links.push(format!("{origin}{target}"));
            }
        }
    }
    links
}

/// `https://host:port` of a URL.
pub(super) fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    url.get(.."https://".len() + end)
}

pub(super) fn leaf_der(chain_pem: &str) -> Option<Vec<u8>> {
    pem::parse_many(chain_pem)
        .ok()?
        .into_iter()
        .find(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.contents().to_vec())
}

/// Common name of the issuer of the last certificate in the chain.
fn top_issuer_common_name(chain_pem: &str) -> Option<String> {
    let blocks = pem::parse_many(chain_pem).ok()?;
    let last = blocks.last()?;
    let (_, certificate) = X509Certificate::from_der(last.contents()).ok()?;
    let common_name = certificate
        .issuer()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(common_name)
}
