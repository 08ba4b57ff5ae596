//! The serde model of one configuration file, exactly as written (TOML or YAML).
//!
//! These types mirror the files one to one: every table rejects unknown fields, values keep the
//! spelling of the file, and nothing is checked beyond types. `validate` turns them into the
//! model. Their doc comments become the descriptions of the published JSON Schema
//! (`schemas/config.schema.json`), so they are written for config authors. Performs no I/O.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// One certform configuration file. A configuration directory may hold several; each item
/// (`[certificate.NAME]`, `[ca.NAME]`, `[dns.NAME]`, `[state]`, `[defaults]`) is defined once.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "certform configuration file")]
pub(crate) struct ConfigFile {
    /// Where state and keys live.
    pub(crate) state: Option<StateTable>,
    /// Values used by every certificate that does not set them itself.
    pub(crate) defaults: Option<DefaultsTable>,
    /// CA accounts, by name (`[a-z0-9][a-z0-9_-]{0,62}`).
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub(crate) ca: BTreeMap<String, crate::ca::registry::CaTable>,
    /// DNS provider accounts used for DNS domain-control validation, by name.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub(crate) dns: BTreeMap<String, crate::dns::registry::DnsTable>,
    /// Desired certificates, by name; the name is used for file names in state.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    // Boxed (the schema is the table's): a map filled one name at a time leaves its nodes
    // about half empty, and a 552-byte table inline cost ~1.2 KB per certificate while the
    // configuration is validated (~4.5 MB at 10,000).
    pub(crate) certificate: BTreeMap<String, Box<CertificateTable>>,
    /// Deploy targets by name, listed by certificates as `deploy = ["NAME"]`.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub(crate) deploy: BTreeMap<String, crate::deploy::registry::DeployTable>,
}

/// The pattern every certificate, CA and DNS provider name must match.
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// `[state]`: the git repository holding certform's state.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateTable {
    /// Git work tree, relative to this file. Default `state`.
    pub(crate) repo: Option<String>,
    /// Sub-directory of the repository for certform's files; relative, without `..`. Default `.`.
    pub(crate) dir: Option<String>,
    /// Directory of private keys, relative to this file. Default: outside every repository.
    pub(crate) keys_dir: Option<String>,
    /// Push each apply's commit to `remote`. Default `false`.
    pub(crate) push: Option<bool>,
    /// Remote pushed to: a remote name of the repository, a URL (`https://`, `ssh://`,
    /// `git@host:path`) or a path. Default `origin`. Pushed with the system `git`.
    pub(crate) remote: Option<String>,
    /// Token for an HTTPS remote (sent as HTTP basic auth with `push_user`), from the
    /// environment or a file; never inline. Without it git's own credential helpers are used.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) push_token: Option<SecretField>,
    /// User name sent with `push_token`. Default `x-access-token` (GitHub; GitLab and Gitea
    /// accept any name with a personal access token).
    pub(crate) push_user: Option<String>,
    /// Private key file for an SSH remote (`{ file = "path" }`); without it the SSH agent and
    /// `~/.ssh` are used.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) push_ssh_key: Option<SecretField>,
    /// `known_hosts` file checked strictly for an SSH remote, relative to this file. Default:
    /// ssh's own (`~/.ssh/known_hosts`), also strict when `push_ssh_key` is set.
    pub(crate) push_known_hosts: Option<String>,
    /// Where certificate private keys live: `files` (in `keys_dir`, the default) or `age` (in
    /// the state repository under `keys/`, encrypted to `age_recipients`).
    pub(crate) keys: Option<KeysName>,
    /// With `keys = "age"`: the age recipients (`age1...` X25519 public keys) every key is
    /// encrypted to.
    pub(crate) age_recipients: Option<Vec<String>>,
    /// The age identity (`AGE-SECRET-KEY-1...`, or an identity file's text) that decrypts the
    /// keys: `{ env = "VAR" }` or `{ file = "path" }`. Needed to deploy, renew and re-encrypt.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) age_identity: Option<SecretField>,
}

/// `[state] keys`: where certificate private keys are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum KeysName {
    /// Plain PEM files in `keys_dir`, outside the state repository.
    #[serde(rename = "files")]
    Files,
    /// In the state repository, encrypted with age.
    #[serde(rename = "age")]
    Age,
}

