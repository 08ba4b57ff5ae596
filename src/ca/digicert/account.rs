//! What `ca info` shows of a CertCentral account, and the DCV tokens of its domains.

use super::wire::{text, DomainInfo};
use super::DigicertCa;
use crate::ca::CaError;

impl DigicertCa {
    /// Products (with their details), organizations and domains, sorted, for `ca info`.
    pub(super) async fn read_account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        use crate::ca::{InfoItem, InfoSection};
        let mut products = Vec::new();
        for product in self.products().await? {
            match self.product(&product.name_id).await? {
                Some(full) => products.push(full),
                None => products.push(product),
            }
        }
        let mut organizations = self.organizations().await?;
        let mut domains = self.domains().await?;
        products.sort_by(|a, b| a.name_id.cmp(&b.name_id));
        organizations.sort_by_key(|o| o.id);
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        let joined = |list: &[String], empty: &str| {
            if list.is_empty() {
                empty.to_string()
            } else {
                list.join(", ")
            }
        };
        let products = products
            .iter()
            .map(|product| {
                let years: Vec<String> = product
                    .allowed_validity_years
                    .iter()
                    .map(u64::to_string)
                    .collect();
                let line = format!(
                    "{:<24} {} ({}){}{}",
                    product.name_id,
                    product.name,
                    product
                        .validation_type
                        .as_deref()
                        .unwrap_or("?")
                        .to_uppercase(),
                    if years.is_empty() {
                        String::new()
                    } else {
                        format!(", years: {}", years.join("/"))
                    },
                    if product.signature_hashes.is_empty() {
                        String::new()
                    } else {
                        format!(", hashes: {}", product.signature_hashes.join("/"))
                    }
                );
                InfoItem::new(line, product)
            })
            .collect();
        let organizations = organizations
            .iter()
            .map(|organization| {
                let line = format!(
                    "{:<10} {} [{}] validated: {}",
                    organization.id,
                    organization.name,
                    organization.status,
                    joined(&organization.validated, "none")
                );
                InfoItem::new(line, organization)
            })
            .collect();
        let domains = domains
            .iter()
            .map(|domain| {
                let line = format!(
                    "{:<32} dcv: {}{}",
                    domain.name,
                    domain.dcv_status,
                    if domain.validated.is_empty() {
                        String::new()
                    } else {
                        format!(", validated for: {}", domain.validated.join(", "))
                    }
                );
                InfoItem::new(line, domain)
            })
            .collect();
        let section = |key: &str, title: &str, items| InfoSection {
            key: key.to_string(),
            title: title.to_string(),
            items,
        };
        Ok(crate::ca::AccountInfo {
            account: self.name.clone(),
            heading: format!("DigiCert account `{}`", self.name),
            sections: vec![
                section("products", "Products", products),
                section("organizations", "Organizations", organizations),
                section("domains", "Domains", domains),
            ],
        })
    }

    /// The DCV token of the domain record covering `name` (`GET /domain/{id}?include_dcv=true`).
    pub(super) async fn domain_token(
        &self,
        domains: &[DomainInfo],
        name: &str,
    ) -> Result<Option<String>, CaError> {
        let Some(domain) = domains.iter().find(|d| d.covers(name)) else {
            return Ok(None);
        };
        let value = self
            .get_optional(&format!("domain/{}?include_dcv=true", domain.id))
            .await?;
        Ok(value
            .as_ref()
            .and_then(|v| v.get("dcv_token"))
            .and_then(|t| text(t, "token")))
    }
}
