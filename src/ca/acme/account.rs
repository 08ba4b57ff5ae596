//! Account resources: reading them with POST-as-GET, listing the account's orders and checking
//! that the account is usable.

use instant_acme::OrderStatus as AcmeOrderStatus;

use super::orders::status_name;
use super::problem::{classify, classify_with};
use super::store::{io_error, read_optional};
use super::transport::{builder, last_response};
use super::{AccountFile, Inner, Operation, ACCOUNT_FILE};
use crate::ca::{CaError, ErrorClass};
use crate::http::redact_url;

impl Inner {
    /// POST-as-GET `url` and read the answer as JSON. `instant-acme` has no call for account
    /// resources, so this reads it as an order and takes the body the HTTP layer kept when it
    /// does not parse as one (as `download_alternate` does).
    async fn post_as_get_json(&self, url: &str) -> Result<serde_json::Value, CaError> {
        let result = self
            .with_nonce_retry(|| self.account.order(url.to_string()))
            .await;
        let last = last_response();
        let unreadable = || {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: `{}` is not the JSON object expected",
                    self.name,
                    redact_url(url)
                ),
            )
        };
        match result {
            Err(instant_acme::Error::Json(_)) if last.status == Some(200) => {
                serde_json::from_slice(&last.body).map_err(|error| unreadable().with_source(error))
            }
            Ok(_) => Err(unreadable()),
            Err(error) => Err(classify_with(&self.name, Operation::Read, error, &last)),
        }
    }

    pub(super) async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        let account = self.post_as_get_json(&self.account_url).await?;
        let Some(list_url) = account.get("orders").and_then(serde_json::Value::as_str) else {
            return Err(crate::ca::unsupported(
                &self.name,
                "acme",
                "listing orders (the CA's account object names no `orders` list)",
            ));
        };
        let list = self.post_as_get_json(list_url).await?;
        let urls: Vec<String> = list
            .get("orders")
            .and_then(serde_json::Value::as_array)
            .map(|urls| {
                urls.iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut orders = Vec::with_capacity(urls.len());
        for url in urls {
            let Some(mut order) = self.load_order(&url).await? else {
                continue;
            };
            // The identifiers are in the order's body, which `instant-acme` does not expose.
            let body: serde_json::Value =
                serde_json::from_slice(&last_response().body).unwrap_or_default();
            let common_name = body
                .get("identifiers")
                .and_then(serde_json::Value::as_array)
                .and_then(|ids| ids.first())
                .and_then(|id| id.get("value"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            let status = match order.state().status {
                AcmeOrderStatus::Valid => "issued",
                other => status_name(other),
            };
            orders.push(crate::ca::AccountOrder {
                order_id: url,
                status: status.to_string(),
                common_name,
                names: Vec::new(),
                serial: None,
                tag: None,
                not_after: None,
                settings: Vec::new(),
                certificate_id: None,
                lineage: Default::default(),
            });
        }
        Ok(orders)
    }

    pub(super) async fn check_account(&self) -> Result<crate::ca::Credentials, CaError> {
        let name = &self.name;
        let path = self.home.join(ACCOUNT_FILE);
        let sealed = match &self.seal {
            Some(seal) => seal.load().map_err(|reason| {
                CaError::new(
                    ErrorClass::Auth,
                    format!(
                        "ACME account `{name}`: cannot use the account key at `{}`: {reason}",
                        seal.place()
                    ),
                )
            })?,
            None => None,
        };
        let plain = match sealed {
            Some(bytes) => Some(bytes.expose().clone()),
            None => read_optional(&path).map_err(|error| io_error(name, "read", &path, error))?,
        };
        let bytes = plain.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{name}` is not registered: `{}` is missing",
                    path.display()
                ),
            )
        })?;
        let file: AccountFile = serde_json::from_slice(&bytes).map_err(|error| {
            // The serde message may quote the key material: report the position only.
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{name}`: `{}` is not a valid account file (line {}, column {})",
                    path.display(),
                    error.line(),
                    error.column()
                ),
            )
        })?;
        let der = file.credentials.private_key().clone_key();
        let key = instant_acme::Key::from_pkcs8_der(der.clone_key())
            .map_err(|error| classify(name, Operation::Account, error))?;
        let (account, _) = builder(name, &self.settings, &self.sent)?
            .from_key(
                (key, rustls::pki_types::PrivateKeyDer::Pkcs8(der)),
                self.settings.directory.clone(),
            )
            .await
            .map_err(|error| classify(name, Operation::Account, error))?;
        if account.id() != self.account_url {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{name}`: the CA knows the key as `{}`, not `{}`",
                    redact_url(account.id()),
                    redact_url(&self.account_url)
                ),
            ));
        }
        Ok(crate::ca::Credentials {
            identity: format!(
                "ACME account `{}` at `{}`",
                redact_url(account.id()),
                redact_url(&self.settings.directory)
            ),
            read_only: false,
        })
    }
}
