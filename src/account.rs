//! CA accounts outside a run: open one by name, check its credentials (`ca test`) and read
//! what it holds (`ca info`), for any CA kind that offers them. Never prints; the caller
//! renders the results.

use std::sync::Arc;

use crate::ca::{CaError, CertificateAuthority, ErrorClass};
use crate::workspace::Workspace;

pub use crate::ca::{AccountInfo, Credentials};

/// Why an account could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no CA account `{name}` in config")]
    Unknown { name: String, defined: Vec<String> },
    /// The account's kind does not offer `operation`.
    #[error("`{name}` is a `kind = \"{kind}\"` account, which does not support {operation}")]
    Unsupported {
        name: String,
        kind: String,
        operation: String,
    },
    /// A local CA or ACME account that no apply has created yet.
    #[error("CA account `{name}` has not been used yet: `certform apply` creates it on first use")]
    NotCreated { name: String },
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

impl AccountError {
    /// A failed account call: `Unsupported` answers name the kind and the operation, other
    /// errors keep `what` with the CA's error as cause.
    pub fn from_call(
        ca: &dyn CertificateAuthority,
        operation: &str,
        what: String,
        source: CaError,
    ) -> Self {
        if source.class == ErrorClass::Unsupported {
            return AccountError::Unsupported {
                name: ca.name().to_string(),
                kind: ca.kind().to_string(),
                operation: operation.to_string(),
            };
        }
        AccountError::Ca { what, source }
    }
}

/// Open the account `name` of `workspace`, whatever its kind; nothing is created.
pub async fn open(
    workspace: &Workspace,
    name: &str,
) -> Result<Arc<dyn CertificateAuthority>, AccountError> {
    if !workspace.config.cas.contains_key(name) {
        return Err(AccountError::Unknown {
            name: name.to_string(),
            defined: workspace.config.cas.keys().cloned().collect(),
        });
    }
    crate::ca::open_account(&workspace.config, name, &workspace.keys_dir, workspace.now)
        .await
        .map_err(|source| AccountError::Open {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| AccountError::NotCreated {
            name: name.to_string(),
        })
}

/// Check that the credentials of account `name` work.
pub async fn test(workspace: &Workspace, name: &str) -> Result<Credentials, AccountError> {
    let ca = open(workspace, name).await?;
    ca.check_credentials().await.map_err(|source| {
        AccountError::from_call(
            ca.as_ref(),
            "checking credentials",
            format!("the credentials of `{name}` do not work"),
            source,
        )
    })
}

/// Read what account `name` holds (DigiCert: products, organizations and domains, sorted).
///
/// With `refresh`, CAs that cache account data (Sectigo) read it again.
pub async fn info(
    workspace: &Workspace,
    name: &str,
    refresh: bool,
) -> Result<AccountInfo, AccountError> {
    let ca = open(workspace, name).await?;
    let answer = if refresh {
        ca.account_info_refreshed().await
    } else {
        ca.account_info().await
    };
    answer.map_err(|source| {
        AccountError::from_call(
            ca.as_ref(),
            "showing account information",
            format!("cannot read account `{name}`"),
            source,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Capabilities, DuplicatePrevention};
    use crate::testing::FakeCa;

    #[tokio::test]
    async fn an_operation_the_kind_lacks_names_the_kind_and_the_operation() {
        let caps = Capabilities {
            reissue_same_order: false,
            cancel: false,
            revoke: true,
            duplicates: DuplicatePrevention::TagAtCa,
            cancel_refunds: false,
            honours_validity: true,
            max_orders_per_run: None,
            max_lifetime: &[],
            parallel_certificates: 4,
        };
        let ca = FakeCa::new("lab", caps, None);
        for (operation, answer) in [
            ("checking credentials", ca.check_credentials().await.err()),
            ("showing account information", ca.account_info().await.err()),
            ("listing orders", ca.list_orders().await.err()),
            ("checking certificates", ca.check(&[]).await.err()),
        ] {
            let answer = answer.expect("the fake offers no account operations");
            assert_eq!(answer.class, ErrorClass::Unsupported, "{operation}");
            let error = AccountError::from_call(&ca, operation, "unused".into(), answer);
            assert_eq!(
                error.to_string(),
                format!("`lab` is a `kind = \"fake\"` account, which does not support {operation}")
            );
        }
        // Any other failure keeps what was being done, with the CA's error as the cause.
        let refused = CaError::new(ErrorClass::Auth, "401 unauthorized");
        let error = AccountError::from_call(&ca, "listing orders", "cannot list".into(), refused);
        assert!(
            matches!(&error, AccountError::Ca { what, source } if what == "cannot list" && source.class == ErrorClass::Auth),
            "{error:?}"
        );
    }
}
