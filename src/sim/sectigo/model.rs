//! The simulated SCM account: administrators, profiles, organizations, domains, custom fields
//! and SSL certificate records moving through Sectigo's statuses, on the simulator's clock.
//! Pure state: the HTTP layer (`api.rs`) and the endpoints (`ssl.rs`, `catalog.rs`) change it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::ca::{Leaf, LeafRequest, SimCa};
use super::seed::{
    Approval, CustomFieldSeed, DcvSettings, DomainSeed, DomainValidation, OrganizationSeed,
    Privilege, ProfileSeed, Quirks, Role, Seed, Workflow,
};
use super::Error;
use crate::sim::random::Rng;

/// How far `/_sim/clock` may move the clock from real time.
const MAX_CLOCK_OFFSET: Duration = Duration::days(100 * 366);

/// An error answer: HTTP status plus Sectigo's `{code, description}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: i64,
    pub(crate) description: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: i64, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    /// A 400 with `code`.
    pub(crate) fn bad(code: i64, description: impl Into<String>) -> Self {
        Self::new(400, code, description)
    }

    /// -7 "{0} is required but missing."
    pub(crate) fn missing(field: &str) -> Self {
        Self::bad(-7, format!("{field} is required but missing."))
    }

    /// -1601 "Field '{0}' has invalid value."
    pub(crate) fn invalid(field: &str) -> Self {
        Self::bad(-1601, format!("Field '{field}' has invalid value."))
    }

    /// -1002 "Cannot parse message body" (seen on the real server for a SAN array).
    pub(crate) fn unparsable() -> Self {
        Self::bad(-1002, "Cannot parse message body")
    }

    /// -124 "Wrong SSL certificate id {0}." with the 404 of the OpenAPI document.
    pub(crate) fn wrong_id(id: impl std::fmt::Display) -> Self {
        Self::new(404, -124, format!("Wrong SSL certificate id {id}."))
    }
}

/// What an endpoint answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// JSON with a status and extra headers (`X-Total-Count`).
    Json(u16, Value, Vec<(&'static str, String)>),
    /// A download.
    Bytes {
        content_type: &'static str,
        file_name: String,
        bytes: Vec<u8>,
    },
    /// A status without a body (204, or `HEAD` with headers).
    Empty(u16, Vec<(&'static str, String)>),
}

impl Reply {
    pub(crate) fn ok(value: Value) -> Self {
        Self::Json(200, value, Vec::new())
    }

    pub(crate) fn no_content() -> Self {
        Self::Empty(204, Vec::new())
    }
}

/// SSL certificate statuses (D25 list filter; details show the same strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Init,
    Requested,
    Approved,
    SaApproved,
    Applied,
    Issued,
    Declined,
    Rejected,
    Revoked,
    Expired,
    Replaced,
    Invalid,
}

impl Status {
    pub(crate) const ALL: [Status; 12] = [
        Status::Init,
        Status::Requested,
        Status::Approved,
        Status::SaApproved,
        Status::Applied,
        Status::Issued,
        Status::Declined,
        Status::Rejected,
        Status::Revoked,
        Status::Expired,
        Status::Replaced,
        Status::Invalid,
    ];

    /// The wire string (`SAApproved` or `SA Approved` per quirk).
    pub(crate) fn name(self, quirks: &Quirks) -> &str {
        match self {
            Self::Init => "Init",
            Self::Requested => "Requested",
            Self::Approved => "Approved",
            Self::SaApproved => quirks.sa_approved_spelling.as_str(),
            Self::Applied => "Applied",
            Self::Issued => "Issued",
            Self::Declined => "Declined",
            Self::Rejected => "Rejected",
            Self::Revoked => "Revoked",
            Self::Expired => "Expired",
            Self::Replaced => "Replaced",
            Self::Invalid => "Invalid",
        }
    }

    /// Parse either spelling, case-insensitively.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let compact: String = text
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        Self::ALL.into_iter().find(|status| {
            status
                .name(&Quirks::default())
                .eq_ignore_ascii_case(&compact)
        })
    }
}

/// An API user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) login: String,
    pub(crate) password: String,
    pub(crate) role: Role,
    pub(crate) privileges: Vec<Privilege>,
    pub(crate) email: String,
}

impl User {
    pub(crate) fn can(&self, privilege: Privilege) -> bool {
        self.role.manages_ssl() && self.privileges.contains(&privilege)
    }
}

