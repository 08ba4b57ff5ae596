//! The normalised desired certificate and its digests.
//!
//! A `CertificateSpec` is what `config` produces after validation: names are lowercase ASCII
//! (IDNs converted to punycode), defaults are folded in, paths are absolute. The issuance digest
//! covers exactly what must trigger a reissue (CA, names, key); the deploy digest covers the
//! deploy targets. Performs no I/O.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime};

/// A certificate's typed order options; each CA kind's settings module declares its own.
pub use crate::ca::registry::CaOptions;

/// A validated DNS name: lowercase ASCII, punycode for IDNs, `*.` only as the whole leftmost label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DnsName(String);

impl DnsName {
    /// Wrap a name that `config` has already validated and normalised.
    pub fn new_unchecked(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether `name` is one this pattern (a `serves` entry) covers: the same name, or, for
    /// `*.zone`, any name exactly one label below `zone` (and `*.zone` itself), as a
    /// certificate's wildcard covers names.
    pub fn covers(&self, name: &DnsName) -> bool {
        if self == name {
            return true;
        }
        let Some(zone) = self.0.strip_prefix("*.") else {
            return false;
        };
        name.0
            .split_once('.')
            .is_some_and(|(label, rest)| label != "*" && !label.is_empty() && rest == zone)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Key algorithm and size of a certificate's private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    Rsa(u32),
    Ecdsa(u32),
    Ed25519,
}

impl KeySpec {
    /// Stable short name, as stored in state: `rsa-3072`, `ecdsa-p256`, `ed25519`.
    pub fn label(&self) -> String {
        match self {
            KeySpec::Rsa(bits) => format!("rsa-{bits}"),
            KeySpec::Ecdsa(bits) => format!("ecdsa-p{bits}"),
            KeySpec::Ed25519 => "ed25519".to_string(),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Requested lifetime of an issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validity {
    Days(u32),
    Years(u32),
    Until(Date),
}

impl Validity {
    /// The `not_after` a certificate issued at `from` should get.
    pub fn not_after(&self, from: OffsetDateTime) -> OffsetDateTime {
        match self {
            Validity::Days(days) => from + Duration::days(i64::from(*days)),
            Validity::Years(years) => from + Duration::days(365 * i64::from(*years)),
            Validity::Until(date) => date.midnight().assume_utc(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Validity::Days(days) => format!("{days} days"),
            Validity::Years(1) => "1 year".to_string(),
            Validity::Years(years) => format!("{years} years"),
            Validity::Until(date) => format!("until {date}"),
        }
    }
}

/// When to renew: a fixed time before expiry, or a share of the issued lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenewBefore {
    Duration(Duration),
    Percent(u8),
}

impl RenewBefore {
    /// The instant from which a certificate valid from `not_before` to `not_after` is due.
    pub fn due_at(&self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
        match self {
            RenewBefore::Duration(duration) => not_after - *duration,
            RenewBefore::Percent(percent) => {
                let lifetime = not_after - not_before;
                not_after - lifetime * (f64::from(*percent) / 100.0)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RenewBefore::Duration(duration) => format_duration(*duration),
            RenewBefore::Percent(percent) => format!("{percent}% of the lifetime"),
        }
    }
}

/// Render a duration the way users write it in config: `30d`, `12h`, `90m`, `45s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.whole_seconds();
    if seconds % 86_400 == 0 {
        format!("{}d", seconds / 86_400)
    } else if seconds % 3_600 == 0 {
        format!("{}h", seconds / 3_600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// What happens at the CA when a certificate is removed from config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRemove {
    #[default]
    Forget,
    Cancel,
    Revoke,
}

impl OnRemove {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnRemove::Forget => "forget",
            OnRemove::Cancel => "cancel",
            OnRemove::Revoke => "revoke",
        }
    }
}

/// RFC 5280 revocation reasons that a subscriber may request.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    #[default]
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    /// The RFC 5280 `CRLReason` code.
    pub fn code(&self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::AffiliationChanged => "affiliation_changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
        }
    }
}

/// How control of some (or all) of a certificate's names is proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcvRule {
    /// Names this rule covers; empty means every name not covered by another rule.
    pub names: Vec<DnsName>,
    pub method: DcvMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DcvMethod {
    Dns {
        provider: String,
    },
    Http {
        webroot: Option<PathBuf>,
        listen: Option<String>,
        /// The deploy targets whose web roots receive the files (every one of them, since a
        /// load balancer may send the CA to any): `via = "NAME"` or `via = ["NAME", ...]`, or
        /// derived from the targets' `serves`. Each has a web root (`DeployTarget::web_root`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<DeployTarget>,
    },
    Email {
        /// The address that approves (`approver` in config), when the certificate names one;
        /// `None` lets the CA choose among its usual addresses.
        approver: Option<String>,
    },
}

/// The local parts of the addresses a CA may construct for email DCV (CA/Browser Forum
/// Baseline Requirements 3.2.2.4.4): `<local>@` the name or one of its parents.
pub const CONSTRUCTED_APPROVERS: &[&str] = &[
    "admin",
    "administrator",
    "hostmaster",
    "postmaster",
    "webmaster",
];

/// In the `dir` of a named deploy target, replaced by the name of each certificate using it.
pub const CERTIFICATE_PLACEHOLDER: &str = "{certificate}";

/// Where an issued certificate is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeployTarget {
    Files(FilesTarget),
    Pkcs12(Pkcs12Target),
    Jks(JksTarget),
    Command(CommandTarget),
    Ssh(SshTarget),
}

impl DeployTarget {
    /// Stable identifier of the target, used as its key in state: `files:<dir>`,
    /// `pkcs12:<path>`, `jks:<path>` with the path as config wrote it when relative (relative
    /// to the config file, so every checkout of a repository has the same ids), else absolute;
    /// `command:<command>` for a hook.
    pub fn id(&self) -> String {
        match self {
            DeployTarget::Files(files) => format!("files:{}", files.id_dir().display()),
            DeployTarget::Pkcs12(store) => format!("pkcs12:{}", store.file.id_path().display()),
            DeployTarget::Jks(store) => format!("jks:{}", store.file.id_path().display()),
            DeployTarget::Command(command) => format!("command:{}", command.command),
            DeployTarget::Ssh(ssh) => ssh.id(),
        }
    }

    /// This target as certificate `certificate` uses it: `{certificate}` in `dir` becomes the
    /// certificate's name (a named `[deploy.NAME]` target shared by several certificates).
    pub fn for_certificate(&self, certificate: &str) -> DeployTarget {
        let fill = |text: &str| text.replace(CERTIFICATE_PLACEHOLDER, certificate);
        let fill_path = |path: &Path| PathBuf::from(fill(&path.to_string_lossy()));
        match self {
            DeployTarget::Files(files) => DeployTarget::Files(FilesTarget {
                dir: fill_path(&files.dir),
                relative_dir: files.relative_dir.as_deref().map(fill_path),
                ..files.clone()
            }),
            DeployTarget::Ssh(ssh) => DeployTarget::Ssh(SshTarget {
                dir: fill(&ssh.dir),
                ..ssh.clone()
            }),
            DeployTarget::Pkcs12(store) => {
                let mut store = store.clone();
                store.file.path = fill_path(&store.file.path);
                store.file.relative_path = store.file.relative_path.as_deref().map(fill_path);
                DeployTarget::Pkcs12(store)
            }
            DeployTarget::Jks(store) => {
                let mut store = store.clone();
                store.file.path = fill_path(&store.file.path);
                store.file.relative_path = store.file.relative_path.as_deref().map(fill_path);
                DeployTarget::Jks(store)
            }
            DeployTarget::Command(command) => DeployTarget::Command(command.clone()),
        }
    }

    /// Whether `key`, a deploy record's key in state, is the absolute id an older certform
    /// wrote for this target: `files:<absolute dir>` for the `dir` this checkout resolves, or
    /// for another checkout of the same repository (an absolute path ending in the relative
    /// `dir`). Never true for the current id, nor for the kinds newer than those ids.
    pub fn is_legacy_id(&self, key: &str) -> bool {
        let DeployTarget::Files(files) = self else {
            return false;
        };
        let Some(relative) = &files.relative_dir else {
            return false;
        };
        let Some(old) = key.strip_prefix("files:").map(Path::new) else {
            return false;
        };
        old.is_absolute()
            && (old == files.dir
                || (relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                    && old.ends_with(relative)))
    }

    /// The directories this target writes in (for the stale temp file sweep).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            DeployTarget::Files(files) => {
                let mut dirs = vec![files.dir.clone()];
                for name in files.names() {
                    if let Some(parent) = files.dir.join(name).parent() {
                        dirs.push(parent.to_path_buf());
                    }
                }
                dirs
            }
            DeployTarget::Pkcs12(store) => store
                .file
                .path
                .parent()
                .map(Path::to_path_buf)
                .into_iter()
                .collect(),
            DeployTarget::Jks(store) => store
                .file
                .path
                .parent()
                .map(Path::to_path_buf)
                .into_iter()
                .collect(),
            // A hook writes no files of its own; an ssh target's files are on another host.
            DeployTarget::Command(_) | DeployTarget::Ssh(_) => Vec::new(),
        }
    }

    /// The kind as config writes it (`kind = "files"`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            DeployTarget::Files(_) => "files",
            DeployTarget::Pkcs12(_) => "pkcs12",
            DeployTarget::Jks(_) => "jks",
            DeployTarget::Command(_) => "command",
            DeployTarget::Ssh(_) => "ssh",
        }
    }

    /// Whether targets of this kind can serve a web root (`web_root`): HTTP validation files
    /// can be placed only there.
    pub fn has_web_root_kind(&self) -> bool {
        matches!(self, DeployTarget::Files(_) | DeployTarget::Ssh(_))
    }

    /// The directory this target serves over HTTP, as configured, if any.
    pub fn web_root(&self) -> Option<String> {
        match self {
            DeployTarget::Files(files) => files
                .web_root
                .as_ref()
                .map(|root| root.display().to_string()),
            DeployTarget::Ssh(ssh) => ssh.web_root.clone(),
            DeployTarget::Pkcs12(_) | DeployTarget::Jks(_) | DeployTarget::Command(_) => None,
        }
    }

    /// Whether the target deletes its files when the certificate is removed.
    pub fn cleanup(&self) -> bool {
        match self {
            DeployTarget::Files(files) => files.cleanup,
            DeployTarget::Pkcs12(store) => store.file.cleanup,
            DeployTarget::Jks(store) => store.file.cleanup,
            DeployTarget::Ssh(ssh) => ssh.cleanup,
            DeployTarget::Command(_) => false,
        }
    }

    /// The TLS endpoint that must serve the deployed certificate (`verify`), any kind.
    pub fn verify(&self) -> Option<&VerifyEndpoint> {
        match self {
            DeployTarget::Files(files) => files.verify.as_ref(),
            DeployTarget::Pkcs12(store) => store.file.verify.as_ref(),
            DeployTarget::Jks(store) => store.file.verify.as_ref(),
            DeployTarget::Command(command) => command.verify.as_ref(),
            DeployTarget::Ssh(ssh) => ssh.verify.as_ref(),
        }
    }
}

