//! What a provider's settings module (`ca/<kind>/settings.rs`, ...) uses from `config`: the
//! shared field types of the file model, key paths, and the validator that records findings.
//!
//! A provider declares its table (serde + `JsonSchema`, `deny_unknown_fields`), checks it with
//! the `Validator` below (pure: no I/O, clock or environment) and returns its validated
//! settings. Performs no I/O.

pub(crate) use super::model::SecretRef;
pub(crate) use super::scalar::{absolute, ServiceUrl};
pub(crate) use super::schema::{SecretField, SecretTable};
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