/// `[defaults]`: values for certificates that do not set them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultsTable {
    /// Name of the `[ca.NAME]` issuing certificates.
    pub(crate) ca: Option<String>,
    /// When to renew: a duration before expiry (`30d`) or a share of the lifetime (`33%`).
    #[schemars(regex(pattern = RENEW_BEFORE_PATTERN))]
    pub(crate) renew_before: Option<String>,
    /// Private key algorithm and size.
    pub(crate) key: Option<KeyTable>,
    /// Requested lifetime.
    pub(crate) validity: Option<ValidityTable>,
    /// What happens at the CA when a certificate is removed from config.
    pub(crate) on_remove: Option<OnRemoveName>,
    /// Most destructive actions (revoke, cancel) one plan may hold before `apply` needs
    /// `--force`. Default 5.
    #[schemars(range(min = 0))]
    pub(crate) max_destructive: Option<i64>,
    /// Largest share, in percent, of the certificates in state that one plan may reissue before
    /// `apply` needs `--force`; checked only once state holds 10 or more certificates. Default 50.
    #[schemars(range(min = 0, max = 100))]
    pub(crate) max_reissue_percent: Option<i64>,
    /// Most renewals one run carries out; the closest to expiry go first, the rest wait for a
    /// later run (listed in the plan with their turn). Default: no limit.
    #[schemars(range(min = 1))]
    pub(crate) max_renewals_per_run: Option<i64>,
}

const RENEW_BEFORE_PATTERN: &str = r"^([0-9]+[smhdw]|[0-9]{1,2}%)$";

/// Where a secret comes from: exactly one of `env` or `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretTable {
    /// Name of an environment variable holding the secret.
    pub(crate) env: Option<String>,
    /// File holding the secret, relative to this config file.
    pub(crate) file: Option<String>,
}

/// A secret as written: a reference, or a plaintext value (always rejected, and dropped here so
/// that it cannot be printed anywhere).
#[derive(Debug)]
pub(crate) enum SecretField {
    Reference(SecretTable),
    Plaintext,
}

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table like `{ env = \"VAR\" }` or `{ file = \"path\" }`")
            }

            fn visit_str<E: de::Error>(self, _secret: &str) -> Result<SecretField, E> {
                Ok(SecretField::Plaintext)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretField, A::Error> {
                SecretTable::deserialize(MapAccessDeserializer::new(map))
                    .map(SecretField::Reference)
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}

/// `[certificate.NAME]`: one desired certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateTable {
    /// Name of the `[ca.NAME]` issuing it. Default `defaults.ca`, else the built-in `local` CA.
    pub(crate) ca: Option<String>,
    /// The subject's common name; always one of the names on the certificate.
    pub(crate) common_name: String,
    /// Further DNS names (`*.example.com` wildcards allowed; IDNs are converted to punycode).
    pub(crate) sans: Option<Vec<String>>,
    /// Private key algorithm and size. Default `defaults.key`, else ECDSA P-256.
    pub(crate) key: Option<KeyTable>,
    /// Requested lifetime. Default `defaults.validity`, else 90 days.
    pub(crate) validity: Option<ValidityTable>,
    /// When to renew: a duration before expiry (`30d`) or a share of the lifetime (`33%`).
    #[schemars(regex(pattern = RENEW_BEFORE_PATTERN))]
    pub(crate) renew_before: Option<String>,
    /// What happens at the CA when this certificate is removed from config. Default `forget`.
    pub(crate) on_remove: Option<OnRemoveName>,
    /// Revoke the certificate now.
    pub(crate) revoke: Option<bool>,
    /// Reason given when revoking (with `revoke = true`). Default `unspecified`.
    pub(crate) revoke_reason: Option<RevocationReasonName>,
    /// Refuse plans that revoke, cancel or forget this certificate.
    pub(crate) prevent_destroy: Option<bool>,
    /// How control of the names is proven: one rule, or several each with `names`.
    #[schemars(with = "Option<DcvSchema>")]
    pub(crate) dcv: Option<DcvField>,
    /// Where the issued certificate is written: target tables, or names of `[deploy.NAME]`
    /// targets.
    pub(crate) deploy: Option<Vec<crate::deploy::registry::DeployEntry>>,
    /// Also deploy to every `[deploy.NAME]` target whose `serves` covers one of the
    /// certificate's names. Default `false`: only `deploy` is deployed to.
    pub(crate) deploy_to_serving: Option<bool>,
    /// DigiCert only: product `name_id` to order, e.g. `ssl_basic`. Default `ssl_basic`.
    pub(crate) product: Option<String>,
    /// DigiCert: id of the validated organization (OV/EV products). Sectigo: the
    /// organization or department, by id or by name.
    pub(crate) organization: Option<IdOrName>,
    /// DigiCert only: `balance` (default), `card` or `profile`.
    pub(crate) payment_method: Option<PaymentMethodName>,
    /// DigiCert only: signature hash of the certificate. Default: the product's default.
    pub(crate) signature_hash: Option<SignatureHashName>,
    /// DigiCert only: server platform id (`-1` = other).
    pub(crate) server_platform: Option<i64>,
    /// Sectigo only: the certificate profile ("type"), by id or by name.
    pub(crate) profile: Option<IdOrName>,
    /// Sectigo only: the term in days; one of the profile's terms. Default: the profile's
    /// shortest term.
    #[schemars(range(min = 1))]
    pub(crate) term: Option<i64>,
    /// Sectigo only: comments stored with the request (at most 990 characters: certform adds
    /// its marker, and SCM takes 1,024).
    pub(crate) comments: Option<String>,
    /// Sectigo only: email addresses of external requesters.
    pub(crate) external_requesters: Option<Vec<String>>,
    /// Sectigo only: custom field values by field name (strings, integers, booleans or
    /// `YYYY-MM-DD` dates), checked against the account's custom fields.
    pub(crate) custom_fields: Option<BTreeMap<String, FieldValue>>,
}