/// A custom field value on a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldValue {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// The per-domain DCV of a certificate waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DcvInstruction {
    pub(crate) domain: String,
    pub(crate) mode: String,
    pub(crate) host: String,
    pub(crate) point: String,
    pub(crate) email: Option<String>,
}

/// One SSL certificate record.
#[derive(Debug, Clone)]
pub(crate) struct Certificate {
    pub(crate) id: u64,
    pub(crate) renew_id: String,
    pub(crate) order_number: u64,
    pub(crate) common_name: String,
    pub(crate) sans: Vec<String>,
    pub(crate) org_id: u64,
    pub(crate) profile_id: u64,
    pub(crate) term: u32,
    pub(crate) comments: String,
    pub(crate) external_requester: String,
    pub(crate) custom_fields: Vec<FieldValue>,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) key_algorithm: &'static str,
    pub(crate) key_parameter: String,
    pub(crate) key_bits: u32,
    pub(crate) dcv_mode: Option<String>,
    pub(crate) dcv_email: Option<String>,
    pub(crate) requester: String,
    pub(crate) requester_id: u64,
    pub(crate) requested_via: String,
    pub(crate) owner: Option<(String, u64)>,
    pub(crate) status: Status,
    pub(crate) requested: OffsetDateTime,
    pub(crate) approved: Option<OffsetDateTime>,
    pub(crate) issued: Option<OffsetDateTime>,
    pub(crate) declined: Option<OffsetDateTime>,
    pub(crate) revoked: Option<OffsetDateTime>,
    pub(crate) replaced: Option<OffsetDateTime>,
    pub(crate) reason_code: Option<u8>,
    pub(crate) renewed: bool,
    pub(crate) renewed_date: Option<OffsetDateTime>,
    /// When an `Applied` certificate becomes `Issued` (if its DCV is done by then).
    pub(crate) issue_at: Option<OffsetDateTime>,
    pub(crate) leaf: Option<Leaf>,
    pub(crate) dcv: Vec<DcvInstruction>,
}

impl Certificate {
    /// CN first, then the other SANs, without duplicates.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = vec![self.common_name.clone()];
        for name in &self.sans {
            if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
                names.push(name.clone());
            }
        }
        names
    }

    pub(crate) fn expires(&self) -> Option<OffsetDateTime> {
        self.leaf.as_ref().map(|leaf| leaf.not_after)
    }
}

/// Counters for tests (`GET /_sim/stats`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) requests_total: u64,
    pub(crate) requests_by_route: BTreeMap<String, u64>,
    pub(crate) responses_by_status: BTreeMap<u16, u64>,
    pub(crate) unauthorized: u64,
    pub(crate) forbidden: u64,
    pub(crate) rate_limited: u64,
    pub(crate) injected_errors: u64,
    pub(crate) dropped_connections: u64,
    pub(crate) enrollments: u64,
    pub(crate) enrollments_by_common_name: BTreeMap<String, u64>,
    pub(crate) renewals: u64,
    pub(crate) replacements: u64,
    pub(crate) revocations: u64,
    pub(crate) approvals: u64,
    pub(crate) declines: u64,
    pub(crate) deletions: u64,
    pub(crate) certificates_issued: u64,
    pub(crate) dcv_rechecks: u64,
}

/// A domain with its DCV state.
#[derive(Debug, Clone)]
pub(crate) struct Domain {
    pub(crate) seed: DomainSeed,
    pub(crate) validated_at: Option<OffsetDateTime>,
}

/// The whole account.
pub(crate) struct Account {
    pub(crate) customer_uri: String,
    pub(crate) users: Vec<User>,
    pub(crate) profiles: Vec<ProfileSeed>,
    pub(crate) organizations: Vec<OrganizationSeed>,
    pub(crate) domains: Vec<Domain>,
    pub(crate) custom_fields: Vec<CustomFieldSeed>,
    pub(crate) certificates: BTreeMap<u64, Certificate>,
    pub(crate) workflow: Workflow,
    pub(crate) dcv: DcvSettings,
    pub(crate) quirks: Quirks,
    pub(crate) ca: SimCa,
    pub(crate) rng: Rng,
    pub(crate) counters: Counters,
    next_id: u64,
    next_order: u64,
    next_user_id: u64,
    clock_offset: Duration,
}

pub(crate) fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

