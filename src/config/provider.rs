//! What a provider's settings module (`ca/<kind>/settings.rs`, ...) uses from `config`: the
//! shared field types of the file model, key paths, and the validator that records findings.
//!
//! A provider declares its table (serde + `JsonSchema`, `deny_unknown_fields`), checks it with
//! the `Validator` below (pure: no I/O, clock or environment) and returns its validated
//! settings. Performs no I/O.

pub(crate) use super::dns_name::dns_name;
pub(crate) use super::model::SecretRef;
pub(crate) use super::report::shown;
pub(crate) use super::scalar::{absolute, duration, file_mode, normalize, ServiceUrl};
pub(crate) use super::schema::{
    CertificateTable, FieldValue, IdOrName, PaymentMethodName, SecretField, SecretTable,
    SignatureHashName,
};
pub(crate) use super::tree::{Anchor, KeyPath};
pub(crate) use super::validate::{Origin, Validator};

/// Mark `field` required in the schema of a table whose type keeps it optional (so that its
/// absence is reported by the provider's own check, with a better message).
pub(crate) fn require(schema: &mut schemars::Schema, field: &str) {
    if let Some(object) = schema.as_object_mut() {
        let required = object
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let serde_json::Value::Array(required) = required {
            if !required.iter().any(|name| name == field) {
                required.push(serde_json::json!(field));
            }
        }
    }
}

/// `Deserialize` and `JsonSchema` for an enum of provider tables tagged by `kind`:
/// `tagged_table!(CaTable, "a CA", "description", { "acme" => Acme(acme::settings::Table), })`.
///
/// Reading goes through `config::de`, which picks the variant from the table's `kind` key and
/// reads the rest of the table with the variant's type, so every finding keeps its key path.
/// The schema has one `oneOf` branch per kind with only that kind's fields.
macro_rules! tagged_table {
    ($table:ident, $noun:literal, $description:literal, {
        $($name:literal => $variant:ident($type:ty),)+
    }) => {
        impl<'de> serde::Deserialize<'de> for $table {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct TableVisitor;

                impl<'de> serde::de::Visitor<'de> for TableVisitor {
                    type Value = $table;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("the table of ", $noun, " with `kind`"))
                    }

                    fn visit_enum<A: serde::de::EnumAccess<'de>>(
                        self,
                        data: A,
                    ) -> Result<$table, A::Error> {
                        use serde::de::VariantAccess as _;
                        #[derive(serde::Deserialize)]
                        enum Kind {
                            $(#[serde(rename = $name)] $variant,)+
                        }
                        let (kind, content) = data.variant::<Kind>()?;
                        Ok(match kind {
                            $(Kind::$variant => $table::$variant(content.newtype_variant()?),)+
                        })
                    }
                }

                // `config::de` reads an enum named so as a table tagged by its `kind` key
                // (`de::KIND_TAGGED`); the rest of the name is the noun for messages.
                serde::Deserializer::deserialize_enum(
                    deserializer,
                    concat!("kind-tagged:", $noun),
                    &[$($name),+],
                    TableVisitor,
                )
            }
        }

        impl schemars::JsonSchema for $table {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($table).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let branches = vec![$(
                    $crate::config::tagged_branch(
                        <$type as schemars::JsonSchema>::json_schema(generator),
                        $name,
                    ),
                )+];
                schemars::json_schema!({
                    "description": $description,
                    "type": "object",
                    "required": ["kind"],
                    "oneOf": branches,
                })
            }
        }
    };
}
pub(crate) use tagged_table;
