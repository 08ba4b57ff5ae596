//! The simulator's starting state and switches: users with roles and privileges, certificate
//! profiles ("types"), organizations with departments, domains with their validation status,
//! custom fields, pre-existing certificates, the approval workflow, rate limits, faults, and
//! the quirks that select between the shapes the references disagree on.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::sim::faults::Faults;

/// Everything the simulator starts from. Every key is optional; `{}` gives the defaults
/// described in the module documentation of [`super`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// Seed of the simulator's random generator (renew ids, DCV tokens, serials, faults).
    pub random_seed: Option<u64>,
    /// The `customerUri` header every request must carry.
    pub customer_uri: String,
    pub users: Vec<UserSeed>,
    pub profiles: Vec<ProfileSeed>,
    pub organizations: Vec<OrganizationSeed>,
    pub domains: Vec<DomainSeed>,
    pub custom_fields: Vec<CustomFieldSeed>,
    /// Certificates that exist before the first request (for import tests).
    pub certificates: Vec<CertificateSeed>,
    pub workflow: Workflow,
    pub dcv: DcvSettings,
    pub limits: Limits,
    pub faults: Faults,
    pub quirks: Quirks,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            random_seed: None,
            customer_uri: "certform-sim".to_string(),
            users: default_users(),
            profiles: default_profiles(),
            organizations: default_organizations(),
            domains: default_domains(),
            custom_fields: default_custom_fields(),
            certificates: Vec::new(),
            workflow: Workflow::default(),
            dcv: DcvSettings::default(),
            limits: Limits::default(),
            faults: Faults::default(),
            quirks: Quirks::default(),
        }
    }
}

/// An SCM administrator that can call the API (header authentication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub login: String,
    pub password: String,
    pub role: Role,
    /// The privileges; when absent, those of the role (see [`Role::default_privileges`]).
    #[serde(default)]
    pub privileges: Option<Vec<Privilege>>,
    /// The administrator's email (shown as `requester`); default `LOGIN@example.com`.
    #[serde(default)]
    pub email: Option<String>,
}

/// SCM administrator roles (D25 "List administrators").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "MRAO")]
    Mrao,
    #[serde(rename = "RAO_SSL")]
    RaoSsl,
    #[serde(rename = "DRAO_SSL")]
    DraoSsl,
    #[serde(rename = "RAO_SMIME")]
    RaoSmime,
    #[serde(rename = "DRAO_SMIME")]
    DraoSmime,
    #[serde(rename = "RAO_CS")]
    RaoCs,
    #[serde(rename = "DRAO_CS")]
    DraoCs,
    #[serde(rename = "RAO_DEVICE")]
    RaoDevice,
    #[serde(rename = "DRAO_DEVICE")]
    DraoDevice,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mrao => "MRAO",
            Self::RaoSsl => "RAO_SSL",
            Self::DraoSsl => "DRAO_SSL",
            Self::RaoSmime => "RAO_SMIME",
            Self::DraoSmime => "DRAO_SMIME",
            Self::RaoCs => "RAO_CS",
            Self::DraoCs => "DRAO_CS",
            Self::RaoDevice => "RAO_DEVICE",
            Self::DraoDevice => "DRAO_DEVICE",
        }
    }

    /// Whether the role administers SSL certificates at all (others see no SSL data).
    pub fn manages_ssl(self) -> bool {
        matches!(self, Self::Mrao | Self::RaoSsl | Self::DraoSsl)
    }

    /// MRAO and RAO_SSL hold every SSL privilege; DRAO_SSL may request, renew, replace and
    /// revoke but not approve (so its requests wait for approval); the other roles none.
    pub fn default_privileges(self) -> Vec<Privilege> {
        use Privilege::*;
        match self {
            Self::Mrao | Self::RaoSsl => vec![
                SslRequest,
                SslRenew,
                SslReplace,
                SslRevoke,
                SslApprove,
                SslManage,
                AutoApproveCertificates,
                AllowDcv,
                AllowManageDomains,
            ],
            Self::DraoSsl => vec![SslRequest, SslRenew, SslReplace, SslRevoke, AllowDcv],
            _ => Vec::new(),
        }
    }
}