impl Account {
    pub(crate) fn new(
        seed: &Seed,
        ca: SimCa,
        rng: Rng,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let mut account = Self {
            customer_uri: seed.customer_uri.clone(),
            users: Vec::new(),
            profiles: seed.profiles.clone(),
            organizations: seed.organizations.clone(),
            domains: seed
                .domains
                .iter()
                .map(|domain| Domain {
                    seed: domain.clone(),
                    validated_at: (domain.validation == DomainValidation::Validated)
                        .then_some(now - Duration::days(30)),
                })
                .collect(),
            custom_fields: seed.custom_fields.clone(),
            certificates: BTreeMap::new(),
            workflow: seed.workflow.clone(),
            dcv: seed.dcv.clone(),
            quirks: seed.quirks.clone(),
            ca,
            rng,
            counters: Counters::default(),
            next_id: 1000,
            next_order: 7_344_000,
            next_user_id: 80,
            clock_offset: Duration::ZERO,
        };
        for user in &seed.users {
            account.add_user(user);
        }
        super::seeded::seed_certificates(&mut account, seed, now)?;
        Ok(account)
    }

    /// Add (or replace) a user.
    pub(crate) fn add_user(&mut self, seed: &super::seed::UserSeed) {
        self.users.retain(|user| user.login != seed.login);
        self.next_user_id += 1;
        self.users.push(User {
            id: self.next_user_id,
            login: seed.login.clone(),
            password: seed.password.clone(),
            role: seed.role,
            privileges: seed
                .privileges
                .clone()
                .unwrap_or_else(|| seed.role.default_privileges()),
            email: seed
                .email
                .clone()
                .unwrap_or_else(|| format!("{}@example.com", seed.login)),
        });
    }

    /// The user with these credentials, if any.
    pub(crate) fn authenticate(
        &self,
        login: &str,
        password: &str,
        customer: &str,
    ) -> Option<&User> {
        if customer != self.customer_uri {
            return None;
        }
        self.users
            .iter()
            .find(|user| user.login == login && user.password == password)
    }

    /// The simulator's clock: real time plus the offset set through `/_sim/clock`.
    pub(crate) fn now(&self) -> OffsetDateTime {
        let real = OffsetDateTime::now_utc();
        whole_seconds(real.checked_add(self.clock_offset).unwrap_or(real))
    }

