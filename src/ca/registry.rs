//! The CA kinds certform knows: one line each in `ca_kinds!` below.
//!
//! A kind is a module `ca::<kind>` with
//! - `settings::Table`: the fields of `[ca.NAME]` besides `kind` (serde with
//!   `deny_unknown_fields`, and `JsonSchema`: its doc comments become schema descriptions),
//!   including the settings every account shares: `inventory` (read by `CaTable::inventory`
//!   into `CaSettings`),
//! - `settings::Settings`: the validated settings, and `settings::validate` from one to the
//!   other (pure: findings go to the `Validator`), and `settings::references`: the secrets and
//!   files they name (preflight checks them),
//! - `open::open`: the account for a run, and `CAPABILITIES`.
//!
//! From the list, `ca_kinds!` makes the file model `CaTable` (tagged by `kind`, one schema
//! branch per kind), the validated `CaKind`, the names for "did you mean", and the dispatch of
//! validation, opening and capabilities, and `CaOptions`, a certificate's typed order options
//! (one variant per kind, from `settings::Options`). Nothing else matches on the kind of a CA.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CaError, Capabilities, CertificateAuthority};
use crate::config::provider::{CertificateTable, KeyPath, Validator};
use crate::config::Config;
use crate::spec::DcvRule;

/// What opening an account may need besides its own settings.
pub struct OpenContext<'a> {
    pub config: &'a Config,
    pub keys_dir: &'a Path,
    pub now: OffsetDateTime,
    /// `false` on plan: an account that was never used is not created (`open` returns `None`).
    pub create: bool,
}

macro_rules! ca_kinds {
    ($($name:literal => $variant:ident($module:ident),)+) => {
        /// The names of every CA kind, in registry order.
        pub const KIND_NAMES: &[&str] = &[$($name),+];

        /// The fields of `[certificate.NAME]` the CA kind `kind` takes (its order options).
        pub(crate) fn certificate_fields(kind: &str) -> &'static [&'static str] {
            $(if kind == $name {
                return super::$module::settings::CERTIFICATE_FIELDS;
            })+
            &[]
        }

        /// The order options of a certificate of a CA of kind `kind`, checked by that kind.
        pub(crate) fn order_options(
            kind: &str,
            validator: &mut Validator<'_>,
            file: usize,
            path: &KeyPath,
            table: &CertificateTable,
            dcv: &[DcvRule],
        ) -> CaOptions {
            $(if kind == $name {
                return CaOptions::$variant(
                    super::$module::settings::order_options(validator, file, path, table, dcv),
                );
            })+
            CaOptions::default()
        }

        /// The order options of one certificate, typed by its CA's kind (each kind's
        /// `settings::Options`; an empty struct for kinds that take none).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum CaOptions {
            $($variant(super::$module::settings::Options),)+
        }

        impl CaOptions {
            /// The options as `key = value` lines of the issuance digest, sorted by key.
            pub fn issuance_fields(&self) -> Vec<(String, String)> {
                match self {
                    $(CaOptions::$variant(options) => options.issuance_fields(),)+
                }
            }

            /// The kind these options belong to.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $(CaOptions::$variant(_) => $name,)+
                }
            }
        }

        /// `[ca.NAME]` as written: the `kind` key chooses the table's type.
        #[derive(Debug)]
        pub enum CaTable {
            $($variant(super::$module::settings::Table),)+
        }

        /// A validated CA account's kind and settings.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub enum CaKind {
            $($variant(super::$module::settings::Settings),)+
        }

        impl CaTable {
            /// The `kind` written.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $(CaTable::$variant(_) => $name,)+
                }
            }

            /// `inventory`, the setting every kind's table shares.
            pub fn inventory(&self) -> Option<crate::ca_inventory::Schedule> {
                match self {
                    $(CaTable::$variant(table) => table.inventory,)+
                }
            }

            /// `max_orders_per_run` as written (every kind takes it).
            pub(crate) fn max_orders_per_run(&self) -> Option<i64> {
                match self {
                    $(CaTable::$variant(table) => table.max_orders_per_run,)+
                }
            }

            /// Check the table of `[ca.NAME]` at `path`; `None` after reporting.
            pub(crate) fn validate(
                &self,
                validator: &mut Validator<'_>,
                file: usize,
                name: &str,
                path: &KeyPath,
            ) -> Option<CaKind> {
                match self {
                    $(CaTable::$variant(table) => {
                        super::$module::settings::validate(validator, file, name, path, table)
                            .map(CaKind::$variant)
                    })+
                }
            }
        }

        impl CaKind {
            /// The `kind` name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(CaKind::$variant(_) => $name,)+
                }
            }

            /// What the account's settings point at outside config (secrets, files), as
            /// `(key under `ca.NAME`, target)`, for preflight.
            pub(crate) fn references(&self) -> Vec<(String, crate::preflight::Target)> {
                match self {
                    $(CaKind::$variant(settings) => super::$module::settings::references(settings),)+
                }
            }

            /// What this kind of CA can do, known without contacting it.
            pub fn capabilities(&self) -> Capabilities {
                match self {
                    $(CaKind::$variant(_) => super::$module::CAPABILITIES,)+
                }
            }

            /// Open the account `name` for a run; `None` when it is left closed (see
            /// `OpenContext::create`).
            pub async fn open(
                &self,
                name: &str,
                context: &OpenContext<'_>,
            ) -> Result<Option<Arc<dyn CertificateAuthority>>, CaError> {
                match self {
                    $(CaKind::$variant(settings) => {
                        super::$module::open::open(name, settings, context).await
                    })+
                }
            }
        }

        crate::config::provider::tagged_table!(
            CaTable,
            "a CA",
            "`[ca.NAME]`: one CA account; `kind` says which CA it is and which fields apply.",
            { $($name => $variant(super::$module::settings::Table),)+ }
        );
    };
}

/// The options of a certificate of the built-in local CA, which takes none.
impl Default for CaOptions {
    fn default() -> Self {
        CaOptions::Local(super::local::settings::Options::default())
    }
}

ca_kinds! {
    "local" => Local(local),
    "acme" => Acme(acme),
    "digicert" => Digicert(digicert),
    "sectigo" => Sectigo(sectigo),
}
