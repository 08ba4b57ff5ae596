//! Semantic validation: from the files' serde model (`schema`) to the validated `Config`.
//!
//! Merges the files (each item defined once), checks every rule that types cannot express
//! (names, references, key sizes, durations, lifetimes, DCV coverage, deploy targets, secrets),
//! folds in defaults and resolves paths against the file that wrote them. Every problem becomes
//! a finding at its key path; nothing stops at the first. Performs no I/O.

mod ca;
mod certificate;
mod dcv;
mod defaults;
mod deploy;
mod dns;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use time::Duration;

use super::dns_name::dns_name;
use super::model::{
    AgeSettings, CaKind, CaSettings, Config, DnsSettings, KeyBackend, LocalCaSettings, PushAuth,
    SecretRef, StateSettings,
};
use super::report::{list, nearest, shown, Finding};
use super::scalar::{self, ServiceUrl};
use super::schema::{
    CertificateTable, ConfigFile, DcvField, DcvMethodName, DcvRuleTable, DefaultsTable,
    KeyAlgorithmName, KeyTable, KeysName, OnRemoveName, OneOrMany, RevocationReasonName,
    SecretField, StateTable, ValidityTable,
};
use super::tree::{Anchor, FileText, KeyPath};
use crate::ca::registry::CaTable;
use crate::deploy::registry::{DeployEntry, DeployTable};
use crate::dns::registry::DnsTable;
use crate::spec::{
    CertificateSpec, DcvMethod, DcvRule, DeployTarget, DnsName, KeySpec, Location, OnRemove,
    RenewBefore, RevocationReason, Validity,
};

/// The CA that exists without being configured.
const IMPLICIT_CA: &str = "local";

/// One parsed file, as the validator sees it.
pub(crate) struct FileInput<'a> {
    /// Index into the sorted files (and into the `FileText`s).
    pub(crate) index: usize,
    pub(crate) raw: &'a ConfigFile,
    /// Items (`certificate.web`, `state`, ...) with a type error: their values are incomplete,
    /// so they are not checked further.
    pub(crate) broken: BTreeSet<String>,
}

/// Check and merge every file. The findings include warnings.
pub(crate) fn validate(
    texts: &[FileText<'_>],
    inputs: &[FileInput<'_>],
    check_references: bool,
    on_state: &mut dyn FnMut(&StateSettings),
) -> (Config, Vec<Finding>) {
    let mut validator = Validator {
        texts,
        findings: Vec::new(),
        errors: 0,
        declared_cas: BTreeSet::new(),
        declared_dns: BTreeSet::new(),
        ca_kinds: BTreeMap::new(),
        check_references,
        named_deploy: BTreeMap::new(),
        named_serves: BTreeMap::new(),
        named_users: BTreeMap::new(),
        state_repo: PathBuf::new(),
        state_dir: PathBuf::new(),
    };
    let config = validator.run(inputs, on_state);
    (config, validator.findings)
}

/// A setting folded from a certificate, `[defaults]` and the built-in default.
#[derive(Debug, Clone, Copy)]
enum Setting<T> {
    Unset,
    /// Given but wrong; already reported.
    Invalid,
    Set(T),
}

impl<T: Copy> Setting<T> {
    fn checked(value: Option<Option<T>>) -> Self {
        match value {
            None => Setting::Unset,
            Some(None) => Setting::Invalid,
            Some(Some(value)) => Setting::Set(value),
        }
    }

    /// This setting, else `fallback`; `None` when the one that applies is invalid.
    fn or(self, fallback: Setting<T>, builtin: T) -> Option<T> {
        match (self, fallback) {
            (Setting::Set(value), _) => Some(value),
            (Setting::Invalid, _) => None,
            (Setting::Unset, Setting::Set(value)) => Some(value),
            (Setting::Unset, Setting::Invalid) => None,
            (Setting::Unset, Setting::Unset) => Some(builtin),
        }
    }

    fn is_given(&self) -> bool {
        !matches!(self, Setting::Unset)
    }
}

/// `[defaults]`, checked.
struct Defaults {
    ca: Option<String>,
    renew_before: Setting<RenewBefore>,
    key: Setting<KeySpec>,
    validity: Setting<Validity>,
    on_remove: Option<OnRemove>,
    thresholds: crate::plan::Thresholds,
}

impl Defaults {
    fn none() -> Self {
        Defaults {
            ca: None,
            renew_before: Setting::Unset,
            key: Setting::Unset,
            validity: Setting::Unset,
            on_remove: None,
            thresholds: crate::plan::Thresholds::default(),
        }
    }
}

/// Which file a value comes from, and the directory its relative paths start from.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'p> {
    pub(crate) file: usize,
    pub(crate) base: &'p Path,
}

/// The first definition of a named item, with the file that holds it.
struct Definition<'a, T> {
    file: usize,
    name: String,
    /// `None` when the item had type errors.
    table: Option<&'a T>,
}