impl FilesTarget {
    /// The directory that names this target: `relative_dir`, else `dir`.
    pub fn id_dir(&self) -> &Path {
        self.relative_dir.as_deref().unwrap_or(&self.dir)
    }

    /// The file names written, in switch order (cert, chain, fullchain, combined, key).
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![
            self.cert.as_str(),
            self.chain.as_str(),
            self.fullchain.as_str(),
        ];
        if let Some(combined) = &self.combined {
            names.push(combined.as_str());
        }
        names.push(self.key.as_str());
        names
    }
}

/// PEM files in a directory, then an optional reload command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesTarget {
    /// Absolute directory (relative paths in config are resolved against the config file).
    pub dir: PathBuf,
    /// `dir` as config wrote it (normalised) when it is relative to the config file: the
    /// target's id and digest use it, so they do not depend on where the repository is checked
    /// out. Not part of the serialised settings.
    #[serde(skip)]
    pub relative_dir: Option<PathBuf>,
    pub cert: String,
    pub chain: String,
    pub fullchain: String,
    pub key: String,
    /// Mode of the public files (cert, chain, fullchain).
    pub mode: u32,
    /// Mode of the private key file.
    pub key_mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Shell command run (with `sh -c`) after any file changed.
    pub reload: Option<String>,
    pub reload_timeout: Duration,
    /// File name of key + certificate + chain in one PEM (HAProxy and friends), mode
    /// `key_mode`. Left out of the digest when unset, so older targets keep theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined: Option<String>,
    /// Delete the files when the certificate is removed from config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
    /// Absolute directory served at `http://NAME/`, where HTTP validation files go (under
    /// `.well-known/`). Not part of the digest: it shapes no deployed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_root: Option<PathBuf>,
    /// The TLS endpoint that must serve the deployed certificate after the reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyEndpoint>,
}

