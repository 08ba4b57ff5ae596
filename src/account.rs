//! CA accounts outside a run: open one by name, check its credentials (`ca test`) and read
//! what it holds (`ca info`). Never prints; the caller renders the results.

use serde::Serialize;

use crate::ca::digicert::{DigicertCa, DomainInfo, OrganizationInfo, ProductInfo, UserInfo};
use crate::ca::CaError;
use crate::workspace::Workspace;

/// Why an account could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no CA account `{name}` in config")]
    Unknown { name: String, defined: Vec<String> },
    #[error(
        "`{0}` is not a DigiCert account: this command works with `kind = \"digicert\"` accounts"
    )]
    NotDigicert(String),
    #[error("cannot open CA account `{name}`")]
    Open {
        name: String,
        #[source]
        source: CaError,
    },
    /// A request to the CA failed; `what` says which.
    #[error("{what}")]
    Ca {
        what: String,
        #[source]
        source: CaError,
    },
}

/// Open the DigiCert account `name` of `workspace`.
pub fn open_digicert(workspace: &Workspace, name: &str) -> Result<DigicertCa, AccountError> {
    let Some(settings) = workspace.config.cas.get(name) else {
        return Err(AccountError::Unknown {
            name: name.to_string(),
            defined: workspace.config.cas.keys().cloned().collect(),
        });
    };
    match &settings.kind {
        crate::config::CaKind::Digicert(digicert_settings) => {
            crate::ca::digicert::open(name, digicert_settings, &workspace.keys_dir).map_err(
                |source| AccountError::Open {
                    name: name.to_string(),
                    source,
                },
            )
        }
        _ => Err(AccountError::NotDigicert(name.to_string())),
    }
}

/// What `ca test` found: the user the credentials answer as.
#[derive(Debug)]
pub struct AccountCheck {
    pub user: UserInfo,
    /// The account is configured read-only: apply will not write to it.
    pub read_only: bool,
}

/// Check that the credentials of account `name` work.
pub async fn test(workspace: &Workspace, name: &str) -> Result<AccountCheck, AccountError> {
    let ca = open_digicert(workspace, name)?;
    let user = ca.user().await.map_err(|source| AccountError::Ca {
        what: format!("the API key of `{name}` does not work"),
        source,
    })?;
    Ok(AccountCheck {
        user,
        read_only: ca.is_read_only(),
    })
}

/// What `ca info` shows (and prints as JSON): products, organizations and domains, sorted.
#[derive(Debug, Serialize)]
pub struct AccountInfo {
    pub account: String,
    pub products: Vec<ProductInfo>,
    pub organizations: Vec<OrganizationInfo>,
    pub domains: Vec<DomainInfo>,
}

/// Read the products (with their details), organizations and domains of account `name`.
pub async fn info(workspace: &Workspace, name: &str) -> Result<AccountInfo, AccountError> {
    let ca = open_digicert(workspace, name)?;
    let read = async {
        let products = ca.products().await?;
        let mut detailed = Vec::with_capacity(products.len());
        for product in products {
            match ca.product(&product.name_id).await? {
                Some(full) => detailed.push(full),
                None => detailed.push(product),
            }
        }
        let organizations = ca.organizations().await?;
        let domains = ca.domains().await?;
        Ok::<_, CaError>(AccountInfo {
            account: name.to_string(),
            products: detailed,
            organizations,
            domains,
        })
    };
    let mut info = read.await.map_err(|source| AccountError::Ca {
        what: format!("cannot read account `{name}`"),
        source,
    })?;
    info.products.sort_by(|a, b| a.name_id.cmp(&b.name_id));
    info.organizations.sort_by_key(|o| o.id);
    info.domains.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(info)
}