/// Checks the files' model and records every finding; providers' `validate` functions use it.
pub(crate) struct Validator<'a> {
    texts: &'a [FileText<'a>],
    findings: Vec<Finding>,
    /// Errors among `findings` (warnings are not counted).
    errors: usize,
    declared_cas: BTreeSet<String>,
    declared_dns: BTreeSet<String>,
    /// The kind of every declared CA account, by name.
    ca_kinds: BTreeMap<String, &'static str>,
    check_references: bool,
    /// `[deploy.NAME]` targets that validated, by name; `None` for one that did not (its
    /// errors are reported once, where it is defined).
    named_deploy: BTreeMap<String, Option<crate::spec::DeployTarget>>,
    /// The `serves` patterns of the named targets that declare them (and validated), by name.
    named_serves: BTreeMap<String, Vec<DnsName>>,
    /// The certificate that first listed each named target, by the target's id: two may share
    /// an id only if `{certificate}` in `dir` tells their files apart.
    named_users: BTreeMap<String, String>,
    /// The state repository's work tree and certform's folder in it (absolute), where no
    /// private key may be written: whatever lands there can end up in a commit.
    state_repo: PathBuf,
    state_dir: PathBuf,
}

impl<'a> Validator<'a> {
    fn run(
        &mut self,
        inputs: &[FileInput<'a>],
        on_state: &mut dyn FnMut(&StateSettings),
    ) -> Config {
        let state_definition = self.single("state", inputs, |raw| raw.state.as_ref());
        let defaults_definition = self.single("defaults", inputs, |raw| raw.defaults.as_ref());
        let cas = self.named("ca", inputs, |raw| &raw.ca);
        let dns = self.named("dns", inputs, |raw| &raw.dns);
        let certificates = self.named("certificate", inputs, |raw| &raw.certificate);
        let named_deploy = self.named("deploy", inputs, |raw| &raw.deploy);
        self.declared_cas = cas
            .iter()
            .map(|definition| definition.name.clone())
            .collect();
        self.declared_dns = dns
            .iter()
            .map(|definition| definition.name.clone())
            .collect();
        self.ca_kinds = cas
            .iter()
            .filter_map(|d| Some((d.name.clone(), d.table?.kind_name())))
            .collect();

        let state = self.state(state_definition);
        self.state_repo = state.repo.clone();
        self.state_dir = scalar::normalize(&state.repo.join(&state.dir));
        if let (Some(keys_dir), Some((file, _))) = (&state.keys_dir, state_definition) {
            let path = KeyPath::root().key("state").key("keys_dir");
            self.outside_state(file, &path, keys_dir, true);
        }
        // The state's location is known before the certificates are checked (most of the
        // work at fleet size): the caller may start reading it.
        if self.errors == 0 && !inputs.iter().any(|input| input.broken.contains("state")) {
            on_state(&state);
        }

        let mut ca_settings = BTreeMap::new();
        for definition in &cas {
            if let Some(table) = definition.table {
                if let Some(settings) = self.ca(definition.file, &definition.name, table) {
                    ca_settings.insert(definition.name.clone(), settings);
                }
            }
        }

        let mut dns_settings = BTreeMap::new();
        for definition in &dns {
            if let Some(table) = definition.table {
                if let Some(settings) = self.dns(definition.file, &definition.name, table) {
                    dns_settings.insert(definition.name.clone(), settings);
                }
            }
        }

        for definition in &named_deploy {
            let target = definition.table.and_then(|table| {
                self.named_deploy_target(definition.file, &definition.name, table)
            });
            let serves = definition.table.and_then(|table| table.serves());
            if let Some(patterns) = serves {
                let patterns = self.serves(definition.file, &definition.name, patterns);
                if target.is_some() {
                    self.named_serves.insert(definition.name.clone(), patterns);
                }
            }
            self.named_deploy.insert(definition.name.clone(), target);
        }

        let defaults = match defaults_definition {
            Some((file, Some(table))) => self.defaults(file, table),
            _ => Defaults::none(),
        };

        let mut specs = Vec::with_capacity(certificates.len());
        for definition in &certificates {
            if let Some(table) = definition.table {
                if let Some(spec) =
                    self.certificate(definition.file, &definition.name, table, &defaults)
                {
                    specs.push((definition.name.clone(), spec));
                }
            }
        }
        // Names are unique (`named` reports the others); built in one go, not searched for
        // one by one.
        let specs: BTreeMap<String, CertificateSpec> = specs.into_iter().collect();

        let wants_implicit = self.declared_cas.is_empty()
            || defaults.ca.as_deref() == Some(IMPLICIT_CA)
            || specs.values().any(|spec| spec.ca == IMPLICIT_CA);
        if wants_implicit && !self.declared_cas.contains(IMPLICIT_CA) {
            ca_settings.insert(
                IMPLICIT_CA.to_string(),
                CaSettings {
                    name: IMPLICIT_CA.to_string(),
                    kind: CaKind::Local(LocalCaSettings::implicit(IMPLICIT_CA)),
                    inventory: crate::ca_inventory::Schedule::default(),
                    max_orders_per_run: None,
                    location: self.file_start(0),
                },
            );
        }

        Config {
            files: self
                .texts
                .iter()
                .map(|text| text.source.path.clone())
                .collect(),
            state,
            cas: ca_settings,
            dns: dns_settings,
            certificates: specs,
            thresholds: defaults.thresholds,
            warnings: Vec::new(),
        }
    }

    // ----- findings and locations -------------------------------------------------------------

    pub(crate) fn error(&mut self, file: usize, path: &KeyPath, anchor: Anchor, message: String) {
        self.error_with_hint(file, path, anchor, message, None);
    }

    pub(crate) fn error_with_hint(
        &mut self,
        file: usize,
        path: &KeyPath,
        anchor: Anchor,
        message: String,
        hint: Option<String>,
    ) {
        self.errors += 1;
        self.findings
            .push(Finding::error(file, path, anchor, message).with_hint(hint));
    }

    pub(crate) fn warning(&mut self, file: usize, path: &KeyPath, message: String) {
        self.findings
            .push(Finding::error(file, path, Anchor::Value, message).into_warning());
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors
    }

    fn location(&self, file: usize, path: &KeyPath) -> Location {
        let Some(text) = self.texts.get(file) else {
            return Location::default();
        };
        let (line, column) = text.position(&super::report::Place::Path {
            path: path.clone(),
            anchor: Anchor::Value,
        });
        Location {
            file: text.source.path.clone(),
            line,
            column,
        }
    }

    fn file_start(&self, file: usize) -> Location {
        Location {
            file: self
                .texts
                .get(file)
                .map(|text| text.source.path.clone())
                .unwrap_or_default(),
            line: 1,
            column: 1,
        }
    }

    fn file_name(&self, file: usize) -> String {
        self.texts
            .get(file)
            .map(|text| text.source.path.display().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn base_dir(&self, file: usize) -> PathBuf {
        self.texts
            .get(file)
            .and_then(|text| text.source.path.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    // ----- merging ----------------------------------------------------------------------------

    /// `[state]` or `[defaults]`: at most one file may have it.
    fn single<T>(
        &mut self,
        section: &str,
        inputs: &[FileInput<'a>],
        pick: impl Fn(&'a ConfigFile) -> Option<&'a T>,
    ) -> Option<(usize, Option<&'a T>)> {
        let mut first: Option<(usize, Option<&'a T>)> = None;
        for input in inputs {
            let present = self
                .texts
                .get(input.index)
                .and_then(|text| text.root.as_ref().and_then(|root| root.entry(section)));
            if present.is_none() {
                continue;
            }
            let path = KeyPath::root().key(section);
            match first {
                Some((first_file, _)) => {
                    let message = format!(
                        "`[{section}]` is defined twice: in `{}` and in `{}`",
                        self.file_name(first_file),
                        self.file_name(input.index)
                    );
                    self.error_with_hint(
                        input.index,
                        &path,
                        Anchor::Value,
                        message,
                        Some(format!("keep one `[{section}]` and remove the other")),
                    );
                }
                None => {
                    let table = if input.broken.contains(section) {
                        None
                    } else {
                        pick(input.raw)
                    };
                    first = Some((input.index, table));
                }
            }
        }
        first
    }

    /// `[ca.NAME]`, `[dns.NAME]`, `[certificate.NAME]`: each name once across files, well formed.
    fn named<T>(
        &mut self,
        section: &str,
        inputs: &[FileInput<'a>],
        pick: impl Fn(&'a ConfigFile) -> &'a BTreeMap<String, T>,
    ) -> Vec<Definition<'a, T>> {
        let what = match section {
            "ca" => "CA",
            "dns" => "DNS provider",
            "deploy" => "deploy target",
            _ => "certificate",
        };
        let mut definitions: Vec<Definition<'a, T>> = Vec::new();
        // Name to the file of its first definition: one lookup per name, whatever the count.
        let mut first_files: BTreeMap<String, usize> = BTreeMap::new();
        for input in inputs {
            let Some(section_node) = self
                .texts
                .get(input.index)
                .and_then(|text| text.root.as_ref().and_then(|root| root.entry(section)))
            else {
                continue;
            };
            let names: Vec<String> = section_node
                .value
                .entries()
                .iter()
                .map(|entry| entry.key.to_string())
                .collect();
            for name in names {
                let path = KeyPath::root().key(section).key(&name);
                if let Some(first_file) = first_files.get(&name).copied() {
                    let message = format!(
                        "{what} `{}` is defined twice: in `{}` and in `{}`",
                        shown(&name),
                        self.file_name(first_file),
                        self.file_name(input.index)
                    );
                    self.error_with_hint(
                        input.index,
                        &path,
                        Anchor::Value,
                        message,
                        Some("names must be unique across all configuration files".to_string()),
                    );
                    continue;
                }
                if !scalar::is_item_name(&name) {
                    self.error_with_hint(
                        input.index,
                        &path,
                        Anchor::Key,
                        format!(
                            "invalid {what} name `{}`: names must match `[a-z0-9][a-z0-9_-]{{0,62}}`",
                            shown(&name)
                        ),
                        Some("names are used as file names; use lowercase letters, digits, `-` and `_`".to_string()),
                    );
                }
                first_files.insert(name.clone(), input.index);
                let broken = !scalar::is_item_name(&name)
                    || (!input.broken.is_empty()
                        && input.broken.contains(&format!("{section}.{name}")));
                definitions.push(Definition {
                    file: input.index,
                    table: if broken {
                        None
                    } else {
                        pick(input.raw).get(&name)
                    },
                    name,
                });
            }
        }
        definitions
    }

    /// Point the last finding's key at `key` (for "missing key" findings placed on the table).
    pub(crate) fn findings_last_key(&mut self, key: KeyPath) {
        if let Some(last) = self.findings.last_mut() {
            last.key = key.to_string();
        }
    }

    /// A secret reference; a plaintext secret is refused without ever being shown.
    pub(crate) fn secret(
        &mut self,
        origin: Origin<'_>,
        path: &KeyPath,
        secret: &SecretField,
    ) -> Option<SecretRef> {
        let file = origin.file;
        let reference = match secret {
            SecretField::Plaintext => {
                self.error(
                    file,
                    path,
                    Anchor::Value,
                    "plaintext secret in config: use `{ env = \"VAR\" }` or `{ file = \"path\" }`"
                        .to_string(),
                );
                return None;
            }
            SecretField::Reference(reference) => reference,
        };
        match (&reference.env, &reference.file) {
            (Some(variable), None) => {
                let valid = !variable.is_empty()
                    && variable
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !variable.starts_with(|c: char| c.is_ascii_digit());
                if valid {
                    Some(SecretRef::Env(variable.clone()))
                } else {
                    self.error(
                        file,
                        &path.key("env"),
                        Anchor::Value,
                        format!("invalid environment variable name `{}`", shown(variable)),
                    );
                    None
                }
            }
            (None, Some(secret_file)) => {
                if secret_file.is_empty() {
                    self.error(
                        file,
                        &path.key("file"),
                        Anchor::Value,
                        "`file` must not be empty".to_string(),
                    );
                    None
                } else {
                    Some(SecretRef::File(scalar::absolute(origin.base, secret_file)))
                }
            }
            (Some(_), Some(_)) => {
                self.error(
                    file,
                    path,
                    Anchor::Value,
                    "a secret takes one of `env` or `file`, not both".to_string(),
                );
                None
            }
            (None, None) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    "a secret needs `env` or `file`".to_string(),
                    Some("use `{ env = \"VAR\" }` or `{ file = \"path\" }`".to_string()),
                );
                None
            }
        }
    }
}

fn on_remove(name: OnRemoveName) -> OnRemove {
    match name {
        OnRemoveName::Forget => OnRemove::Forget,
        OnRemoveName::Cancel => OnRemove::Cancel,
        OnRemoveName::Revoke => OnRemove::Revoke,
    }
}

fn revocation_reason(name: RevocationReasonName) -> RevocationReason {
    match name {
        RevocationReasonName::Unspecified => RevocationReason::Unspecified,
        RevocationReasonName::KeyCompromise => RevocationReason::KeyCompromise,
        RevocationReasonName::AffiliationChanged => RevocationReason::AffiliationChanged,
        RevocationReasonName::Superseded => RevocationReason::Superseded,
        RevocationReasonName::CessationOfOperation => RevocationReason::CessationOfOperation,
    }
}

/// `address:port` or `:port`.
fn check_listen(listen: &str) -> Result<(), String> {
    let Some((_, port)) = listen.rsplit_once(':') else {
        return Err("no port".to_string());
    };
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(format!("invalid port `{}`", shown(port))),
    }
}
