//! Semantic validation: from the files' serde model (`schema`) to the validated `Config`.
//!
//! Merges the files (each item defined once), checks every rule that types cannot express
//! (names, references, key sizes, durations, lifetimes, DCV coverage, deploy targets, secrets),
//! folds in defaults and resolves paths against the file that wrote them. Every problem becomes
//! a finding at its key path; nothing stops at the first. Performs no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use time::Duration;

use super::dns_name::dns_name;
use super::model::{
    AcmeCaSettings, CaKind, CaSettings, Config, DigicertCaSettings, DnsKind, DnsSettings,
    EabSettings, LocalCaSettings, Rfc2136Settings, SecretRef, StateSettings, TsigAlgorithm,
    TsigKey, ZoneKey,
};
use super::report::{list, nearest, shown, Finding};
use super::scalar::{self, ServiceUrl};
use super::schema::{
    CaKindName, CaModeName, CaTable, CertificateTable, ConfigFile, DcvField, DcvMethodName,
    DcvRuleTable, DefaultsTable, DeployKindName, DeployTable, DnsKindName, DnsTable,
    KeyAlgorithmName, KeyTable, OnRemoveName, PaymentMethodName, RevocationReasonName, SecretField,
    SignatureHashName, StateTable, TsigAlgorithmName, ValidityTable, ZoneTable,
};
use super::tree::{Anchor, FileText, KeyPath};
use crate::spec::{
    CertificateSpec, DcvMethod, DcvRule, DeployTarget, DnsName, FilesTarget, KeySpec, Location,
    OnRemove, RenewBefore, RevocationReason, Validity,
};

/// The CA that exists without being configured.
const IMPLICIT_CA: &str = "local";

/// CertCentral's Services API v2 (US instance).
const DIGICERT_URL: &str = "https://www.digicert.com/services/v2/";

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
) -> (Config, Vec<Finding>) {
    let mut validator = Validator {
        texts,
        findings: Vec::new(),
        errors: 0,
        declared_cas: BTreeSet::new(),
        declared_dns: BTreeSet::new(),
        digicert_cas: BTreeSet::new(),
        check_references,
        state_repo: PathBuf::new(),
        state_dir: PathBuf::new(),
    };
    let config = validator.run(inputs);
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
}

impl Defaults {
    fn none() -> Self {
        Defaults {
            ca: None,
            renew_before: Setting::Unset,
            key: Setting::Unset,
            validity: Setting::Unset,
            on_remove: None,
        }
    }
}

/// Which file a value comes from, and the directory its relative paths start from.
#[derive(Clone, Copy)]
struct Origin<'p> {
    file: usize,
    base: &'p Path,
}

/// The first definition of a named item, with the file that holds it.
struct Definition<'a, T> {
    file: usize,
    name: String,
    /// `None` when the item had type errors.
    table: Option<&'a T>,
}

struct Validator<'a> {
    texts: &'a [FileText<'a>],
    findings: Vec<Finding>,
    /// Errors among `findings` (warnings are not counted).
    errors: usize,
    declared_cas: BTreeSet<String>,
    declared_dns: BTreeSet<String>,
    /// Names of the `kind = "digicert"` accounts (the only ones taking DigiCert order fields).
    digicert_cas: BTreeSet<String>,
    check_references: bool,
    /// The state repository's work tree and certform's folder in it (absolute), where no
    /// private key may be written: whatever lands there can end up in a commit.
    state_repo: PathBuf,
    state_dir: PathBuf,
}