/// Per-operation privileges (D25 "Get available privileges").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Privilege {
    #[serde(rename = "sslRequest")]
    SslRequest,
    #[serde(rename = "sslRenew")]
    SslRenew,
    #[serde(rename = "sslReplace")]
    SslReplace,
    #[serde(rename = "sslRevoke")]
    SslRevoke,
    #[serde(rename = "sslApprove")]
    SslApprove,
    #[serde(rename = "sslManage")]
    SslManage,
    #[serde(rename = "autoApproveCertificates")]
    AutoApproveCertificates,
    #[serde(rename = "allowDCV")]
    AllowDcv,
    #[serde(rename = "allowManageDomains")]
    AllowManageDomains,
}

/// A certificate profile (`GET /api/ssl/v1/types`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSeed {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Allowed terms in days.
    pub terms: Vec<u32>,
    /// Allowed key types: `{"RSA": ["2048", ...], "EC": ["P-256", ...]}`.
    pub key_types: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub use_secondary_org_name: bool,
    /// `DV`, `OV` or `EV` (details' `validationType`); EV requests cannot be approved by
    /// their requester (-1140).
    #[serde(default = "default_validation")]
    pub validation: String,
    /// Whether `renewById` is allowed (-180 otherwise).
    #[serde(default = "yes")]
    pub renewable: bool,
}

fn default_validation() -> String {
    "OV".to_string()
}

fn yes() -> bool {
    true
}

/// An organization and its departments (`orgId` may name either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSeed {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub departments: Vec<DepartmentSeed>,
    /// Organization validation status (`Validated` lets OV/EV profiles issue; else -843).
    #[serde(default = "validated")]
    pub validation_status: String,
}

fn validated() -> String {
    "Validated".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentSeed {
    pub id: u64,
    pub name: String,
}

/// A registered domain: names under it may be requested by the organizations it is delegated
/// to; issuance waits for its DCV unless it is validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSeed {
    pub id: u64,
    pub name: String,
    /// Organization or department ids it is delegated to (empty: every organization).
    #[serde(default)]
    pub org_ids: Vec<u64>,
    #[serde(default)]
    pub validation: DomainValidation,
    /// `HTTP_CSR_HASH`, `CNAME_CSR_HASH`, `EMAIL`, `HTTPS_CSR_HASH`, `DNSTXT_RANDOM_VALUE`.
    #[serde(default = "default_validation_method")]
    pub validation_method: String,
}

fn default_validation_method() -> String {
    "CNAME_CSR_HASH".to_string()
}

/// A domain's DCV state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainValidation {
    #[default]
    Validated,
    NotValidated,
    Expired,
}

/// A custom field (`GET /api/ssl/v1/customFields` shows `{id, name, mandatory}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSeed {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub mandatory: bool,
    /// What values are accepted: `TEXT` (default), `NUMBER`, `DATE` (`yyyy-MM-dd`), `EMAIL`.
    #[serde(default = "text_input")]
    pub input: String,
}

fn text_input() -> String {
    "TEXT".to_string()
}

/// Certificates present at start (issued by the simulator's CA with a throw-away key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSeed {
    /// How many; `{n}` in the names is replaced by 1..=count.
    #[serde(default = "one")]
    pub count: u32,
    pub common_name: String,
    #[serde(default)]
    pub subject_alternative_names: Vec<String>,
    /// Any status name (`Issued`, `Revoked`, `Expired`, `Requested`, `Applied`, ...).
    #[serde(default = "issued")]
    pub status: String,
    /// Profile id; default the first profile.
    #[serde(default)]
    pub profile_id: Option<u64>,
    /// Organization id; default the first organization.
    #[serde(default)]
    pub org_id: Option<u64>,
    #[serde(default)]
    pub comments: String,
    /// Days since issuance (the certificate's term counts from then).
    #[serde(default)]
    pub age_days: u32,
    /// `Imported` or `Discovery` certificates may be deleted.
    #[serde(default = "rest_api")]
    pub requested_via: String,
}

fn one() -> u32 {
    1
}

fn issued() -> String {
    "Issued".to_string()
}

fn rest_api() -> String {
    "REST API".to_string()
}

/// The approval and issuance workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workflow {
    /// `auto`: requests of users holding `autoApproveCertificates` are approved at once;
    /// `manual`: every request waits in `Requested` until approved (API or `/_sim/`).
    pub approval: Approval,
    /// Seconds between approval and issuance (collect answers -183 meanwhile).
    pub issue_delay_seconds: u64,
    /// Refuse enrollments without `externalRequester` (-139), as some accounts do.
    pub require_external_requester: bool,
}

