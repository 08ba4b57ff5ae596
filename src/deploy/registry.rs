//! The deploy target kinds certform knows: one line each in `deploy_kinds!` below.
//!
//! A kind is a module `deploy::<kind>` with `settings::Table` (the fields of a `deploy` entry
//! besides `kind`; serde with `deny_unknown_fields`, and `JsonSchema`), `settings::Settings` (the
//! `spec::DeployTarget` variant's content), `settings::validate` (pure) and `open::deployer`.
//! From the list, `deploy_kinds!` makes the file model `DeployTable` (tagged by `kind`, one
//! schema branch per kind) and the dispatch of validation and of `deployer`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Deployer;
use crate::apply::FailPoints;
use crate::config::provider::{KeyPath, Origin, Validator};
use crate::spec::DeployTarget;

macro_rules! deploy_kinds {
    ($($name:literal => $variant:ident($module:ident),)+) => {
        /// The names of every deploy target kind, in registry order.
        pub const KIND_NAMES: &[&str] = &[$($name),+];

        /// A `deploy` entry as written: the `kind` key chooses the table's type.
        #[derive(Debug)]
        pub enum DeployTable {
            $($variant(super::$module::settings::Table),)+
        }

        impl DeployTable {
            /// Check the entry `deploy[index]` at `path`; `dirs` holds the directories of the
            /// certificate's earlier targets. `None` after reporting.
            pub(crate) fn validate(
                &self,
                validator: &mut Validator<'_>,
                origin: Origin<'_>,
                path: &KeyPath,
                dirs: &mut BTreeMap<PathBuf, usize>,
                index: usize,
            ) -> Option<DeployTarget> {
                match self {
                    $(DeployTable::$variant(table) => {
                        super::$module::settings::validate(
                            validator, origin, path, table, dirs, index,
                        )
                        .map(DeployTarget::$variant)
                    })+
                }
            }
        }

        /// A `deploy` list item: a target table, or the name of a `[deploy.NAME]` target.
        #[derive(Debug)]
        pub enum DeployEntry {
            Table(Box<DeployTable>),
            Named(String),
        }

        impl<'de> serde::Deserialize<'de> for DeployEntry {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct EntryVisitor;

                impl<'de> serde::de::Visitor<'de> for EntryVisitor {
                    type Value = DeployEntry;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a deploy target table with `kind`, or the name of a `[deploy.NAME]` target")
                    }

                    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<DeployEntry, E> {
                        Ok(DeployEntry::Named(name.to_string()))
                    }

                    fn visit_enum<A: serde::de::EnumAccess<'de>>(
                        self,
                        data: A,
                    ) -> Result<DeployEntry, A::Error> {
                        use serde::de::VariantAccess as _;
                        #[derive(serde::Deserialize)]
                        enum Kind {
                            $(#[serde(rename = $name)] $variant,)+
                        }
                        let (kind, content) = data.variant::<Kind>()?;
                        Ok(DeployEntry::Table(Box::new(match kind {
                            $(Kind::$variant => DeployTable::$variant(content.newtype_variant()?),)+
                        })))
                    }
                }

                serde::Deserializer::deserialize_enum(
                    deserializer,
                    "kind-tagged-or-name:a deploy target",
                    &[$($name),+],
                    EntryVisitor,
                )
            }
        }

        impl schemars::JsonSchema for DeployEntry {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "DeployEntry".into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let table = <DeployTable as schemars::JsonSchema>::json_schema(generator);
                schemars::json_schema!({
                    "description": "A deploy target: a table with `kind`, or the name of a `[deploy.NAME]` target.",
                    "anyOf": [
                        { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$" },
                        table,
                    ],
                })
            }
        }

        /// The deployer of `target`, stopping at `failpoints` (crash tests) when given.
        pub fn deployer(
            target: &DeployTarget,
            failpoints: Option<&FailPoints>,
        ) -> Box<dyn Deployer> {
            match target {
                $(DeployTarget::$variant(target) => {
                    super::$module::open::deployer(target, failpoints)
                })+
            }
        }

        crate::config::provider::tagged_table!(
            DeployTable,
            "a deploy target",
            "One deploy target; `kind` says which it is and which fields apply.",
            { $($name => $variant(super::$module::settings::Table),)+ }
        );
    };
}

deploy_kinds! {
    "files" => Files(files),
    "pkcs12" => Pkcs12(pkcs12),
    "jks" => Jks(jks),
    "command" => Command(command),
    "ssh" => Ssh(ssh),
}

impl DeployTable {
    /// `serves` as written: the names a named target's server serves (only the kinds with a
    /// web root take it).
    pub(crate) fn serves(&self) -> Option<&[String]> {
        match self {
            DeployTable::Files(table) => table.serves.as_deref(),
            DeployTable::Ssh(table) => table.serves.as_deref(),
            DeployTable::Pkcs12(_) | DeployTable::Jks(_) | DeployTable::Command(_) => None,
        }
    }
}