impl<'a> Validator<'a> {
    fn run(&mut self, inputs: &[FileInput<'a>]) -> Config {
        let state_definition = self.single("state", inputs, |raw| raw.state.as_ref());
        let defaults_definition = self.single("defaults", inputs, |raw| raw.defaults.as_ref());
        let cas = self.named("ca", inputs, |raw| &raw.ca);
        let dns = self.named("dns", inputs, |raw| &raw.dns);
        let certificates = self.named("certificate", inputs, |raw| &raw.certificate);
        self.declared_cas = cas
            .iter()
            .map(|definition| definition.name.clone())
            .collect();
        self.declared_dns = dns
            .iter()
            .map(|definition| definition.name.clone())
            .collect();
        self.digicert_cas = cas
            .iter()
            .filter(|d| d.table.is_some_and(|t| t.kind == CaKindName::Digicert))
            .map(|definition| definition.name.clone())
            .collect();

        let state = self.state(state_definition);
        self.state_repo = state.repo.clone();
        self.state_dir = scalar::normalize(&state.repo.join(&state.dir));
        if let (Some(keys_dir), Some((file, _))) = (&state.keys_dir, state_definition) {
            let path = KeyPath::root().key("state").key("keys_dir");
            self.outside_state(file, &path, keys_dir, true);
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

        let defaults = match defaults_definition {
            Some((file, Some(table))) => self.defaults(file, table),
            _ => Defaults::none(),
        };

        let mut specs = BTreeMap::new();
        for definition in &certificates {
            if let Some(table) = definition.table {
                if let Some(spec) =
                    self.certificate(definition.file, &definition.name, table, &defaults)
                {
                    specs.insert(definition.name.clone(), spec);
                }
            }
        }

        let wants_implicit = self.declared_cas.is_empty()
            || defaults.ca.as_deref() == Some(IMPLICIT_CA)
            || specs.values().any(|spec| spec.ca == IMPLICIT_CA);
        if wants_implicit && !self.declared_cas.contains(IMPLICIT_CA) {
            ca_settings.insert(
                IMPLICIT_CA.to_string(),
                CaSettings {
                    name: IMPLICIT_CA.to_string(),
                    kind: CaKind::Local(LocalCaSettings {
                        root_common_name: default_root_common_name(IMPLICIT_CA),
                    }),
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
            warnings: Vec::new(),
        }
    }

    // ----- findings and locations -------------------------------------------------------------

    fn error(&mut self, file: usize, path: &KeyPath, anchor: Anchor, message: String) {
        self.error_with_hint(file, path, anchor, message, None);
    }

    fn error_with_hint(
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

    fn warning(&mut self, file: usize, path: &KeyPath, message: String) {
        self.findings
            .push(Finding::error(file, path, Anchor::Value, message).into_warning());
    }

    fn error_count(&self) -> usize {
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

    fn base_dir(&self, file: usize) -> PathBuf {
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
                .map(|entry| entry.key.clone())
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
                let broken = input.broken.contains(&format!("{section}.{name}"))
                    || !scalar::is_item_name(&name);
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

    // ----- [state] ----------------------------------------------------------------------------

    fn state(&mut self, definition: Option<(usize, Option<&StateTable>)>) -> StateSettings {
        let default = |validator: &Self, file: usize| StateSettings {
            repo: scalar::absolute(&validator.base_dir(file), "state"),
            dir: PathBuf::from("."),
            keys_dir: None,
            push: false,
            remote: "origin".to_string(),
            location: validator.file_start(file),
        };
        let (file, table) = match definition {
            Some((file, Some(table))) => (file, table),
            Some((file, None)) => return default(self, file),
            None => return default(self, 0),
        };
        let base = self.base_dir(file);
        let path = KeyPath::root().key("state");
        let mut settings = default(self, file);
        settings.location = self.location(file, &path);

        if let Some(repo) = &table.repo {
            if repo.is_empty() {
                self.error(
                    file,
                    &path.key("repo"),
                    Anchor::Value,
                    "`repo` must not be empty".to_string(),
                );
            } else {
                settings.repo = scalar::absolute(&base, repo);
            }
        }
        if let Some(dir) = &table.dir {
            let dir_path = path.key("dir");
            let as_path = Path::new(dir);
            if dir.is_empty() {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    "`dir` must not be empty".to_string(),
                    Some("use `.` for the root of the repository".to_string()),
                );
            } else if as_path.is_absolute() || dir.starts_with('/') || dir.starts_with('\\') {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    format!(
                        "`dir` must be relative to the state repository, `{}` is absolute",
                        shown(dir)
                    ),
                    Some("`dir` names a sub-directory inside `repo`".to_string()),
                );
            } else if as_path
                .components()
                .any(|component| component == Component::ParentDir)
            {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    format!("`dir` must not contain `..`, found `{}`", shown(dir)),
                    Some("`dir` names a sub-directory inside `repo`".to_string()),
                );
            } else {
                settings.dir = scalar::normalize(as_path);
            }
        }
        if let Some(keys_dir) = &table.keys_dir {
            if keys_dir.is_empty() {
                self.error(
                    file,
                    &path.key("keys_dir"),
                    Anchor::Value,
                    "`keys_dir` must not be empty".to_string(),
                );
            } else {
                settings.keys_dir = Some(scalar::absolute(&base, keys_dir));
            }
        }
        if let Some(push) = table.push {
            settings.push = push;
        }
        if let Some(remote) = &table.remote {
            if remote.is_empty() {
                self.error(
                    file,
                    &path.key("remote"),
                    Anchor::Value,
                    "`remote` must not be empty".to_string(),
                );
            } else {
                settings.remote = remote.clone();
            }
        }
        settings
    }

    // ----- [ca.NAME] --------------------------------------------------------------------------

    fn ca(&mut self, file: usize, name: &str, table: &CaTable) -> Option<CaSettings> {
        let path = KeyPath::root().key("ca").key(name);
        let kind_name = match table.kind {
            CaKindName::Local => "local",
            CaKindName::Acme => "acme",
            CaKindName::Digicert => "digicert",
        };
        let digicert_keys = [
            ("api_key", table.api_key.is_some()),
            ("url", table.url.is_some()),
            ("proxy", table.proxy.is_some()),
            ("mode", table.mode.is_some()),
        ];
        // Keys that belong to another kind.
        let foreign: Vec<&str> = match table.kind {
            CaKindName::Local => [
                ("directory", table.directory.is_some()),
                ("contact", table.contact.is_some()),
                ("ca_bundle", table.ca_bundle.is_some()),
                ("eab", table.eab.is_some()),
                ("profile", table.profile.is_some()),
                ("preferred_chain", table.preferred_chain.is_some()),
            ]
            .iter()
            .chain(digicert_keys.iter())
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect(),
            CaKindName::Acme => [("root_common_name", table.root_common_name.is_some())]
                .iter()
                .chain(digicert_keys.iter())
                .filter(|(_, given)| *given)
                .map(|(key, _)| *key)
                .collect(),
            CaKindName::Digicert => [
                ("root_common_name", table.root_common_name.is_some()),
                ("directory", table.directory.is_some()),
                ("contact", table.contact.is_some()),
                ("ca_bundle", table.ca_bundle.is_some()),
                ("eab", table.eab.is_some()),
                ("profile", table.profile.is_some()),
                ("preferred_chain", table.preferred_chain.is_some()),
            ]
            .iter()
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect(),
        };
        for key in &foreign {
            self.error(
                file,
                &path.key(key),
                Anchor::Key,
                format!("`{key}` does not apply to a CA of `kind = \"{kind_name}\"`"),
            );
        }
        if !foreign.is_empty() {
            return None;
        }
        match table.kind {
            CaKindName::Local => {
                let root_common_name = match &table.root_common_name {
                    Some(common_name) if common_name.trim().is_empty() => {
                        self.error(
                            file,
                            &path.key("root_common_name"),
                            Anchor::Value,
                            "`root_common_name` must not be empty".to_string(),
                        );
                        return None;
                    }
                    Some(common_name) => common_name.clone(),
                    None => default_root_common_name(name),
                };
                Some(CaSettings {
                    name: name.to_string(),
                    kind: CaKind::Local(LocalCaSettings { root_common_name }),
                    location: self.location(file, &path),
                })
            }
            CaKindName::Acme => self.acme(file, name, &path, table),
            CaKindName::Digicert => self.digicert(file, name, &path, table),
        }
    }

    fn digicert(
        &mut self,
        file: usize,
        name: &str,
        path: &KeyPath,
        table: &CaTable,
    ) -> Option<CaSettings> {
        let before = self.error_count();
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        let api_key = match &table.api_key {
            None => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Key,
                    format!("missing `api_key` for the DigiCert account `{name}`"),
                    Some("add `api_key = { env = \"DIGICERT_API_KEY\" }`".to_string()),
                );
                None
            }
            Some(secret) => self.secret(origin, &path.key("api_key"), secret),
        };
        let url = match &table.url {
            None => DIGICERT_URL.to_string(),
            Some(url) => match self.service_url(file, &path.key("url"), "url", url) {
                Some(url) if url.ends_with('/') => url,
                Some(url) => format!("{url}/"),
                None => String::new(),
            },
        };
        if let Some(proxy) = &table.proxy {
            // `http://host:port`: a plain HTTP proxy reached with CONNECT; no credentials in
            // config (they would be a plaintext secret).
            let valid = proxy
                .strip_prefix("http://")
                .map(|rest| rest.trim_end_matches('/'))
                .is_some_and(|authority| {
                    !authority.contains('@')
                        && !authority.contains('/')
                        && authority.rsplit_once(':').is_some_and(|(host, port)| {
                            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                        })
                });
            if !valid {
                self.error_with_hint(
                    file,
                    &path.key("proxy"),
                    Anchor::Value,
                    "`proxy` must be `http://host:port` (an HTTP proxy reached with CONNECT)"
                        .to_string(),
                    Some("credentials in the proxy URL are not supported".to_string()),
                );
            }
        }
        if self.error_count() > before {
            return None;
        }
        Some(CaSettings {
            name: name.to_string(),
            kind: CaKind::Digicert(DigicertCaSettings {
                api_key: api_key?,
                url,
                proxy: table.proxy.clone(),
                read_only: table.mode == Some(CaModeName::ReadOnly),
            }),
            location: self.location(file, path),
        })
    }

    fn acme(
        &mut self,
        file: usize,
        name: &str,
        path: &KeyPath,
        table: &CaTable,
    ) -> Option<CaSettings> {
        let before = self.error_count();
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        let directory = match &table.directory {
            None => {
                self.error(
                    file,
                    path,
                    Anchor::Key,
                    format!("missing `directory` for the ACME account `{name}`"),
                );
                String::new()
            }
            Some(url) => self
                .service_url(file, &path.key("directory"), "directory", url)
                .unwrap_or_default(),
        };
        let mut contact = Vec::new();
        for (index, address) in table.contact.iter().flatten().enumerate() {
            let address = address.strip_prefix("mailto:").unwrap_or(address);
            let valid = address
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                && !address.contains(char::is_whitespace);
            if valid {
                contact.push(address.to_string());
            } else {
                self.error(
                    file,
                    &path.key("contact").index(index),
                    Anchor::Value,
                    "`contact` entries must be email addresses".to_string(),
                );
            }
        }
        let ca_bundle = table
            .ca_bundle
            .as_ref()
            .map(|bundle| scalar::absolute(&base, bundle));
        let eab = match &table.eab {
            None => None,
            Some(eab) => {
                if eab.kid.trim().is_empty() {
                    self.error(
                        file,
                        &path.key("eab").key("kid"),
                        Anchor::Value,
                        "`eab.kid` must not be empty".to_string(),
                    );
                }
                self.secret(origin, &path.key("eab").key("hmac"), &eab.hmac)
                    .map(|hmac| EabSettings {
                        kid: eab.kid.clone(),
                        hmac,
                    })
            }
        };
        for (key, value) in [
            ("profile", &table.profile),
            ("preferred_chain", &table.preferred_chain),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                self.error(
                    file,
                    &path.key(key),
                    Anchor::Value,
                    format!("`{key}` must not be empty"),
                );
            }
        }
        if self.error_count() > before {
            return None;
        }
        Some(CaSettings {
            name: name.to_string(),
            kind: CaKind::Acme(AcmeCaSettings {
                directory,
                contact,
                ca_bundle,
                eab,
                profile: table.profile.clone(),
                preferred_chain: table.preferred_chain.clone(),
            }),
            location: self.location(file, path),
        })
    }

    /// A URL credentials are sent to, checked by the one rule every such field shares
    /// (`ServiceUrl`); reported at `path` when it breaks it.
    fn service_url(
        &mut self,
        file: usize,
        path: &KeyPath,
        field: &str,
        url: &ServiceUrl,
    ) -> Option<String> {
        match url.checked(field) {
            Ok(url) => Some(url),
            Err(message) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    message,
                    Some(scalar::SERVICE_URL_HINT.to_string()),
                );
                None
            }
        }
    }

    /// Whether `name` is a CA; reports an undefined one at `path`.
    fn check_ca(&mut self, file: usize, path: &KeyPath, name: &str) -> bool {
        if !self.check_references || name == IMPLICIT_CA || self.declared_cas.contains(name) {
            return true;
        }
        let mut defined: Vec<&str> = self.declared_cas.iter().map(String::as_str).collect();
        if !defined.contains(&IMPLICIT_CA) {
            defined.insert(0, IMPLICIT_CA);
        }
        let near = nearest(name, defined.iter().copied());
        let hint = match near {
            Some(near) => format!("did you mean `{near}`? defined CAs: {}", list(&defined)),
            None => format!(
                "defined CAs: {} (`local` is the built-in CA)",
                list(&defined)
            ),
        };
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!("undefined CA `{}`", shown(name)),
            Some(hint),
        );
        false
    }

    // ----- [dns.NAME] -------------------------------------------------------------------------

    fn dns(&mut self, file: usize, name: &str, table: &DnsTable) -> Option<DnsSettings> {
        let before = self.error_count();
        let path = KeyPath::root().key("dns").key(name);
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        match table.kind {
            DnsKindName::Rfc2136 => {}
        }
        if let Err(reason) = check_server(&table.server) {
            self.error_with_hint(
                file,
                &path.key("server"),
                Anchor::Value,
                format!("invalid `server` `{}`: {reason}", shown(&table.server)),
                Some("write `host:port`, like `127.0.0.1:53`".to_string()),
            );
        }

        let any_global =
            table.key_name.is_some() || table.secret.is_some() || table.algorithm.is_some();
        let mut key = None;
        if any_global {
            if table.key_name.is_none() {
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    "missing required key `key_name`: a TSIG key needs `key_name` and `secret`"
                        .to_string(),
                    None,
                );
                self.findings_last_key(path.key("key_name"));
            }
            if table.secret.is_none() {
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    "missing required key `secret`: a TSIG key needs `key_name` and `secret`"
                        .to_string(),
                    Some(
                        "use `secret = { env = \"VAR\" }` or `secret = { file = \"path\" }`"
                            .to_string(),
                    ),
                );
                self.findings_last_key(path.key("secret"));
            }
            let key_name = table
                .key_name
                .as_deref()
                .and_then(|key_name| self.key_name(file, &path.key("key_name"), key_name));
            let secret = table
                .secret
                .as_ref()
                .and_then(|secret| self.secret(origin, &path.key("secret"), secret));
            if let (Some(key_name), Some(secret)) = (key_name, secret) {
                key = Some(TsigKey {
                    key_name,
                    algorithm: tsig_algorithm(table.algorithm),
                    secret,
                });
            }
        }

        let mut zones = Vec::new();
        let mut seen_zones: BTreeMap<String, usize> = BTreeMap::new();
        for (index, zone) in table.zones.iter().flatten().enumerate() {
            let zone_path = path.key("zones").index(index);
            if let Some(zone_key) = self.zone(origin, &zone_path, zone) {
                if let Some(first) = seen_zones.get(&zone_key.zone) {
                    self.error(
                        file,
                        &zone_path.key("zone"),
                        Anchor::Value,
                        format!(
                            "zone `{}` is already listed in `zones[{first}]`",
                            zone_key.zone
                        ),
                    );
                    continue;
                }
                seen_zones.insert(zone_key.zone.clone(), index);
                zones.push(zone_key);
            }
        }
        if !any_global && table.zones.as_ref().is_none_or(Vec::is_empty) {
            self.error_with_hint(
                file,
                &path,
                Anchor::Value,
                format!("DNS provider `{name}` has no TSIG key"),
                Some(
                    "set `key_name`, `algorithm` and `secret`, or per-zone keys in `zones`"
                        .to_string(),
                ),
            );
        }
        if self.error_count() > before {
            return None;
        }
        Some(DnsSettings {
            name: name.to_string(),
            kind: DnsKind::Rfc2136(Rfc2136Settings {
                server: table.server.clone(),
                key,
                zones,
            }),
            location: self.location(file, &path),
        })
    }

    /// Point the last finding's key at `key` (for "missing key" findings placed on the table).
    fn findings_last_key(&mut self, key: KeyPath) {
        if let Some(last) = self.findings.last_mut() {
            last.key = key.to_string();
        }
    }

    fn zone(&mut self, origin: Origin<'_>, path: &KeyPath, zone: &ZoneTable) -> Option<ZoneKey> {
        let file = origin.file;
        let written = zone.zone.strip_suffix('.').unwrap_or(&zone.zone);
        let name = match dns_name(written) {
            Ok(name) if name.is_wildcard() => {
                self.error(
                    file,
                    &path.key("zone"),
                    Anchor::Value,
                    format!("zone `{}` must not be a wildcard", shown(&zone.zone)),
                );
                None
            }
            Ok(name) => Some(name),
            Err(message) => {
                self.error(file, &path.key("zone"), Anchor::Value, message);
                None
            }
        };
        let key_name = self.key_name(file, &path.key("key_name"), &zone.key_name);
        let secret = self.secret(origin, &path.key("secret"), &zone.secret);
        Some(ZoneKey {
            zone: name?.to_string(),
            key: TsigKey {
                key_name: key_name?,
                algorithm: tsig_algorithm(zone.algorithm),
                secret: secret?,
            },
        })
    }

    fn key_name(&mut self, file: usize, path: &KeyPath, key_name: &str) -> Option<String> {
        if key_name.is_empty()
            || key_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.error(
                file,
                path,
                Anchor::Value,
                "`key_name` must be a non-empty name without spaces".to_string(),
            );
            return None;
        }
        Some(key_name.to_string())
    }

    /// A secret reference; a plaintext secret is refused without ever being shown.
    fn secret(
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

    // ----- [defaults] -------------------------------------------------------------------------

    fn defaults(&mut self, file: usize, table: &DefaultsTable) -> Defaults {
        let path = KeyPath::root().key("defaults");
        if let Some(ca) = &table.ca {
            self.check_ca(file, &path.key("ca"), ca);
        }
        let renew_before = Setting::checked(
            table
                .renew_before
                .as_deref()
                .map(|text| self.renew_before(file, &path.key("renew_before"), text)),
        );
        let key = Setting::checked(
            table
                .key
                .as_ref()
                .map(|key| self.key(file, &path.key("key"), key)),
        );
        let validity = Setting::checked(
            table
                .validity
                .as_ref()
                .map(|validity| self.validity(file, &path.key("validity"), validity)),
        );
        if let (Setting::Set(renew), Setting::Set(lifetime)) = (renew_before, validity) {
            self.check_lifetime(
                file,
                &path.key("renew_before"),
                renew,
                lifetime,
                "`[defaults]`",
            );
        }
        Defaults {
            ca: table.ca.clone(),
            renew_before,
            key,
            validity,
            on_remove: table.on_remove.map(on_remove),
        }
    }

    fn renew_before(&mut self, file: usize, path: &KeyPath, text: &str) -> Option<RenewBefore> {
        match scalar::renew_before(text) {
            Ok(renew_before) => Some(renew_before),
            Err(message) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    message,
                    Some(
                        "write a duration like `30d` or a share of the lifetime like `33%`"
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn key(&mut self, file: usize, path: &KeyPath, table: &KeyTable) -> Option<KeySpec> {
        let size_path = path.key("size");
        match (table.algorithm, table.size) {
            (KeyAlgorithmName::Rsa, None) => Some(KeySpec::Rsa(2048)),
            (KeyAlgorithmName::Rsa, Some(size @ (2048 | 3072 | 4096))) => {
                u32::try_from(size).ok().map(KeySpec::Rsa)
            }
            (KeyAlgorithmName::Rsa, Some(size)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    format!("unsupported RSA key size {size}"),
                    Some("RSA keys are 2048, 3072 or 4096 bits".to_string()),
                );
                None
            }
            (KeyAlgorithmName::Ecdsa, None) => Some(KeySpec::Ecdsa(256)),
            (KeyAlgorithmName::Ecdsa, Some(size @ (256 | 384))) => {
                u32::try_from(size).ok().map(KeySpec::Ecdsa)
            }
            (KeyAlgorithmName::Ecdsa, Some(size)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    format!("unsupported ECDSA key size {size}"),
                    Some("ECDSA keys are 256 (P-256) or 384 (P-384) bits".to_string()),
                );
                None
            }
            (KeyAlgorithmName::Ed25519, None) => Some(KeySpec::Ed25519),
            (KeyAlgorithmName::Ed25519, Some(_)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    "`ed25519` keys have a fixed size and take no `size`".to_string(),
                    Some("remove `size`".to_string()),
                );
                None
            }
        }
    }

    fn validity(&mut self, file: usize, path: &KeyPath, table: &ValidityTable) -> Option<Validity> {
        let before = self.error_count();
        let until = table
            .until
            .as_deref()
            .and_then(|text| match scalar::date(text) {
                Ok(date) => Some(Validity::Until(date)),
                Err(message) => {
                    self.error(file, &path.key("until"), Anchor::Value, message);
                    None
                }
            });
        let days = table
            .days
            .and_then(|days| self.whole(file, &path.key("days"), "days", days, 36_500))
            .map(Validity::Days);
        let years = table
            .years
            .and_then(|years| self.whole(file, &path.key("years"), "years", years, 100))
            .map(Validity::Years);
        let given: Vec<&str> = [
            table.until.as_ref().map(|_| "until"),
            table.days.map(|_| "days"),
            table.years.map(|_| "years"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.is_empty() {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                "`validity` is empty".to_string(),
                Some("set one of `days`, `years` or `until`".to_string()),
            );
            return None;
        }
        if given.len() > 1 {
            self.warning(
                file,
                path,
                format!(
                    "several lifetimes given ({}): `{}` applies (`until` wins over `days`, `days` over `years`)",
                    list(&given),
                    given[0]
                ),
            );
        }
        if self.error_count() > before {
            return None;
        }
        until.or(days).or(years)
    }

    fn whole(
        &mut self,
        file: usize,
        path: &KeyPath,
        what: &str,
        value: i64,
        max: u32,
    ) -> Option<u32> {
        if value <= 0 {
            self.error(
                file,
                path,
                Anchor::Value,
                format!("`{what}` must be positive, found {value}"),
            );
            return None;
        }
        match u32::try_from(value) {
            Ok(value) if value <= max => Some(value),
            _ => {
                self.error(
                    file,
                    path,
                    Anchor::Value,
                    format!("`{what}` must be at most {max}, found {value}"),
                );
                None
            }
        }
    }

    /// `renew_before` must be shorter than the lifetime, or every run would renew.
    fn check_lifetime(
        &mut self,
        file: usize,
        path: &KeyPath,
        renew_before: RenewBefore,
        validity: Validity,
        whose: &str,
    ) {
        let lifetime_days = match validity {
            Validity::Days(days) => i64::from(days),
            Validity::Years(years) => 365 * i64::from(years),
            Validity::Until(_) => return,
        };
        let RenewBefore::Duration(duration) = renew_before else {
            return;
        };
        if duration >= Duration::days(lifetime_days) {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                format!(
                    "`renew_before` ({}) is not shorter than the lifetime ({}) of {whose}: it would renew on every run",
                    renew_before.describe(),
                    validity.describe()
                ),
                Some("use a shorter `renew_before` or a share like `33%`".to_string()),
            );
        }
    }

    // ----- [certificate.NAME] -----------------------------------------------------------------

    fn certificate(
        &mut self,
        file: usize,
        name: &str,
        table: &CertificateTable,
        defaults: &Defaults,
    ) -> Option<CertificateSpec> {
        let before = self.error_count();
        let path = KeyPath::root().key("certificate").key(name);
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };

        let ca = match (&table.ca, &defaults.ca) {
            (Some(ca), _) => {
                self.check_ca(file, &path.key("ca"), ca);
                Some(ca.clone())
            }
            (None, Some(ca)) => Some(ca.clone()),
            (None, None) if self.declared_cas.is_empty() => Some(IMPLICIT_CA.to_string()),
            // With exactly one CA account declared there is nothing to choose.
            (None, None) if self.declared_cas.len() == 1 => {
                self.declared_cas.iter().next().cloned()
            }
            (None, None) => {
                let defined = list(self.declared_cas.iter());
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    format!("certificate `{name}` names no CA"),
                    Some(format!(
                        "set `ca` here or `ca` in `[defaults]`; defined CAs: {defined}"
                    )),
                );
                self.findings_last_key(path.key("ca"));
                None
            }
        };

        let common_name = match dns_name(&table.common_name) {
            Ok(common_name) => Some(common_name),
            Err(message) => {
                self.error(file, &path.key("common_name"), Anchor::Value, message);
                None
            }
        };
        let mut names: Vec<DnsName> = common_name.iter().cloned().collect();
        for (index, san) in table.sans.iter().flatten().enumerate() {
            match dns_name(san) {
                Ok(san) => names.push(san),
                Err(message) => {
                    self.error(file, &path.key("sans").index(index), Anchor::Value, message)
                }
            }
        }
        names.sort();
        names.dedup();

        let own_key = Setting::checked(
            table
                .key
                .as_ref()
                .map(|key| self.key(file, &path.key("key"), key)),
        );
        let own_validity = Setting::checked(
            table
                .validity
                .as_ref()
                .map(|validity| self.validity(file, &path.key("validity"), validity)),
        );
        let own_renew_before = Setting::checked(
            table
                .renew_before
                .as_deref()
                .map(|text| self.renew_before(file, &path.key("renew_before"), text)),
        );
        let key = own_key.or(defaults.key, KeySpec::Ecdsa(256));
        let validity = own_validity.or(defaults.validity, Validity::Days(90));
        let renew_before = own_renew_before.or(defaults.renew_before, RenewBefore::Percent(33));
        if let (Some(renew), Some(lifetime)) = (renew_before, validity) {
            if own_renew_before.is_given() || own_validity.is_given() {
                let at = if own_renew_before.is_given() {
                    path.key("renew_before")
                } else {
                    path.key("validity")
                };
                self.check_lifetime(file, &at, renew, lifetime, &format!("certificate `{name}`"));
            }
        }

        let on_remove = table
            .on_remove
            .map(on_remove)
            .or(defaults.on_remove)
            .unwrap_or_default();
        let reason = table.revoke_reason.map(revocation_reason);
        let revoke = if table.revoke.unwrap_or(false) {
            Some(reason.unwrap_or_default())
        } else {
            if reason.is_some() {
                self.warning(
                    file,
                    &path.key("revoke_reason"),
                    "`revoke_reason` has no effect without `revoke = true`".to_string(),
                );
            }
            None
        };

        let dcv = match &table.dcv {
            Some(field) if !names.is_empty() => self.dcv(origin, &path, field, &names),
            _ => Vec::new(),
        };
        let deploy = self.deploy(origin, &path, table.deploy.as_deref().unwrap_or_default());
        let ca_options = self.digicert_options(file, &path, table, ca.as_deref(), &dcv);

        if self.error_count() > before {
            return None;
        }
        Some(CertificateSpec {
            name: name.to_string(),
            ca: ca?,
            common_name: common_name?,
            sans: names,
            key: key?,
            validity: validity?,
            renew_before: renew_before?,
            on_remove,
            revoke,
            prevent_destroy: table.prevent_destroy.unwrap_or(false),
            dcv,
            deploy,
            ca_options,
            location: self.location(file, &path),
        })
    }

    /// The DigiCert order fields of a certificate (`product`, `organization`, ...), as the
    /// `ca_options` carried to the CA; an error when they are given for another kind of CA.
    fn digicert_options(
        &mut self,
        file: usize,
        path: &KeyPath,
        table: &CertificateTable,
        ca: Option<&str>,
        dcv: &[DcvRule],
    ) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        if ca.is_some_and(|ca| self.digicert_cas.contains(ca)) {
            // A DigiCert order has one DCV method for all its names.
            let methods: BTreeSet<&str> = dcv
                .iter()
                .map(|rule| match rule.method {
                    DcvMethod::Dns { .. } => "dns-txt-token",
                    DcvMethod::Http { .. } => "http-token",
                    DcvMethod::Email => "email",
                })
                .collect();
            if methods.len() > 1 {
                self.error(
                    file,
                    &path.key("dcv"),
                    Anchor::Key,
                    "a DigiCert order proves control of all its names one way: use one `dcv` method"
                        .to_string(),
                );
            }
            if let Some(method) = methods.into_iter().next() {
                options.insert("dcv_method".to_string(), method.to_string());
            }
        }
        if let Some(product) = &table.product {
            if product.trim().is_empty() {
                self.error(
                    file,
                    &path.key("product"),
                    Anchor::Value,
                    "`product` must not be empty".to_string(),
                );
            }
            options.insert("product".to_string(), product.trim().to_string());
        }
        if let Some(organization) = table.organization {
            if organization < 1 {
                self.error(
                    file,
                    &path.key("organization"),
                    Anchor::Value,
                    "`organization` must be a positive organization id".to_string(),
                );
            }
            options.insert("organization".to_string(), organization.to_string());
        }
        if let Some(method) = table.payment_method {
            let text = match method {
                PaymentMethodName::Balance => "balance",
                PaymentMethodName::Card => "card",
                PaymentMethodName::Profile => "profile",
            };
            options.insert("payment_method".to_string(), text.to_string());
        }
        if let Some(hash) = table.signature_hash {
            let text = match hash {
                SignatureHashName::Sha256 => "sha256",
                SignatureHashName::Sha384 => "sha384",
                SignatureHashName::Sha512 => "sha512",
            };
            options.insert("signature_hash".to_string(), text.to_string());
        }
        if let Some(platform) = table.server_platform {
            options.insert("server_platform".to_string(), platform.to_string());
        }
        let is_digicert = ca.is_some_and(|ca| self.digicert_cas.contains(ca));
        let known = ca.is_some_and(|ca| ca == IMPLICIT_CA || self.declared_cas.contains(ca));
        if !is_digicert && known {
            for key in options.keys() {
                self.error_with_hint(
                    file,
                    &path.key(key),
                    Anchor::Key,
                    format!(
                        "`{key}` applies only to certificates of a `kind = \"digicert\"` CA, and `{}` is not one",
                        ca.unwrap_or_default()
                    ),
                    Some(format!("remove `{key}` or set `ca` to a DigiCert account")),
                );
            }
        }
        options
    }

    // ----- dcv ----------------------------------------------------------------------------------

    fn dcv(
        &mut self,
        origin: Origin<'_>,
        certificate: &KeyPath,
        field: &DcvField,
        names: &[DnsName],
    ) -> Vec<DcvRule> {
        let file = origin.file;
        let dcv_path = certificate.key("dcv");
        let rules: Vec<(KeyPath, &DcvRuleTable)> = match field {
            DcvField::One(rule) => vec![(dcv_path.clone(), rule)],
            DcvField::Many(rules) => rules
                .iter()
                .enumerate()
                .map(|(index, rule)| (dcv_path.index(index), rule))
                .collect(),
        };
        if rules.is_empty() {
            self.error(file, &dcv_path, Anchor::Value, "`dcv` is empty".to_string());
            return Vec::new();
        }
        let certificate_names: BTreeSet<&DnsName> = names.iter().collect();

        // Which rule covers which name, from the rules' explicit `names`.
        let mut covered: BTreeMap<DnsName, KeyPath> = BTreeMap::new();
        let mut catch_all: Option<KeyPath> = None;
        let mut built: Vec<(KeyPath, DcvRule)> = Vec::new();
        for (rule_path, rule) in &rules {
            let method = self.dcv_method(origin, rule_path, rule);
            let mut rule_names = Vec::new();
            match &rule.names {
                None => {
                    if let Some(first) = &catch_all {
                        self.error_with_hint(
                            file,
                            rule_path,
                            Anchor::Value,
                            format!(
                                "only one DCV rule may leave out `names`, `{first}` already does"
                            ),
                            Some("list the names each rule covers in `names`".to_string()),
                        );
                    } else {
                        catch_all = Some(rule_path.clone());
                    }
                }
                Some(listed) if listed.is_empty() => {
                    self.error_with_hint(
                        file,
                        &rule_path.key("names"),
                        Anchor::Value,
                        "`names` is empty".to_string(),
                        Some(
                            "leave `names` out to cover every name no other rule covers"
                                .to_string(),
                        ),
                    );
                }
                Some(listed) => {
                    for (index, written) in listed.iter().enumerate() {
                        let name_path = rule_path.key("names").index(index);
                        let name = match dns_name(written) {
                            Ok(name) => name,
                            Err(message) => {
                                self.error(file, &name_path, Anchor::Value, message);
                                continue;
                            }
                        };
                        if !certificate_names.contains(&name) {
                            self.error_with_hint(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("`{name}` is not a name of this certificate"),
                                Some(format!(
                                    "the certificate's names: {}",
                                    list(names.iter().map(DnsName::as_str))
                                )),
                            );
                            continue;
                        }
                        if rule_names.contains(&name) {
                            continue;
                        }
                        if let Some(first) = covered.get(&name) {
                            self.error(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("`{name}` is covered by two DCV rules: `{first}` and `{rule_path}`"),
                            );
                            continue;
                        }
                        covered.insert(name.clone(), rule_path.clone());
                        if rule.method == DcvMethodName::Http && name.is_wildcard() {
                            self.error_with_hint(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("wildcard name `{name}` cannot be validated with `method = \"http\"`"),
                                Some("use `method = \"dns\"` for wildcard names".to_string()),
                            );
                        }
                        rule_names.push(name);
                    }
                }
            }
            rule_names.sort();
            if let Some(method) = method {
                built.push((
                    rule_path.clone(),
                    DcvRule {
                        names: rule_names,
                        method,
                    },
                ));
            }
        }

        let uncovered: Vec<&DnsName> = names
            .iter()
            .filter(|name| !covered.contains_key(*name))
            .collect();
        match &catch_all {
            Some(rule_path) => {
                let is_http = rules
                    .iter()
                    .any(|(path, rule)| path == rule_path && rule.method == DcvMethodName::Http);
                if let Some(wildcard) = uncovered.iter().find(|name| name.is_wildcard()) {
                    if is_http {
                        self.error_with_hint(
                            file,
                            &rule_path.key("method"),
                            Anchor::Value,
                            format!("wildcard name `{wildcard}` cannot be validated with `method = \"http\"`"),
                            Some("use `method = \"dns\"` for wildcard names, in a rule of their own with `names`".to_string()),
                        );
                    }
                }
            }
            None => {
                if !uncovered.is_empty() {
                    self.error_with_hint(
                        file,
                        &dcv_path,
                        Anchor::Value,
                        format!(
                            "no DCV rule covers {}",
                            list(uncovered.iter().map(|name| name.as_str()))
                        ),
                        Some(
                            "add the names to a rule's `names`, or add a rule without `names`"
                                .to_string(),
                        ),
                    );
                }
            }
        }
        built.into_iter().map(|(_, rule)| rule).collect()
    }

    fn dcv_method(
        &mut self,
        origin: Origin<'_>,
        path: &KeyPath,
        rule: &DcvRuleTable,
    ) -> Option<DcvMethod> {
        let file = origin.file;
        let before = self.error_count();
        let method_name = match rule.method {
            DcvMethodName::Dns => "dns",
            DcvMethodName::Http => "http",
            DcvMethodName::Email => "email",
        };
        let misplaced = |field: &str, only: &str| {
            (
                path.key(field),
                format!("`{field}` applies only to `method = \"{only}\"`, not `\"{method_name}\"`"),
            )
        };
        let mut wrong = Vec::new();
        if rule.method != DcvMethodName::Dns && rule.provider.is_some() {
            wrong.push(misplaced("provider", "dns"));
        }
        if rule.method != DcvMethodName::Http {
            if rule.webroot.is_some() {
                wrong.push(misplaced("webroot", "http"));
            }
            if rule.listen.is_some() {
                wrong.push(misplaced("listen", "http"));
            }
        }
        for (field_path, message) in wrong {
            self.error(file, &field_path, Anchor::Key, message);
        }
        let method = match rule.method {
            DcvMethodName::Dns => match &rule.provider {
                None => {
                    let hint = if self.declared_dns.is_empty() {
                        "define a `[dns.NAME]` provider and name it in `provider`".to_string()
                    } else {
                        format!("defined DNS providers: {}", list(self.declared_dns.iter()))
                    };
                    self.error_with_hint(
                        file,
                        path,
                        Anchor::Value,
                        "missing required key `provider` for `method = \"dns\"`".to_string(),
                        Some(hint),
                    );
                    self.findings_last_key(path.key("provider"));
                    None
                }
                Some(provider) => {
                    if self.check_references && !self.declared_dns.contains(provider) {
                        let hint = if self.declared_dns.is_empty() {
                            "no `[dns.NAME]` provider is defined".to_string()
                        } else {
                            let near =
                                nearest(provider, self.declared_dns.iter().map(String::as_str))
                                    .map(|near| format!("did you mean `{near}`? "))
                                    .unwrap_or_default();
                            format!(
                                "{near}defined DNS providers: {}",
                                list(self.declared_dns.iter())
                            )
                        };
                        self.error_with_hint(
                            file,
                            &path.key("provider"),
                            Anchor::Value,
                            format!("undefined DNS provider `{}`", shown(provider)),
                            Some(hint),
                        );
                        None
                    } else {
                        Some(DcvMethod::Dns {
                            provider: provider.clone(),
                        })
                    }
                }
            },
            DcvMethodName::Http => {
                let webroot = match &rule.webroot {
                    Some(webroot) if webroot.is_empty() => {
                        self.error(
                            file,
                            &path.key("webroot"),
                            Anchor::Value,
                            "`webroot` must not be empty".to_string(),
                        );
                        None
                    }
                    Some(webroot) => Some(scalar::absolute(origin.base, webroot)),
                    None => None,
                };
                if let Some(listen) = &rule.listen {
                    if let Err(reason) = check_listen(listen) {
                        self.error_with_hint(
                            file,
                            &path.key("listen"),
                            Anchor::Value,
                            format!("invalid `listen` `{}`: {reason}", shown(listen)),
                            Some("write `address:port`, like `0.0.0.0:80` or `:80`".to_string()),
                        );
                    }
                }
                Some(DcvMethod::Http {
                    webroot,
                    listen: rule.listen.clone(),
                })
            }
            DcvMethodName::Email => Some(DcvMethod::Email),
        };
        if self.error_count() > before {
            return None;
        }
        method
    }

    // ----- deploy -----------------------------------------------------------------------------

    fn deploy(
        &mut self,
        origin: Origin<'_>,
        certificate: &KeyPath,
        targets: &[DeployTable],
    ) -> Vec<DeployTarget> {
        let file = origin.file;
        let mut built = Vec::new();
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (index, target) in targets.iter().enumerate() {
            let path = certificate.key("deploy").index(index);
            let before = self.error_count();
            match target.kind {
                DeployKindName::Files => {}
            }
            let dir = if target.dir.is_empty() {
                self.error(
                    file,
                    &path.key("dir"),
                    Anchor::Value,
                    "`dir` must not be empty".to_string(),
                );
                None
            } else {
                let dir = scalar::absolute(origin.base, &target.dir);
                if let Some(first) = dirs.get(&dir) {
                    self.error_with_hint(
                        file,
                        &path.key("dir"),
                        Anchor::Value,
                        format!(
                            "deploy directory `{}` is already used by `deploy[{first}]` of this certificate",
                            dir.display()
                        ),
                        Some("give each target its own `dir`".to_string()),
                    );
                } else {
                    dirs.insert(dir.clone(), index);
                }
                self.outside_state(file, &path.key("dir"), &dir, false);
                Some(dir)
            };

            let mut file_names: Vec<(&str, String)> = Vec::new();
            for (field, value, default) in [
                ("cert", &target.cert, "cert.pem"),
                ("chain", &target.chain, "chain.pem"),
                ("fullchain", &target.fullchain, "fullchain.pem"),
                ("key", &target.key, "privkey.pem"),
            ] {
                let name = value.clone().unwrap_or_else(|| default.to_string());
                if !is_plain_file_name(&name) {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!(
                            "`{field}` must be a plain file name inside `dir`, found `{}`",
                            shown(&name)
                        ),
                    );
                    continue;
                }
                if let Some((other, _)) = file_names.iter().find(|(_, existing)| *existing == name)
                {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!("`{field}` and `{other}` are both `{}`", shown(&name)),
                    );
                    continue;
                }
                file_names.push((field, name));
            }

            let mode = self.mode(file, &path.key("mode"), target.mode.as_deref(), 0o644);
            let key_mode = self.mode(
                file,
                &path.key("key_mode"),
                target.key_mode.as_deref(),
                0o600,
            );
            if let (Some(mode), Some(text)) = (key_mode, target.key_mode.as_deref()) {
                if mode & 0o077 != 0 {
                    self.warning(
                        file,
                        &path.key("key_mode"),
                        format!(
                            "`key_mode = \"{}\"` lets {} read the private key; use `0600` (or `0640` with `group` for a service group)",
                            shown(text),
                            if mode & 0o007 != 0 { "every user" } else { "the file's group" }
                        ),
                    );
                }
            }
            for (field, value) in [
                ("owner", &target.owner),
                ("group", &target.group),
                ("reload", &target.reload),
            ] {
                if value
                    .as_deref()
                    .is_some_and(|value| value.trim().is_empty())
                {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!("`{field}` must not be empty"),
                    );
                }
            }
            let reload_timeout = match target.reload_timeout.as_deref() {
                None => Some(Duration::seconds(60)),
                Some(text) => match scalar::duration(text) {
                    Ok(timeout) => Some(timeout),
                    Err(message) => {
                        self.error(file, &path.key("reload_timeout"), Anchor::Value, message);
                        None
                    }
                },
            };
            if self.error_count() > before {
                continue;
            }
            let file_name = |field: &str| {
                file_names
                    .iter()
                    .find(|(name, _)| *name == field)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default()
            };
            if let (Some(dir), Some(mode), Some(key_mode), Some(reload_timeout)) =
                (dir, mode, key_mode, reload_timeout)
            {
                built.push(DeployTarget::Files(FilesTarget {
                    dir,
                    cert: file_name("cert"),
                    chain: file_name("chain"),
                    fullchain: file_name("fullchain"),
                    key: file_name("key"),
                    mode,
                    key_mode,
                    owner: target.owner.clone(),
                    group: target.group.clone(),
                    reload: target.reload.clone(),
                    reload_timeout,
                }));
            }
        }
        built
    }

    /// Report `dir` (`keys_dir` or a deploy `dir`, absolute and normalised) when it is inside
    /// the state repository's work tree: a private key written there can be committed. Compared
    /// lexically, so it holds whether or not the repository exists yet.
    fn outside_state(&mut self, file: usize, path: &KeyPath, dir: &Path, keys_dir: bool) {
        if !dir.starts_with(&self.state_repo) {
            return;
        }
        let field = if keys_dir {
            "`keys_dir`"
        } else {
            "deploy directory"
        };
        let place = if dir.starts_with(&self.state_dir) && self.state_dir != self.state_repo {
            format!("certform's state folder `{}`", self.state_dir.display())
        } else {
            format!("the state repository `{}`", self.state_repo.display())
        };
        let outside = self
            .state_repo
            .parent()
            .map(|parent| format!(" (e.g. under `{}`)", parent.display()))
            .unwrap_or_default();
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!(
                "{field} `{}` is inside {place}: private keys written there could be committed",
                dir.display()
            ),
            Some(if keys_dir {
                format!("move `keys_dir` outside the state repository{outside}, or remove it to keep keys in the default place outside every repository")
            } else {
                format!("deploy to a directory outside the state repository{outside}")
            }),
        );
    }

    fn mode(
        &mut self,
        file: usize,
        path: &KeyPath,
        text: Option<&str>,
        default: u32,
    ) -> Option<u32> {
        let Some(text) = text else {
            return Some(default);
        };
        match scalar::file_mode(text) {
            Ok(mode) => Some(mode),
            Err(message) => {
                self.error(file, path, Anchor::Value, message);
                None
            }
        }
    }
}

fn default_root_common_name(name: &str) -> String {
    format!("certform local root ({name})")
}

fn tsig_algorithm(algorithm: Option<TsigAlgorithmName>) -> TsigAlgorithm {
    match algorithm {
        Some(TsigAlgorithmName::HmacSha1) => TsigAlgorithm::HmacSha1,
        Some(TsigAlgorithmName::HmacSha256) | None => TsigAlgorithm::HmacSha256,
        Some(TsigAlgorithmName::HmacSha384) => TsigAlgorithm::HmacSha384,
        Some(TsigAlgorithmName::HmacSha512) => TsigAlgorithm::HmacSha512,
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

/// `host:port` with a port in 1..=65535.
fn check_server(server: &str) -> Result<(), String> {
    let Some((host, port)) = server.rsplit_once(':') else {
        return Err("no port".to_string());
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err("no host".to_string());
    }
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(format!("invalid port `{}`", shown(port))),
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

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}