    /// Move the clock by `by`; refused (false) beyond a hundred years in total.
    pub(crate) fn advance_clock(&mut self, by: Duration) -> bool {
        match self.clock_offset.checked_add(by) {
            Some(offset) if offset.abs() <= MAX_CLOCK_OFFSET => {
                self.clock_offset = offset;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn clock_offset(&self) -> Duration {
        self.clock_offset
    }

    pub(crate) fn next_certificate_id(&mut self) -> (u64, u64, String) {
        self.next_id += 1;
        self.next_order += 1;
        let renew_id = self.renew_id();
        (self.next_id, self.next_order, renew_id)
    }

    /// A 20-character renew id like D25's `gu03sW6WENt7GTvDTuOP`.
    fn renew_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..20)
            .map(|_| char::from(ALPHABET[self.rng.below(ALPHABET.len() as u64) as usize]))
            .collect()
    }

    pub(crate) fn profile(&self, id: u64) -> Option<&ProfileSeed> {
        self.profiles.iter().find(|profile| profile.id == id)
    }

    /// The organization holding `id` (itself or as a department), and the department name.
    pub(crate) fn organization(&self, id: u64) -> Option<(&OrganizationSeed, Option<&str>)> {
        self.organizations.iter().find_map(|organization| {
            if organization.id == id {
                Some((organization, None))
            } else {
                organization
                    .departments
                    .iter()
                    .find(|department| department.id == id)
                    .map(|department| (organization, Some(department.name.as_str())))
            }
        })
    }

    /// The registered domain covering `name` for organization/department `org_id`.
    pub(crate) fn covering_domain(&self, name: &str, org_id: u64) -> Option<&Domain> {
        let parent = self
            .organization(org_id)
            .map(|(organization, _)| organization.id);
        let name = name.trim_start_matches("*.").to_ascii_lowercase();
        self.domains
            .iter()
            .filter(|domain| {
                let base = domain.seed.name.to_ascii_lowercase();
                name == base || name.ends_with(&format!(".{base}"))
            })
            .filter(|domain| {
                domain.seed.org_ids.is_empty()
                    || domain.seed.org_ids.contains(&org_id)
                    || parent.is_some_and(|parent| domain.seed.org_ids.contains(&parent))
            })
            .max_by_key(|domain| domain.seed.name.len())
    }

    /// Whether `name`'s domain has completed DCV.
    pub(crate) fn name_validated(&self, name: &str, org_id: u64) -> bool {
        self.covering_domain(name, org_id)
            .is_some_and(|domain| domain.validated_at.is_some())
    }

    /// Approve a `Requested` certificate: `Applied`, issued after the configured delay.
    pub(crate) fn approve(&mut self, id: u64, by: Option<(String, u64)>, now: OffsetDateTime) {
        let delay = Duration::seconds(
            i64::try_from(self.workflow.issue_delay_seconds).unwrap_or(i64::MAX / 2),
        );
        if let Some(certificate) = self.certificates.get_mut(&id) {
            certificate.status = Status::Applied;
            certificate.approved = Some(now);
            certificate.owner = by;
            certificate.issue_at = Some(now + delay);
        }
        self.tick(now);
    }

    /// Whether new requests by `user` skip approval.
    pub(crate) fn auto_approves(&self, user: &User) -> bool {
        self.workflow.approval == Approval::Auto && user.can(Privilege::AutoApproveCertificates)
    }

    /// Let time pass: issue what is due (and validated), expire what is past its end.
    pub(crate) fn tick(&mut self, now: OffsetDateTime) {
        let due: Vec<u64> = self
            .certificates
            .values()
            .filter(|certificate| {
                certificate.status == Status::Applied
                    && certificate.issue_at.is_some_and(|at| at <= now)
                    && certificate
                        .names()
                        .iter()
                        .all(|name| self.name_validated(name, certificate.org_id))
            })
            .map(|certificate| certificate.id)
            .collect();
        for id in due {
            // A signing failure leaves the certificate `Applied`; it is retried next tick.
            let _ = self.issue(id, now);
        }
        for certificate in self.certificates.values_mut() {
            if certificate.status == Status::Issued
                && certificate.expires().is_some_and(|end| end <= now)
            {
                certificate.status = Status::Expired;
            }
        }
    }

    /// Sign the certificate now, whatever its DCV and delay.
    pub(crate) fn issue(&mut self, id: u64, now: OffsetDateTime) -> Result<(), ApiError> {
        let serial = self.rng.bytes::<16>();
        let Some(certificate) = self.certificates.get(&id) else {
            return Err(ApiError::wrong_id(id));
        };
        let organization = self
            .organization(certificate.org_id)
            .map(|(organization, _)| organization.name.clone());
        let names = certificate.names();
        let leaf = self
            .ca
            .sign(&LeafRequest {
                common_name: &certificate.common_name,
                sans: &names,
                spki_der: &certificate.spki_der,
                is_rsa: certificate.key_algorithm == "RSA",
                organization: organization.as_deref(),
                not_before: now,
                not_after: now + Duration::days(i64::from(certificate.term)),
                serial,
            })
            .map_err(|reason| ApiError::bad(-2, reason))?;
        if let Some(certificate) = self.certificates.get_mut(&id) {
            certificate.status = Status::Issued;
            certificate.issued = Some(now);
            certificate.issue_at = None;
            certificate.leaf = Some(leaf);
        }
        self.counters.certificates_issued += 1;
        Ok(())
    }

    /// DCV instructions for the names of a certificate whose domain is not validated.
    pub(crate) fn dcv_instructions(
        &mut self,
        names: &[String],
        org_id: u64,
        mode: Option<&str>,
        email: Option<&str>,
    ) -> Vec<DcvInstruction> {
        let mut out: Vec<DcvInstruction> = Vec::new();
        let pending: Vec<String> = names
            .iter()
            .filter(|name| !self.name_validated(name, org_id))
            .filter_map(|name| {
                self.covering_domain(name, org_id)
                    .map(|domain| domain.seed.name.clone())
            })
            .collect();
        for domain in pending {
            if out.iter().any(|known| known.domain == domain) {
                continue;
            }
            let mode = mode.unwrap_or("CNAME").to_string();
            let a = hex::encode_upper(self.rng.bytes::<16>());
            let b = hex::encode_upper(self.rng.bytes::<16>());
            let c = hex::encode_upper(self.rng.bytes::<16>());
            let (host, point) = match mode.as_str() {
                "TXT" => (format!("_pki-validation.{domain}."), a.to_ascii_lowercase()),
                "HTTP" | "HTTPS" => (
                    format!(
                        "{}://{domain}/.well-known/pki-validation/{a}.txt",
                        mode.to_ascii_lowercase()
                    ),
                    format!("{b}\ncomodoca.com\n{c}"),
                ),
                "EMAIL" => (String::new(), String::new()),
                _ => (format!("_{a}.{domain}."), format!("{b}.{c}.sectigo.com.")),
            };
            out.push(DcvInstruction {
                domain,
                mode,
                host,
                point,
                email: email.map(str::to_string),
            });
        }
        out
    }
}

/// Date formats of D25's `dateFormat` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateStyle {
    Iso,
    IsoHms,
    Eu,
    EuHms,
    Us,
    UsHms,
    Uk,
    UkHms,
    Jp,
    JpHms,
}

