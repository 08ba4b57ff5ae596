//! The DNS provider kinds certform knows: one line each in `dns_kinds!` below.
//!
//! A kind is a module `dns::<kind>` with `settings::Table` (the fields of `[dns.NAME]` besides
//! `kind`; serde with `deny_unknown_fields`, and `JsonSchema`), `settings::Settings` and
//! `settings::validate` (pure), and `open::open`. From the list, `dns_kinds!` makes the file
//! model `DnsTable` (tagged by `kind`, one schema branch per kind), the validated `DnsKind`, and
//! the dispatch of validation and opening. Nothing else matches on the kind of a DNS provider.

use std::sync::Arc;

use serde::Serialize;

use super::{DnsError, DnsProvider};
use crate::config::provider::{KeyPath, Validator};

macro_rules! dns_kinds {
    ($($name:literal => $variant:ident($module:ident),)+) => {
        /// The names of every DNS provider kind, in registry order.
        pub const KIND_NAMES: &[&str] = &[$($name),+];

        /// `[dns.NAME]` as written: the `kind` key chooses the table's type.
        #[derive(Debug)]
        pub enum DnsTable {
            $($variant(super::$module::settings::Table),)+
        }

        /// A validated DNS provider's kind and settings.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub enum DnsKind {
            $($variant(super::$module::settings::Settings),)+
        }

        impl DnsTable {
            /// Check the table of `[dns.NAME]` at `path`; `None` after reporting.
            pub(crate) fn validate(
                &self,
                validator: &mut Validator<'_>,
                file: usize,
                name: &str,
                path: &KeyPath,
            ) -> Option<DnsKind> {
                match self {
                    $(DnsTable::$variant(table) => {
                        super::$module::settings::validate(validator, file, name, path, table)
                            .map(DnsKind::$variant)
                    })+
                }
            }
        }

        impl DnsKind {
            /// The `kind` name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(DnsKind::$variant(_) => $name,)+
                }
            }

            /// Open the provider `name` for a run, resolving its secrets now.
            pub fn open(&self, name: &str) -> Result<Arc<dyn DnsProvider>, DnsError> {
                match self {
                    $(DnsKind::$variant(settings) => super::$module::open::open(name, settings),)+
                }
            }
        }

        crate::config::provider::tagged_table!(
            DnsTable,
            "a DNS provider",
            "`[dns.NAME]`: one DNS provider account; `kind` says which provider it is and which fields apply.",
            { $($name => $variant(super::$module::settings::Table),)+ }
        );
    };
}

dns_kinds! {
    "rfc2136" => Rfc2136(rfc2136),
}