/// One keystore file of a `pkcs12` or `jks` target, and what follows writing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFile {
    /// Absolute path of the keystore.
    pub path: PathBuf,
    /// `path` as config wrote it (normalised) when relative to the config file: the id and
    /// digest use it. Not serialised.
    #[serde(skip)]
    pub relative_path: Option<PathBuf>,
    /// The entry's alias (PKCS#12 friendly name).
    pub alias: String,
    /// Mode of the keystore file.
    pub mode: u32,
    /// Shell command run (with `sh -c`) after the keystore changed.
    pub reload: Option<String>,
    pub reload_timeout: Duration,
    /// Delete the keystore when the certificate is removed from config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
    /// The TLS endpoint that must serve the deployed certificate after the reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyEndpoint>,
}

impl StoreFile {
    /// The path that names the target: `relative_path`, else `path`.
    pub fn id_path(&self) -> &Path {
        self.relative_path.as_deref().unwrap_or(&self.path)
    }
}

/// A PKCS#12 keystore (key + certificate + chain) protected by a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pkcs12Target {
    pub file: StoreFile,
    /// Where the password comes from (never the password).
    pub password: crate::config::SecretRef,
    /// 3DES and an HMAC-SHA-1 MAC (old Java and Windows) instead of AES-256-CBC with PBKDF2
    /// and an HMAC-SHA-256 MAC.
    pub legacy: bool,
}