impl Default for Workflow {
    fn default() -> Self {
        Self {
            approval: Approval::Auto,
            issue_delay_seconds: 0,
            require_external_requester: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Auto,
    Manual,
}

/// Where the per-certificate DCV recheck looks for the CNAME and TXT records it asked for.
/// Without a DNS server, domains are validated only through `/_sim/domains/{name}/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcvSettings {
    /// `HOST:PORT` of the DNS server asked (a test's BIND, say).
    pub dns_server: Option<String>,
    pub dns_timeout_ms: u64,
}

impl Default for DcvSettings {
    fn default() -> Self {
        Self {
            dns_server: None,
            dns_timeout_ms: 2000,
        }
    }
}

/// Optional rate limits (none are documented): rolling windows per login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub windows: Vec<RateWindow>,
    /// Send `Retry-After` (whole seconds) with 429.
    pub retry_after_header: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateWindow {
    pub requests: u32,
    pub seconds: u64,
}

/// Switches for the facts the references leave open; each default is the documented shape
/// (Sectigo's 25.5 REST API reference for the header-auth host, "D25").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    /// Code of the 401 body: -16 "Unknown user" (D25 example) or -970.
    pub unauthorized_code: i64,
    /// HTTP status of the -183 "not collectable" answer (undocumented; 400 in mocks).
    pub not_collectable_status: u16,
    /// Code answered while a certificate is not ready: -183 (default), -109 or -1400.
    pub not_collectable_code: i64,
    /// HTTP status of privilege refusals (-3); undocumented, 400 in the one known mock.
    pub forbidden_status: u16,
    /// `SAApproved` (D25) or `SA Approved` (OpenAPI).
    pub sa_approved_spelling: String,
    /// Date format of SSL details when no `dateFormat` is asked: `US` (`MM/dd/yyyy`, D25
    /// example) or any `dateFormat` name (`ISO`, `ISO_HMS`, ...).
    pub details_date_format: String,
    /// List items: `minimal` (`sslId`, `commonName`: the D25 example) or `full` (also
    /// `subjectAlternativeNames`, `serialNumber`: the D25 field table).
    pub list_item_fields: String,
    /// Honour a `comments` filter on `GET /api/ssl/v1` (not documented: ignored by default).
    pub list_comments_filter: bool,
    /// Domain `validationStatus` spelling: `upper` (`VALIDATED`: D25 example, HM) or
    /// `title` (`Validated`: D25 field table).
    pub domain_status_style: String,
    /// `replace` keeps the certificate id (default) or marks it `Replaced` and creates a new
    /// record (unverifiable).
    pub replace_keeps_id: bool,
    /// Refuse a `reasonCode` sent as a JSON string (D25 types it Number; the server's JSON
    /// mapper coerces by default, so both are accepted unless this is set).
    pub strict_reason_code: bool,
    /// Line endings of PEM bodies from collect: `lf` or `crlf` (seen by one client).
    pub pem_line_endings: String,
    /// Let `DELETE /api/ssl/v1/{id}` delete any certificate (D25: only imported/discovered).
    pub delete_any: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            unauthorized_code: -16,
            not_collectable_status: 400,
            not_collectable_code: -183,
            forbidden_status: 400,
            sa_approved_spelling: "SAApproved".to_string(),
            details_date_format: "US".to_string(),
            list_item_fields: "minimal".to_string(),
            list_comments_filter: false,
            domain_status_style: "upper".to_string(),
            replace_keeps_id: true,
            strict_reason_code: false,
            pem_line_endings: "lf".to_string(),
            delete_any: false,
        }
    }
}

/// `certform-admin` (MRAO), `certform-ssl` (RAO_SSL), `certform-drao` (DRAO_SSL: requests
/// wait for approval) and `certform-smime` (RAO_SMIME: no SSL rights).
pub fn default_users() -> Vec<UserSeed> {
    [
        ("certform-admin", "sim-admin-password", Role::Mrao),
        ("certform-ssl", "sim-ssl-password", Role::RaoSsl),
        ("certform-drao", "sim-drao-password", Role::DraoSsl),
        ("certform-smime", "sim-smime-password", Role::RaoSmime),
    ]
    .into_iter()
    .map(|(login, password, role)| UserSeed {
        login: login.to_string(),
        password: password.to_string(),
        role,
        privileges: None,
        email: None,
    })
    .collect()
}

fn key_types(rsa: &[&str], ec: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut map = std::collections::BTreeMap::new();
    if !rsa.is_empty() {
        map.insert(
            "RSA".to_string(),
            rsa.iter().map(|s| (*s).to_string()).collect(),
        );
    }
    if !ec.is_empty() {
        map.insert(
            "EC".to_string(),
            ec.iter().map(|s| (*s).to_string()).collect(),
        );
    }
    map
}