/// An id (a positive integer) or a name.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub(crate) enum IdOrName {
    Id(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for IdOrName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdOrNameVisitor;

        impl Visitor<'_> for IdOrNameVisitor {
            type Value = IdOrName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (integer) or a name (string)")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<IdOrName, E> {
                Ok(IdOrName::Id(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<IdOrName, E> {
                i64::try_from(value)
                    .map(IdOrName::Id)
                    .map_err(|_| E::custom("id out of range"))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<IdOrName, E> {
                Ok(IdOrName::Name(value.to_string()))
            }
        }

        deserializer.deserialize_any(IdOrNameVisitor)
    }
}

/// A custom field's value as written: a string, an integer or a boolean (TOML dates arrive
/// as strings).
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub(crate) enum FieldValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldValueVisitor;

        impl Visitor<'_> for FieldValueVisitor {
            type Value = FieldValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer, a boolean or a date")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::Integer(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<FieldValue, E> {
                i64::try_from(value)
                    .map(FieldValue::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Boolean(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(value.to_string()))
            }
        }

        deserializer.deserialize_any(FieldValueVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum PaymentMethodName {
    #[serde(rename = "balance")]
    Balance,
    #[serde(rename = "card")]
    Card,
    #[serde(rename = "profile")]
    Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum SignatureHashName {
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "sha384")]
    Sha384,
    #[serde(rename = "sha512")]
    Sha512,
}

/// Private key algorithm and size.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyTable {
    pub(crate) algorithm: KeyAlgorithmName,
    /// Bits: RSA 2048 (default), 3072 or 4096; ECDSA 256 (default) or 384; none for Ed25519.
    pub(crate) size: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum KeyAlgorithmName {
    #[serde(rename = "rsa")]
    Rsa,
    #[serde(rename = "ecdsa")]
    Ecdsa,
    #[serde(rename = "ed25519")]
    Ed25519,
}

/// Requested lifetime: one of `until` (wins), `days`, `years`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidityTable {
    #[schemars(range(min = 1))]
    pub(crate) days: Option<i64>,
    #[schemars(range(min = 1))]
    pub(crate) years: Option<i64>,
    /// Expiry date, `YYYY-MM-DD` (a TOML date or a string).
    #[schemars(extend("format" = "date"))]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum OnRemoveName {
    /// Drop it from state only; the CA keeps it.
    #[serde(rename = "forget")]
    Forget,
    /// Cancel a pending order.
    #[serde(rename = "cancel")]
    Cancel,
    /// Revoke the issued certificate.
    #[serde(rename = "revoke")]
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum RevocationReasonName {
    #[serde(rename = "unspecified")]
    Unspecified,
    #[serde(rename = "key_compromise")]
    KeyCompromise,
    #[serde(rename = "affiliation_changed")]
    AffiliationChanged,
    #[serde(rename = "superseded")]
    Superseded,
    #[serde(rename = "cessation_of_operation")]
    CessationOfOperation,
}

/// `dcv` as written: one rule (a table) or several (an array of tables).
#[derive(Debug)]
pub(crate) enum DcvField {
    One(DcvRuleTable),
    Many(Vec<DcvRuleTable>),
}