/// A Java KeyStore (JKS) with one private key entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JksTarget {
    pub file: StoreFile,
    /// The keystore's integrity password.
    pub store_password: crate::config::SecretRef,
    /// The key entry's password; the store password when unset.
    pub key_password: Option<crate::config::SecretRef>,
}

/// A local hook run when the certificate changed, given it through `CERTFORM_*` variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandTarget {
    /// Shell command (`sh -c`).
    pub command: String,
    /// Time limit; the command's process group is killed after it.
    pub timeout: Duration,
    /// The TLS endpoint that must serve the certificate once the command succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyEndpoint>,
}

/// Files on a host reached with the system OpenSSH client, then an optional remote reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    /// Login name; `None`: the user's ssh config decides.
    pub user: Option<String>,
    /// Absolute path of the private key file given to `ssh -i`; `None`: the agent and the
    /// user's ssh config decide.
    pub identity: Option<PathBuf>,
    /// Absolute path of the `known_hosts` file the host key is checked against.
    pub known_hosts: PathBuf,
    /// Add an unknown host key to `known_hosts` on first contact (a changed key still fails).
    pub accept_new_host_key: bool,
    /// Absolute directory on the host.
    pub dir: String,
    pub cert: String,
    pub chain: String,
    pub fullchain: String,
    pub key: String,
    /// Mode of the public files (cert, chain, fullchain).
    pub mode: u32,
    /// Mode of the private key file.
    pub key_mode: u32,
    /// Command run on the host (with `sh -c`) after any file changed.
    pub reload: Option<String>,
    pub reload_timeout: Duration,
    /// `ssh -o ConnectTimeout`.
    pub connect_timeout: Duration,
    /// The TLS endpoint that must serve the deployed certificate after the reload.
    pub verify: Option<VerifyEndpoint>,
    /// Absolute directory on the host served at `http://NAME/`: where `dcv = { method =
    /// "http", via = ... }` puts the CA's validation files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_root: Option<String>,
    /// Delete the files on the host (key first) when the certificate is removed from config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
}

impl SshTarget {
    /// `ssh:[user@]host:port<dir>`.
    pub fn id(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        format!("ssh:{user}{}:{}{}", self.host, self.port, self.dir)
    }

    /// Digest of the settings that shape what lands on the host: the local paths of the key
    /// and `known_hosts` files (checkout-dependent, and not part of what is deployed) stay out.
    fn digest(&self) -> String {
        let shown = SshTarget {
            identity: None,
            known_hosts: PathBuf::new(),
            accept_new_host_key: false,
            connect_timeout: Duration::ZERO,
            web_root: None,
            ..self.clone()
        };
        let text = serde_json::to_string(&shown).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(b"ssh\n");
        hasher.update(text.as_bytes());
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// `verify = { connect, sni, timeout }`: after a deploy and its reload, a TLS handshake with
/// `connect` (sending `sni`) must present the deployed leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyEndpoint {
    /// `host:port`.
    pub connect: String,
    /// The server name sent; an IP address sends none.
    pub sni: String,
    pub timeout: Duration,
}

/// Where in the configuration something was defined.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One desired certificate, validated and with defaults folded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSpec {
    pub name: String,
    pub ca: String,
    pub common_name: DnsName,
    /// Every name on the certificate, sorted and without duplicates; includes `common_name`.
    pub sans: Vec<DnsName>,
    pub key: KeySpec,
    pub validity: Validity,
    pub renew_before: RenewBefore,
    pub on_remove: OnRemove,
    /// `Some(reason)` when config asks for the certificate to be revoked now.
    pub revoke: Option<RevocationReason>,
    pub prevent_destroy: bool,
    /// `revoke_reason` as configured: the reason sent for `revoke = true` and, once the
    /// certificate is removed, for `on_remove = "revoke"` (`None`: `unspecified` and
    /// `cessation_of_operation` respectively).
    pub revoke_reason: Option<RevocationReason>,
    pub dcv: Vec<DcvRule>,
    pub deploy: Vec<DeployTarget>,
    /// The order options its CA's kind takes (DigiCert: product, organization, ...).
    pub ca_options: CaOptions,
    pub location: Location,
}