impl DateStyle {
    /// A `dateFormat` name (case-insensitive) or its pattern.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        Some(match upper.as_str() {
            "ISO" | "YYYY-MM-DD" => Self::Iso,
            "ISO_HMS" => Self::IsoHms,
            "EU" | "DD.MM.YYYY" => Self::Eu,
            "EU_HMS" | "DD.MM.YYYY HH:MM:SS" => Self::EuHms,
            "US" | "MM/DD/YYYY" => Self::Us,
            "US_HMS" | "MM/DD/YYYY HH:MM:SS" => Self::UsHms,
            "UK" | "DD/MM/YYYY" => Self::Uk,
            "UK_HMS" | "DD/MM/YYYY HH:MM:SS" => Self::UkHms,
            "JP" | "YYYY/MM/DD" => Self::Jp,
            "JP_HMS" | "YYYY/MM/DD HH:MM:SS" => Self::JpHms,
            _ => return None,
        })
    }

    pub(crate) fn format(self, at: OffsetDateTime) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let (y, m, d) = (at.year(), u8::from(at.month()), at.day());
        let hms = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
        match self {
            Self::Iso => format!("{y:04}-{m:02}-{d:02}"),
            Self::IsoHms => format!("{y:04}-{m:02}-{d:02}T{hms}.000Z"),
            Self::Eu => format!("{d:02}.{m:02}.{y:04}"),
            Self::EuHms => format!("{d:02}.{m:02}.{y:04} {hms}"),
            Self::Us => format!("{m:02}/{d:02}/{y:04}"),
            Self::UsHms => format!("{m:02}/{d:02}/{y:04} {hms}"),
            Self::Uk => format!("{d:02}/{m:02}/{y:04}"),
            Self::UkHms => format!("{d:02}/{m:02}/{y:04} {hms}"),
            Self::Jp => format!("{y:04}/{m:02}/{d:02}"),
            Self::JpHms => format!("{y:04}/{m:02}/{d:02} {hms}"),
        }
    }
}

/// `yyyy-MM-dd` (domain and DCV dates).
pub(crate) fn iso_date(at: OffsetDateTime) -> String {
    DateStyle::Iso.format(at)
}

/// `yyyy-MM-dd HH:mm:ss` (DCV log `lastCheck`/`nextCheck`).
pub(crate) fn log_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}:{:02}:{:02}",
        iso_date(at),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `{code, description}`.
pub(crate) fn error_body(error: &ApiError) -> Value {
    json!({"code": error.code, "description": error.description})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_and_parsing() {
        let quirks = Quirks::default();
        assert_eq!(Status::SaApproved.name(&quirks), "SAApproved");
        let spaced = Quirks {
            sa_approved_spelling: "SA Approved".to_string(),
            ..Quirks::default()
        };
        assert_eq!(Status::SaApproved.name(&spaced), "SA Approved");
        for status in Status::ALL {
            assert_eq!(Status::parse(status.name(&quirks)), Some(status));
            assert_eq!(Status::parse(status.name(&spaced)), Some(status));
        }
        assert_eq!(Status::parse("issued"), Some(Status::Issued));
        assert_eq!(Status::parse("Unmanaged"), None);
    }

    #[test]
    fn date_styles() {
        let at = time::macros::datetime!(2025-05-21 12:24:26 UTC);
        assert_eq!(DateStyle::Us.format(at), "05/21/2025");
        assert_eq!(DateStyle::Iso.format(at), "2025-05-21");
        assert_eq!(DateStyle::IsoHms.format(at), "2025-05-21T12:24:26.000Z");
        assert_eq!(DateStyle::Eu.format(at), "21.05.2025");
        assert_eq!(DateStyle::UkHms.format(at), "21/05/2025 12:24:26");
        assert_eq!(DateStyle::Jp.format(at), "2025/05/21");
        assert_eq!(DateStyle::parse("us"), Some(DateStyle::Us));
        assert_eq!(DateStyle::parse("dd.mm.yyyy"), Some(DateStyle::Eu));
        assert_eq!(DateStyle::parse("nope"), None);
        assert_eq!(log_time(at), "2025-05-21 12:24:26");
    }
}