/// Three profiles: 1001 "OV Multi-Domain" (RSA and EC, 199 or 365 days), 1002 "OV SSL"
/// (RSA only, 199 days), 1003 "EV Multi-Domain" (RSA and EC, 199 days, EV).
pub fn default_profiles() -> Vec<ProfileSeed> {
    vec![
        ProfileSeed {
            id: 1001,
            name: "OV Multi-Domain".to_string(),
            description: "Sectigo OV Multi-Domain (simulated)".to_string(),
            terms: vec![199, 365],
            key_types: key_types(&["2048", "3072", "4096"], &["P-256", "P-384"]),
            use_secondary_org_name: false,
            validation: "OV".to_string(),
            renewable: true,
        },
        ProfileSeed {
            id: 1002,
            name: "OV SSL".to_string(),
            description: "Sectigo OV SSL, RSA only (simulated)".to_string(),
            terms: vec![199],
            key_types: key_types(&["2048", "3072", "4096"], &[]),
            use_secondary_org_name: false,
            validation: "OV".to_string(),
            renewable: true,
        },
        ProfileSeed {
            id: 1003,
            name: "EV Multi-Domain".to_string(),
            description: "Sectigo EV Multi-Domain (simulated)".to_string(),
            terms: vec![199],
            key_types: key_types(&["2048", "3072", "4096"], &["P-256", "P-384"]),
            use_secondary_org_name: false,
            validation: "EV".to_string(),
            renewable: true,
        },
    ]
}

/// Organization 101 "Example Inc" with department 102 "IT".
pub fn default_organizations() -> Vec<OrganizationSeed> {
    vec![OrganizationSeed {
        id: 101,
        name: "Example Inc".to_string(),
        departments: vec![DepartmentSeed {
            id: 102,
            name: "IT".to_string(),
        }],
        validation_status: validated(),
    }]
}

/// `example.com` (validated) and `example.net` (not validated), delegated to every
/// organization.
pub fn default_domains() -> Vec<DomainSeed> {
    vec![
        DomainSeed {
            id: 201,
            name: "example.com".to_string(),
            org_ids: Vec::new(),
            validation: DomainValidation::Validated,
            validation_method: default_validation_method(),
        },
        DomainSeed {
            id: 202,
            name: "example.net".to_string(),
            org_ids: Vec::new(),
            validation: DomainValidation::NotValidated,
            validation_method: default_validation_method(),
        },
    ]
}

/// Optional `Cost Center` (text) and `Ticket` (number).
pub fn default_custom_fields() -> Vec<CustomFieldSeed> {
    vec![
        CustomFieldSeed {
            id: 301,
            name: "Cost Center".to_string(),
            mandatory: false,
            input: text_input(),
        },
        CustomFieldSeed {
            id: 302,
            name: "Ticket".to_string(),
            mandatory: false,
            input: "NUMBER".to_string(),
        },
    ]
}