impl CertificateSpec {
    /// The fields whose change makes an issued certificate wrong, as `field -> value` lines.
    pub fn issuance_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            ("ca".to_string(), self.ca.clone()),
            ("common_name".to_string(), self.common_name.to_string()),
            ("key".to_string(), self.key.label()),
            (
                "sans".to_string(),
                self.sans
                    .iter()
                    .map(DnsName::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        fields.extend(self.ca_options.issuance_fields());
        fields
    }

    /// Digest of `issuance_fields`: a changed digest means reissue.
    pub fn issuance_digest(&self) -> String {
        digest_lines(&self.issuance_fields())
    }

    /// Digest of the deploy targets: a changed digest means deploy again.
    pub fn deploy_digest(&self) -> String {
        let text = serde_json::to_string(&self.deploy).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// SHA-256 over `key=value` lines, rendered `sha256:<hex>`.
pub fn digest_lines(fields: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in fields {
        hasher.update(key.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

impl DeployTarget {
    /// Digest of this target's settings: a changed digest means deploy again. A relative
    /// `dir` (or keystore `path`) enters as written, so the digest does not depend on the
    /// checkout path.
    pub fn digest(&self) -> String {
        match self {
            DeployTarget::Files(files) => self.digest_with_dir(files.id_dir()),
            DeployTarget::Pkcs12(store) => {
                let mut shown = store.clone();
                shown.file.path = store.file.id_path().to_path_buf();
                shown.file.relative_path = None;
                digest_json(&DeployTarget::Pkcs12(shown))
            }
            DeployTarget::Jks(store) => {
                let mut shown = store.clone();
                shown.file.path = store.file.id_path().to_path_buf();
                shown.file.relative_path = None;
                digest_json(&DeployTarget::Jks(shown))
            }
            DeployTarget::Command(_) => digest_json(self),
            DeployTarget::Ssh(ssh) => ssh.digest(),
        }
    }

    /// The digest an older certform recorded for this target deployed to `dir` (absolute).
    pub fn legacy_digest(&self, dir: &Path) -> String {
        self.digest_with_dir(dir)
    }

    fn digest_with_dir(&self, dir: &Path) -> String {
        let DeployTarget::Files(files) = self else {
            return self.digest();
        };
        let shown = DeployTarget::Files(FilesTarget {
            dir: dir.to_path_buf(),
            relative_dir: None,
            web_root: None,
            ..files.clone()
        });
        digest_json(&shown)
    }
}

/// SHA-256 of `value` as JSON, rendered `sha256:<hex>`.
fn digest_json(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::DnsName;

    #[test]
    fn a_serves_pattern_covers_its_name_or_one_label_below_a_wildcard() {
        let covers = |pattern: &str, name: &str| {
            DnsName::new_unchecked(pattern).covers(&DnsName::new_unchecked(name))
        };
        assert!(covers("www.example.com", "www.example.com"));
        assert!(!covers("www.example.com", "example.com"));
        assert!(!covers("www.example.com", "a.www.example.com"));
        assert!(covers("*.shop.example.com", "a.shop.example.com"));
        assert!(covers("*.shop.example.com", "*.shop.example.com"));
        assert!(!covers("*.shop.example.com", "shop.example.com"));
        assert!(!covers("*.shop.example.com", "b.a.shop.example.com"));
        assert!(!covers("*.shop.example.com", "a.shopexample.com"));
        assert!(!covers("*.shop.example.com", "*.a.shop.example.com"));
        assert!(!covers("*.shop.example.com", ".shop.example.com"));
    }
}
