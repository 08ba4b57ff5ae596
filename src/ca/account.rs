//! Account-level answers of a CA, in provider-neutral form: who the credentials answer as
//! (`ca test`), what the account holds (`ca info`) and the orders it has (`import`).
//!
//! Providers fill these; the library and CLI render them without knowing the vendor.

use serde::ser::SerializeMap;
use serde::Serialize;
use time::OffsetDateTime;

/// The account is usable: who its credentials answer as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who the credentials answer as, in words (`user `jane` (id 7), roles: administrator`).
    pub identity: String,
    /// The account is configured read-only: apply will not write to it.
    pub read_only: bool,
}

/// What an account holds, in sections (DigiCert: products, organizations, domains).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountInfo {
    /// The account's name in config.
    pub account: String,
    /// The first line of the text rendering (`DigiCert account `prod``).
    pub heading: String,
    pub sections: Vec<InfoSection>,
}

/// One section of `AccountInfo`: a titled list in text, a keyed array in JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoSection {
    /// The JSON key (`products`).
    pub key: String,
    /// The text title (`Products`).
    pub title: String,
    /// Sorted as they are shown.
    pub items: Vec<InfoItem>,
}

/// One entry of a section: its text line and its JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoItem {
    pub line: String,
    pub json: serde_json::Value,
}

impl InfoItem {
    /// An item whose JSON is `value` serialized (`Null` if it cannot be: never for plain data).
    pub fn new(line: String, value: &impl Serialize) -> Self {
        Self {
            line,
            json: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// `{"account": NAME, SECTION_KEY: [ITEM, ...], ...}`, sections in order.
impl Serialize for AccountInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + self.sections.len()))?;
        map.serialize_entry("account", &self.account)?;
        for section in &self.sections {
            let items: Vec<&serde_json::Value> = section.items.iter().map(|i| &i.json).collect();
            map.serialize_entry(&section.key, &items)?;
        }
        map.end()
    }
}

impl AccountInfo {
    /// The text rendering: the heading, then each section's title and indented lines.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.heading);
        for section in &self.sections {
            out.push_str(&format!("\n{}:\n", section.title));
            if section.items.is_empty() {
                out.push_str("  none\n");
            }
            for item in &section.items {
                out.push_str(&format!("  {}\n", item.line));
            }
        }
        out
    }
}

/// One order an account holds, for `import`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOrder {
    /// The CA's order id (what `fetch` takes).
    pub order_id: String,
    /// The CA's status word, lowercase (`issued`, `revoked`, `pending`, ...); `issued`
    /// orders past `not_after` are shown as `expired` by import.
    pub status: String,
    pub common_name: String,
    /// Every DNS name of the order, the common name included (empty when the CA's list does
    /// not say): what the inventory compares to find duplicates.
    pub names: Vec<String>,
    /// Serial of the order's current certificate, when the list says.
    pub serial: Option<crate::serial::Serial>,
    /// The tag the order was placed with (DigiCert `alternative_order_id`), when any: certform
    /// tags its orders with `<certificate id>.<hex>`.
    pub tag: Option<String>,
    pub not_after: Option<OffsetDateTime>,
    /// Certificate settings the config stub should carry for this order, as TOML values by
    /// key (DigiCert: `product`, `organization`, `signature_hash`).
    pub settings: Vec<(String, toml::Value)>,
    /// The id of the order's current certificate, when the list says (DigiCert: what the
    /// download takes, so import needs no detail request).
    pub certificate_id: Option<String>,
    /// Which orders replaced this one or it replaced, when the CA's list says.
    pub lineage: Lineage,
}

/// How an order is linked to its renewals (DigiCert: `is_renewed`, `renewed_order_id`,
/// `renewal_of_order_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// A later order renewed this one (`is_renewed`).
    pub renewed: bool,
    /// The order that renewed it, when known.
    pub renewed_by: Option<String>,
    /// The order this one renews, when known.
    pub renewal_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_renders_sections_as_text_and_keyed_json() {
        let info = AccountInfo {
            account: "lab".into(),
            heading: "local CA `lab`".into(),
            sections: vec![
                InfoSection {
                    key: "orders".into(),
                    title: "Orders".into(),
                    items: vec![InfoItem::new("o-1 issued".into(), &"o-1")],
                },
                InfoSection {
                    key: "roots".into(),
                    title: "Roots".into(),
                    items: Vec::new(),
                },
            ],
        };
        assert_eq!(
            info.text(),
            "local CA `lab`\n\nOrders:\n  o-1 issued\n\nRoots:\n  none\n"
        );
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"account":"lab","orders":["o-1"],"roots":[]}"#
        );
    }
}