impl Seed {
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|error| Error::Seed {
            reason: format!("invalid JSON seed: {error}"),
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|error| Error::Seed {
            reason: format!("invalid TOML seed: {error}"),
        })
    }

    /// Read a seed file: `.toml` is TOML, anything else JSON.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::SeedFile {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
        let parsed = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        };
        parsed.map_err(|error| match error {
            Error::Seed { reason } => Error::Seed {
                reason: format!("`{}`: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// Check what the simulator relies on; the message names the key.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::Seed { reason });
        self.faults
            .validate()
            .map_err(|reason| Error::Seed { reason })?;
        validate_limits(&self.limits).map_err(|reason| Error::Seed { reason })?;
        if let Some(server) = &self.dcv.dns_server {
            if server.parse::<std::net::SocketAddr>().is_err() {
                return fail(format!(
                    "`dcv.dns_server` must be an address such as `127.0.0.1:53`, not `{server}`"
                ));
            }
        }
        if self.customer_uri.trim().is_empty() {
            return fail("`customer_uri` must not be empty".to_string());
        }
        let mut logins = std::collections::BTreeSet::new();
        for user in &self.users {
            if user.login.is_empty() || user.password.is_empty() {
                return fail("every user needs a `login` and a `password`".to_string());
            }
            if !logins.insert(user.login.as_str()) {
                return fail(format!("user `{}` appears twice", user.login));
            }
        }
        for profile in &self.profiles {
            if profile.terms.is_empty() || profile.key_types.is_empty() {
                return fail(format!(
                    "profile {} needs at least one term and one key type",
                    profile.id
                ));
            }
            if !matches!(profile.validation.as_str(), "DV" | "OV" | "EV") {
                return fail(format!(
                    "profile {}: `validation` must be `DV`, `OV` or `EV`, not `{}`",
                    profile.id, profile.validation
                ));
            }
        }
        for field in &self.custom_fields {
            if !matches!(field.input.as_str(), "TEXT" | "NUMBER" | "DATE" | "EMAIL") {
                return fail(format!(
                    "custom field `{}`: `input` must be `TEXT`, `NUMBER`, `DATE` or `EMAIL`",
                    field.name
                ));
            }
        }
        let quirks = &self.quirks;
        if !matches!(quirks.list_item_fields.as_str(), "minimal" | "full") {
            return fail("`quirks.list_item_fields` must be `minimal` or `full`".to_string());
        }
        if !matches!(quirks.domain_status_style.as_str(), "upper" | "title") {
            return fail("`quirks.domain_status_style` must be `upper` or `title`".to_string());
        }
        if !matches!(quirks.pem_line_endings.as_str(), "lf" | "crlf") {
            return fail("`quirks.pem_line_endings` must be `lf` or `crlf`".to_string());
        }
        if !matches!(
            quirks.sa_approved_spelling.as_str(),
            "SAApproved" | "SA Approved"
        ) {
            return fail(
                "`quirks.sa_approved_spelling` must be `SAApproved` or `SA Approved`".to_string(),
            );
        }
        if super::model::DateStyle::parse(&quirks.details_date_format).is_none() {
            return fail(format!(
                "`quirks.details_date_format`: unknown format `{}`",
                quirks.details_date_format
            ));
        }
        for status in [quirks.not_collectable_status, quirks.forbidden_status] {
            if !(400..=499).contains(&status) {
                return fail(format!("quirk statuses must be 4xx, not {status}"));
            }
        }
        Ok(())
    }
}

/// Check rate-limit windows: positive counts, periods of at most a year.
pub(crate) fn validate_limits(limits: &Limits) -> Result<(), String> {
    for window in &limits.windows {
        if window.requests == 0 || window.seconds == 0 || window.seconds > 366 * 86_400 {
            return Err(format!(
                "rate-limit window {} requests / {} seconds: both must be positive, the period at most a year",
                window.requests, window.seconds
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(seed: Seed) -> String {
        match seed.validate() {
            Err(Error::Seed { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert!(Seed::default().validate().is_ok());
        assert!(Seed::from_json("{}").unwrap().validate().is_ok());
        let mut seed = Seed::default();
        seed.quirks.list_item_fields = "some".to_string();
        assert!(refused(seed).contains("list_item_fields"));
        let mut seed = Seed::default();
        seed.quirks.forbidden_status = 500;
        assert!(refused(seed).contains("4xx"));
        let mut seed = Seed::default();
        seed.quirks.details_date_format = "nope".to_string();
        assert!(refused(seed).contains("details_date_format"));
        let mut seed = Seed::default();
        seed.users.push(seed.users[0].clone());
        assert!(refused(seed).contains("appears twice"));
        let mut seed = Seed::default();
        seed.custom_fields[0].input = "LIST".to_string();
        assert!(refused(seed).contains("Cost Center"));
        let mut seed = Seed::default();
        seed.profiles[0].terms.clear();
        assert!(refused(seed).contains("profile 1001"));
        let seed = Seed {
            customer_uri: " ".to_string(),
            ..Seed::default()
        };
        assert!(refused(seed).contains("customer_uri"));
        assert!(Seed::from_json(r#"{"unknown": 1}"#).is_err());
        let toml = Seed::from_toml("customer_uri = \"acme\"\n[workflow]\napproval = \"manual\"\n")
            .unwrap();
        assert_eq!(toml.workflow.approval, Approval::Manual);
        assert_eq!(toml.users, default_users());
    }

    #[test]
    fn roles_hold_their_privileges() {
        assert!(Role::Mrao
            .default_privileges()
            .contains(&Privilege::AutoApproveCertificates));
        assert!(!Role::DraoSsl
            .default_privileges()
            .contains(&Privilege::SslApprove));
        assert!(Role::RaoSmime.default_privileges().is_empty());
        assert!(!Role::RaoSmime.manages_ssl());
        assert_eq!(Role::DraoSsl.as_str(), "DRAO_SSL");
    }
}