impl<'de> Deserialize<'de> for DcvField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DcvVisitor;

        impl<'de> Visitor<'de> for DcvVisitor {
            type Value = DcvField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table or an array of tables")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DcvField, A::Error> {
                DcvRuleTable::deserialize(MapAccessDeserializer::new(map)).map(DcvField::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DcvField, A::Error> {
                Vec::<DcvRuleTable>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(DcvField::Many)
            }
        }

        deserializer.deserialize_any(DcvVisitor)
    }
}

/// One name, or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The names, in the order written.
    pub(crate) fn names(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(name) => vec![name.as_str()],
            OneOrMany::Many(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name (string) or a list of names")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(value.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneOrMany, A::Error> {
                Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

/// One DCV rule, or several rules each with `names`.
// Describes the schema only; reading goes through `DcvField`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "only describes the schema of `DcvField`")]
pub(crate) enum DcvSchema {
    One(DcvRuleTable),
    Many(Vec<DcvRuleTable>),
}

/// One domain-control validation rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DcvRuleTable {
    pub(crate) method: DcvMethodName,
    /// `dns` only (required): the `[dns.NAME]` that publishes the TXT records.
    pub(crate) provider: Option<String>,
    /// `http` only: directory served at `/.well-known/acme-challenge/`, relative to this file.
    pub(crate) webroot: Option<String>,
    /// `http` only: address of a built-in responder, e.g. `0.0.0.0:80`.
    pub(crate) listen: Option<String>,
    /// `http` only: the `[deploy.NAME]` target (or targets) whose `web_root` receives the
    /// validation files (removed afterwards); every one listed gets each file. Without `via`,
    /// `webroot` and `listen`, and when some named target declares `serves`: every named
    /// target whose `serves` covers the name.
    pub(crate) via: Option<OneOrMany>,
    /// `email` only: the address that approves, e.g. `admin@example.com`: `admin@`,
    /// `administrator@`, `hostmaster@`, `postmaster@` or `webmaster@` the name or a parent of
    /// it (or a WHOIS contact of the domain). Sectigo and The SSL Store send the email there;
    /// DigiCert sends to its own list of these addresses, and certform names it in messages.
    pub(crate) approver: Option<String>,
    /// Names this rule covers; without it, every name no other rule covers.
    pub(crate) names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum DcvMethodName {
    /// A TXT record published through a DNS provider.
    #[serde(rename = "dns")]
    Dns,
    /// A file served over HTTP on port 80 (not for wildcard names).
    #[serde(rename = "http")]
    Http,
    /// An email to a domain contact, approved by a person.
    #[serde(rename = "email")]
    Email,
}

/// The schema branch of one `kind` of a tagged table: the kind's own table (`schema`, which
/// rejects unknown fields) with `kind` added as a required constant.
pub(crate) fn tagged_branch(schema: schemars::Schema, kind: &str) -> schemars::Schema {
    let mut value = schema.to_value();
    if let serde_json::Value::Object(object) = &mut value {
        let properties = object
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}));
        if let serde_json::Value::Object(properties) = properties {
            let mut with_kind = serde_json::Map::new();
            with_kind.insert("kind".to_string(), serde_json::json!({ "const": kind }));
            with_kind.extend(std::mem::take(properties));
            *properties = with_kind;
        }
        let required = object
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let serde_json::Value::Array(required) = required {
            required.insert(0, serde_json::json!("kind"));
        }
    }
    schemars::Schema::try_from(value).unwrap_or_default()
}

/// The JSON Schema of one configuration file, pretty-printed with a trailing newline.
///
/// Optional keys are described as absent-or-value: TOML has no null, so the `null` schemars adds
/// for `Option` is removed.
pub(crate) fn render() -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<ConfigFile>().to_value();
    remove_null(&mut schema);
    match serde_json::to_string_pretty(&schema) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        // Serialising a JSON value to a string has no failure mode; keep the output valid anyway.
        Err(_) => "{}\n".to_string(),
    }
}

/// Drop `"null"` from `type` lists and `{ "type": "null" }` from `anyOf`, everywhere.
fn remove_null(value: &mut serde_json::Value) {
    use serde_json::Value;

    match value {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|kind| kind != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    object.insert("type".to_string(), single);
                }
            }
            let null = serde_json::json!({ "type": "null" });
            if let Some(Value::Array(alternatives)) = object.get_mut("anyOf") {
                alternatives.retain(|alternative| *alternative != null);
                if alternatives.len() == 1 {
                    if let Some(Value::Object(only)) = alternatives.pop() {
                        object.remove("anyOf");
                        for (key, value) in only {
                            object.entry(key).or_insert(value);
                        }
                    }
                }
            }
            for child in object.values_mut() {
                remove_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(remove_null),
        _ => {}
    }
}
