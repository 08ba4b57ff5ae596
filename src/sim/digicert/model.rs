//! The simulated CertCentral account: keys, users, products, organizations, domains, orders,
//! certificates and requests, and the rules that move orders through their statuses. No I/O:
//! the HTTP layer calls in with the time, and DCV network checks happen outside (`dcv.rs`).

mod api_error;
mod load;
mod times;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use time::{Date, Duration, OffsetDateTime, Time};

pub(crate) use self::api_error::ApiError;
pub(crate) use self::times::{date, end_of_day, iso, iso_z, parse_date, spaced, whole_seconds};
use super::ca::{Csr, LeafSpec, OrganizationSubject, SimCa};
use super::seed::{
    AccountSeed, DcvSettings, DcvStatus, Policy, ProductSeed, Quirks, Role, ValidationStatus,
    ValidationType,
};
use crate::sim::random::Rng;

/// How far `/_sim/clock` may move the clock, in total.
pub(crate) const MAX_CLOCK_OFFSET: Duration = Duration::days(100 * 366);

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Json(u16, Value),
    Bytes {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
    Empty,
}

/// `order.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum OrderStatus {
    NeedsApproval,
    Pending,
    WaitingPickup,
    ReissuePending,
    Issued,
    Rejected,
    Revoked,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NeedsApproval => "needs_approval",
            Self::Pending => "pending",
            Self::WaitingPickup => "waiting_pickup",
            Self::ReissuePending => "reissue_pending",
            Self::Issued => "issued",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            Self::NeedsApproval,
            Self::Pending,
            Self::WaitingPickup,
            Self::ReissuePending,
            Self::Issued,
            Self::Rejected,
            Self::Revoked,
            Self::Canceled,
            Self::Expired,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key and whose it is.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) role: Role,
    pub(crate) user_id: u64,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl Key {
    pub(crate) fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) username: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) role: Role,
}

#[derive(Debug, Clone)]
pub(crate) struct OrganizationValidation {
    pub(crate) kind: String,
    pub(crate) status: ValidationStatus,
    pub(crate) validated_until: OffsetDateTime,
    pub(crate) date_created: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Organization {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) assumed_name: String,
    pub(crate) display_name: String,
    pub(crate) is_active: bool,
    pub(crate) address: String,
    pub(crate) address2: String,
    pub(crate) city: String,
    pub(crate) state: String,
    pub(crate) zip: String,
    pub(crate) country: String,
    pub(crate) telephone: String,
    pub(crate) validations: Vec<OrganizationValidation>,
}

impl Organization {
    /// Whether the organization has an active, unexpired validation of `kind`.
    pub(crate) fn is_validated(&self, kind: &str, now: OffsetDateTime) -> bool {
        self.is_active
            && self.validations.iter().any(|validation| {
                validation.kind == kind
                    && validation.status == ValidationStatus::Active
                    && validation.validated_until > now
            })
    }

    pub(crate) fn subject(&self) -> OrganizationSubject {
        OrganizationSubject {
            name: self.name.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            country: self.country.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Domain {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) organization_id: Option<u64>,
    pub(crate) is_active: bool,
    pub(crate) date_created: OffsetDateTime,
    pub(crate) dcv_status: DcvStatus,
    pub(crate) dcv_method: String,
    pub(crate) validation_types: Vec<String>,
    pub(crate) validated_until: Option<OffsetDateTime>,
    pub(crate) dcv_approval: Option<OffsetDateTime>,
    pub(crate) token: String,
    pub(crate) token_expires: OffsetDateTime,
}

impl Domain {
    /// Whether names under this domain need no further DCV at `now`.
    pub(crate) fn is_validated(&self, now: OffsetDateTime) -> bool {
        self.is_active
            && self.dcv_status == DcvStatus::Complete
            && self.validated_until.is_none_or(|until| until > now)
    }

    /// Whether `name` (without `*.`) is this domain or under it.
    pub(crate) fn covers(&self, name: &str) -> bool {
        let name = name.strip_prefix("*.").unwrap_or(name);
        name == self.name
            || name
                .strip_suffix(self.name.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'))
    }
}

/// The validity a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validity {
    Years(u32),
    Days(u32),
    Custom(Date),
}

/// The certificate an order (or its pending reissue) asks for.
#[derive(Debug, Clone)]
pub(crate) struct CertParams {
    pub(crate) common_name: String,
    /// Every SAN, the common name first.
    pub(crate) dns_names: Vec<String>,
    pub(crate) csr_text: String,
    pub(crate) csr: Csr,
    pub(crate) signature_hash: String,
    pub(crate) server_platform_id: i64,
    pub(crate) organization_units: Vec<String>,
    pub(crate) profile_option: Option<String>,
    pub(crate) ca_cert_id: Option<String>,
}

/// An issued certificate's facts.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) leaf_der: Vec<u8>,
    /// Index into `SimCa::intermediates`.
    pub(crate) intermediate: usize,
    pub(crate) serial: String,
    pub(crate) thumbprint: String,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) date_issued: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Certificate {
    pub(crate) id: u64,
    pub(crate) order_id: u64,
    pub(crate) params: CertParams,
    pub(crate) date_created: OffsetDateTime,
    pub(crate) issued: Option<Issued>,
    pub(crate) revoked: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    NewRequest,
    Reissue,
    Revoke,
}

impl RequestKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NewRequest => "new_request",
            Self::Reissue => "reissue",
            Self::Revoke => "revoke",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestStatus {
    Pending,
    Approved,
    Rejected,
}

impl RequestStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// A request object (approval workflow).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) kind: RequestKind,
    pub(crate) status: RequestStatus,
    pub(crate) order_id: u64,
    /// For a revoke of one certificate.
    pub(crate) certificate_id: Option<u64>,
    pub(crate) requester_id: u64,
    pub(crate) date: OffsetDateTime,
    pub(crate) comments: String,
    pub(crate) revocation_reason: Option<String>,
    pub(crate) processor_id: Option<u64>,
    pub(crate) processor_comment: String,
    pub(crate) date_processed: Option<OffsetDateTime>,
}

impl Request {
    /// A request of `kind` for `order_id`, waiting for an administrator's decision.
    pub(crate) fn pending(
        id: u64,
        kind: RequestKind,
        order_id: u64,
        requester_id: u64,
        date: OffsetDateTime,
        comments: String,
    ) -> Self {
        Self {
            id,
            kind,
            status: RequestStatus::Pending,
            order_id,
            certificate_id: None,
            requester_id,
            date,
            comments,
            revocation_reason: None,
            processor_id: None,
            processor_comment: String::new(),
            date_processed: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) product: String,
    pub(crate) status: OrderStatus,
    pub(crate) status_last_updated: OffsetDateTime,
    pub(crate) date_created: OffsetDateTime,
    pub(crate) user_id: u64,
    pub(crate) params: CertParams,
    pub(crate) reissue: Option<CertParams>,
    /// A new or reissue request waits for an approver.
    pub(crate) awaiting_approval: bool,
    pub(crate) organization_id: Option<u64>,
    pub(crate) cert_validity: Validity,
    pub(crate) order_valid_from: OffsetDateTime,
    pub(crate) order_valid_till: OffsetDateTime,
    pub(crate) validity_years: Option<u32>,
    pub(crate) payment_method: String,
    pub(crate) disable_renewal_notifications: bool,
    pub(crate) disable_ct: bool,
    pub(crate) container_id: u64,
    pub(crate) custom_fields: Vec<(u64, String)>,
    pub(crate) alternative_order_id: Option<String>,
    pub(crate) renewal_of_order_id: Option<u64>,
    pub(crate) renewed_order_id: Option<u64>,
    pub(crate) dcv_method: String,
    pub(crate) dcv_random_value: Option<String>,
    /// When `dcv_random_value` stops being accepted (`dcv.token_lifetime_days` after it was made).
    pub(crate) dcv_random_value_expires: Option<OffsetDateTime>,
    /// The primary certificate (pending until issued; the last issued one during a reissue).
    pub(crate) certificate_id: u64,
    /// Every certificate of the order, oldest first.
    pub(crate) certificate_ids: Vec<u64>,
    pub(crate) request_ids: Vec<u64>,
    /// When DCV passed and `issue_delay_seconds` runs: when the certificate is issued.
    pub(crate) issue_at: Option<OffsetDateTime>,
    pub(crate) price: f64,
}

impl Order {
    /// The parameters the next certificate will have.
    pub(crate) fn target(&self) -> &CertParams {
        self.reissue.as_ref().unwrap_or(&self.params)
    }
}

/// Counters for `GET /_sim/stats`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) requests_total: u64,
    pub(crate) requests_by_route: BTreeMap<String, u64>,
    pub(crate) responses_by_status: BTreeMap<u16, u64>,
    pub(crate) unauthorized: u64,
    pub(crate) rate_limited: u64,
    pub(crate) injected_errors: u64,
    pub(crate) dropped_connections: u64,
    pub(crate) orders_by_common_name: BTreeMap<String, u64>,
    pub(crate) orders_by_alternative_order_id: BTreeMap<String, u64>,
    pub(crate) certificates_issued: u64,
    pub(crate) dcv_checks: u64,
}

/// The settings the handlers read.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) account: AccountSeed,
    pub(crate) dcv: DcvSettings,
    pub(crate) policy: Policy,
    pub(crate) quirks: Quirks,
}

/// The whole simulated account.
pub(crate) struct Account {
    pub(crate) settings: Settings,
    pub(crate) ca: SimCa,
    pub(crate) keys: Vec<Key>,
    pub(crate) users: BTreeMap<u64, User>,
    pub(crate) products: Vec<ProductSeed>,
    pub(crate) organizations: BTreeMap<u64, Organization>,
    pub(crate) domains: BTreeMap<u64, Domain>,
    pub(crate) orders: BTreeMap<u64, Order>,
    pub(crate) certificates: BTreeMap<u64, Certificate>,
    pub(crate) requests: BTreeMap<u64, Request>,
    pub(crate) counters: Counters,
    pub(crate) rng: Rng,
    next_order_id: u64,
    next_certificate_id: u64,
    next_request_id: u64,
    next_domain_id: u64,
    clock_offset: Duration,
    /// Nothing time-driven happens before this instant (`None`: nothing scheduled).
    next_event: Option<OffsetDateTime>,
}

impl Account {
    /// The simulator's clock: real time plus the offset set through `/_sim/clock`.
    pub(crate) fn now(&self) -> OffsetDateTime {
        let real = OffsetDateTime::now_utc();
        whole_seconds(real.checked_add(self.clock_offset).unwrap_or(real))
    }

    /// Set the clock to `at` (it runs on from there); refused (false) beyond
    /// [`MAX_CLOCK_OFFSET`] from real time.
    pub(crate) fn set_clock(&mut self, at: OffsetDateTime) -> bool {
        let by = at - self.now();
        self.advance_clock(by)
    }

    /// Move the clock by `by`; refused (false) beyond [`MAX_CLOCK_OFFSET`] in total.
    pub(crate) fn advance_clock(&mut self, by: Duration) -> bool {
        match self.clock_offset.checked_add(by) {
            Some(offset) if offset.abs() <= MAX_CLOCK_OFFSET => {
                self.clock_offset = offset;
                self.next_event = Some(OffsetDateTime::UNIX_EPOCH);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn key(&self, value: &str) -> Option<&Key> {
        self.keys.iter().find(|key| key.key == value)
    }

    pub(crate) fn product(&self, name_id: &str) -> Option<&ProductSeed> {
        self.products
            .iter()
            .find(|product| product.name_id == name_id)
    }

    pub(crate) fn next_order_id(&mut self) -> u64 {
        self.next_order_id += 1;
        self.next_order_id - 1
    }

    pub(crate) fn next_certificate_id(&mut self) -> u64 {
        self.next_certificate_id += 1;
        self.next_certificate_id - 1
    }

    pub(crate) fn next_request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        self.next_request_id - 1
    }

    pub(crate) fn next_domain_id(&mut self) -> u64 {
        self.next_domain_id += 1;
        self.next_domain_id - 1
    }

    pub(crate) fn count_new_order(&mut self, order: &Order) {
        *self
            .counters
            .orders_by_common_name
            .entry(order.params.common_name.clone())
            .or_default() += 1;
        if let Some(alternative) = &order.alternative_order_id {
            *self
                .counters
                .orders_by_alternative_order_id
                .entry(alternative.clone())
                .or_default() += 1;
        }
    }

    /// Note that something time-driven happens at `at`.
    pub(crate) fn schedule(&mut self, at: OffsetDateTime) {
        self.next_event = Some(self.next_event.map_or(at, |next| next.min(at)));
    }

    /// Apply what time does: certificates expire, delayed issuance happens.
    pub(crate) fn tick(&mut self, now: OffsetDateTime) {
        if self.next_event.is_none_or(|next| next > now) {
            return;
        }
        self.next_event = None;
        let ids: Vec<u64> = self.orders.keys().copied().collect();
        for id in ids {
            let Some(order) = self.orders.get(&id) else {
                continue;
            };
            match order.status {
                OrderStatus::Issued => {
                    let not_after = self
                        .certificates
                        .get(&order.certificate_id)
                        .and_then(|certificate| certificate.issued.as_ref())
                        .map(|issued| issued.not_after);
                    match not_after {
                        Some(not_after) if not_after <= now => {
                            if let Some(order) = self.orders.get_mut(&id) {
                                order.status = OrderStatus::Expired;
                                order.status_last_updated = now;
                            }
                        }
                        Some(not_after) => self.schedule(not_after),
                        None => {}
                    }
                }
                OrderStatus::Pending | OrderStatus::ReissuePending => {
                    if let Some(at) = order.issue_at {
                        if at <= now {
                            // A failure leaves the order pending; it shows in order info.
                            let _ = self.progress(id, now);
                        } else {
                            self.schedule(at);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Names of the order's next certificate that no validated domain covers.
    pub(crate) fn unvalidated_names(&self, order: &Order, now: OffsetDateTime) -> Vec<String> {
        let target = order.target();
        target
            .dns_names
            .iter()
            .filter(|name| !self.is_covered(name, order, now))
            .cloned()
            .collect()
    }

    fn is_covered(&self, name: &str, order: &Order, now: OffsetDateTime) -> bool {
        let validation = self
            .product(&order.product)
            .map(|product| product.validation_type)
            .unwrap_or(ValidationType::Dv);
        self.domains.values().any(|domain| {
            domain.is_validated(now)
                && domain.covers(name)
                && (!validation.needs_organization()
                    || (domain
                        .validation_types
                        .iter()
                        .any(|kind| kind == validation.as_str())
                        && (domain.organization_id.is_none()
                            || order.organization_id.is_none()
                            || domain.organization_id == order.organization_id)))
        })
    }

    /// The domain record DCV of `name` validates: `name` without `*.` and `www.`.
    pub(crate) fn dcv_domain_name(name: &str) -> String {
        let name = name.strip_prefix("*.").unwrap_or(name);
        name.strip_prefix("www.").unwrap_or(name).to_string()
    }

    /// The domain record for `name`'s DCV, created pending (with `token`) when missing.
    pub(crate) fn ensure_domain(&mut self, name: &str, order_id: u64, now: OffsetDateTime) -> u64 {
        let base = Self::dcv_domain_name(name);
        if let Some(domain) = self.domains.values().find(|domain| domain.name == base) {
            return domain.id;
        }
        let (method, organization_id, token) = match self.orders.get(&order_id) {
            Some(order) => (
                order.dcv_method.clone(),
                order.organization_id,
                order.dcv_random_value.clone(),
            ),
            None => (self.settings.dcv.default_method.clone(), None, None),
        };
        let token = token.unwrap_or_else(|| self.rng.alphanumeric(32));
        let id = self.next_domain_id();
        self.domains.insert(
            id,
            Domain {
                id,
                name: base,
                organization_id,
                is_active: true,
                date_created: now,
                dcv_status: DcvStatus::Pending,
                dcv_method: method,
                validation_types: vec!["ov".into(), "ev".into()],
                validated_until: None,
                dcv_approval: None,
                token,
                token_expires: now
                    + Duration::days(i64::from(self.settings.dcv.token_lifetime_days)),
            },
        );
        id
    }

    /// Record that DCV passed for `name` (its domain record becomes complete), then let every
    /// waiting order progress.
    pub(crate) fn mark_validated(&mut self, names: &[String], order_id: u64, now: OffsetDateTime) {
        let reuse = Duration::days(i64::from(self.settings.policy.dcv_reuse_days));
        for name in names {
            let id = self.ensure_domain(name, order_id, now);
            if let Some(domain) = self.domains.get_mut(&id) {
                domain.dcv_status = DcvStatus::Complete;
                domain.validated_until = Some(now + reuse);
                domain.dcv_approval = Some(now);
                domain.is_active = true;
            }
        }
        self.progress_all(now);
    }

    /// Let every pending order progress (after a domain or organization was validated).
    pub(crate) fn progress_all(&mut self, now: OffsetDateTime) {
        let waiting: Vec<u64> = self
            .orders
            .values()
            .filter(|order| {
                matches!(
                    order.status,
                    OrderStatus::Pending | OrderStatus::ReissuePending
                )
            })
            .map(|order| order.id)
            .collect();
        for id in waiting {
            let _ = self.progress(id, now);
        }
    }

    /// Move a pending order on: issue its certificate once approval, organization validation
    /// and DCV are all done (after `issue_delay_seconds`). Returns whether it issued.
    pub(crate) fn progress(
        &mut self,
        order_id: u64,
        now: OffsetDateTime,
    ) -> Result<bool, ApiError> {
        let Some(order) = self.orders.get(&order_id) else {
            return Err(ApiError::order_not_found());
        };
        if !matches!(
            order.status,
            OrderStatus::Pending | OrderStatus::ReissuePending
        ) || order.awaiting_approval
        {
            return Ok(false);
        }
        let validation = self
            .product(&order.product)
            .map(|product| product.validation_type)
            .unwrap_or(ValidationType::Dv);
        if validation.needs_organization() {
            let validated = order
                .organization_id
                .and_then(|id| self.organizations.get(&id))
                .is_some_and(|organization| organization.is_validated(validation.as_str(), now));
            if !validated {
                return Ok(false);
            }
        }
        let missing = self.unvalidated_names(order, now);
        if !missing.is_empty() {
            for name in &missing {
                self.ensure_domain(name, order_id, now);
            }
            return Ok(false);
        }
        let delay = self.settings.dcv.issue_delay_seconds;
        if delay > 0 {
            let due = match order.issue_at {
                Some(at) => at,
                None => {
                    let at = now + Duration::seconds(delay as i64);
                    if let Some(order) = self.orders.get_mut(&order_id) {
                        order.issue_at = Some(at);
                    }
                    self.schedule(at);
                    at
                }
            };
            if due > now {
                return Ok(false);
            }
        }
        self.issue(order_id, now)?;
        Ok(true)
    }

    /// Issue the order's next certificate now.
    pub(crate) fn issue(&mut self, order_id: u64, now: OffsetDateTime) -> Result<u64, ApiError> {
        let order = self
            .orders
            .get(&order_id)
            .ok_or_else(ApiError::order_not_found)?;
        let product = self
            .product(&order.product)
            .cloned()
            .ok_or_else(|| ApiError::new(500, "internal_error", "The order's product is gone."))?;
        let is_reissue = order.reissue.is_some();
        let params = order.target().clone();
        let max_days = i64::from(
            product
                .max_cert_validity_days
                .unwrap_or(self.settings.policy.max_cert_validity_days)
                .max(1),
        );
        let not_before = now.replace_time(Time::MIDNIGHT);
        let requested_end = match &order.cert_validity {
            Validity::Years(years) => not_before + Duration::days(365 * i64::from(*years)),
            Validity::Days(days) => not_before + Duration::days(i64::from(*days)),
            Validity::Custom(date) => {
                date.with_time(Time::MIDNIGHT).assume_utc() + Duration::days(1)
            }
        };
        let end = requested_end
            .min(not_before + Duration::days(max_days))
            .min(end_of_day(order.order_valid_till) + Duration::seconds(1));
        let not_after = (end - Duration::seconds(1)).max(not_before + Duration::hours(1));
        let organization = order
            .organization_id
            .and_then(|id| self.organizations.get(&id))
            .filter(|_| product.validation_type.needs_organization())
            .map(Organization::subject);
        let intermediate_index = self
            .ca
            .intermediates
            .iter()
            .position(|ica| match &params.ca_cert_id {
                Some(id) => ica.id.eq_ignore_ascii_case(id),
                None => ica.hash == params.signature_hash,
            })
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_ca_cert_id",
                    "No issuing CA matches the order's signature hash or ca_cert_id.",
                )
            })?;
        let mut serial = self.rng.bytes::<16>();
        serial[0] = (serial[0] & 0x7f) | 0x40;
        let spec = LeafSpec {
            common_name: &params.common_name,
            sans: &params.dns_names,
            spki_der: &params.csr.spki_der,
            is_rsa: params.csr.is_rsa,
            not_before,
            not_after,
            serial,
            organization: organization.as_ref(),
            organization_units: &params.organization_units,
            validation: product.validation_type,
            client_auth: params.profile_option.as_deref() == Some("server_client_auth_eku"),
        };
        let intermediate = &self.ca.intermediates[intermediate_index];
        let leaf = self
            .ca
            .sign(intermediate, &spec)
            .map_err(|message| ApiError::bad_request("certificate_issuance_failed", message))?;
        let issued = Issued {
            leaf_der: leaf.der,
            intermediate: intermediate_index,
            serial: leaf.serial,
            thumbprint: leaf.thumbprint,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            date_issued: now,
        };
        let certificate_id = if is_reissue {
            let id = self.next_certificate_id();
            self.certificates.insert(
                id,
                Certificate {
                    id,
                    order_id,
                    params: params.clone(),
                    date_created: now,
                    issued: None,
                    revoked: None,
                },
            );
            id
        } else {
            order.certificate_id
        };
        if let Some(certificate) = self.certificates.get_mut(&certificate_id) {
            certificate.params = params.clone();
            certificate.issued = Some(issued.clone());
        }
        let request_ids = match self.orders.get_mut(&order_id) {
            Some(order) => {
                if is_reissue {
                    order.certificate_ids.push(certificate_id);
                }
                order.certificate_id = certificate_id;
                order.params = params;
                order.reissue = None;
                order.status = OrderStatus::Issued;
                order.status_last_updated = now;
                order.issue_at = None;
                order.request_ids.clone()
            }
            None => Vec::new(),
        };
        for id in request_ids {
            if let Some(request) = self.requests.get_mut(&id) {
                if request.status == RequestStatus::Pending
                    && matches!(request.kind, RequestKind::NewRequest | RequestKind::Reissue)
                {
                    request.status = RequestStatus::Approved;
                    request.date_processed.get_or_insert(now);
                }
            }
        }
        self.counters.certificates_issued += 1;
        self.schedule(issued.not_after);
        Ok(certificate_id)
    }

    /// Revoke `certificate_id`; the order becomes `revoked` when it was its primary
    /// certificate.
    pub(crate) fn revoke_certificate(&mut self, certificate_id: u64, now: OffsetDateTime) {
        let Some(certificate) = self.certificates.get_mut(&certificate_id) else {
            return;
        };
        if certificate.issued.is_none() || certificate.revoked.is_some() {
            return;
        }
        certificate.revoked = Some(now);
        let order_id = certificate.order_id;
        if let Some(order) = self.orders.get_mut(&order_id) {
            if order.certificate_id == certificate_id {
                order.status = OrderStatus::Revoked;
                order.status_last_updated = now;
            }
        }
    }

    /// Revoke every certificate of the order.
    pub(crate) fn revoke_order(&mut self, order_id: u64, now: OffsetDateTime) {
        let ids = self
            .orders
            .get(&order_id)
            .map(|order| order.certificate_ids.clone())
            .unwrap_or_default();
        for id in ids {
            if let Some(certificate) = self.certificates.get_mut(&id) {
                if certificate.issued.is_some() && certificate.revoked.is_none() {
                    certificate.revoked = Some(now);
                }
            }
        }
        if let Some(order) = self.orders.get_mut(&order_id) {
            order.status = OrderStatus::Revoked;
            order.status_last_updated = now;
        }
    }

    /// The PEM chain of an issued certificate: leaf, intermediate, root (DER each).
    pub(crate) fn chain_der(&self, certificate: &Certificate) -> Option<[Vec<u8>; 3]> {
        let issued = certificate.issued.as_ref()?;
        let intermediate = self.ca.intermediates.get(issued.intermediate)?;
        Some([
            issued.leaf_der.clone(),
            intermediate.der.clone(),
            self.ca.root_der.clone(),
        ])
    }
}

/// Lowercase, without a trailing dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS name (optionally a `*.` wildcard) of LDH labels, at least two labels.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 || !bare.contains('.') {
        return false;
    }
    bare.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_name("a.example.com"));
        assert!(is_dns_name("*.example.com"));
        assert!(!is_dns_name("example"));
        assert!(!is_dns_name("a..example"));
        assert!(!is_dns_name("-a.example"));
        assert!(!is_dns_name("A.example"));
        assert!(!is_dns_name("*.*.example.com"));
        assert_eq!(normalize_name(" WWW.Example.com. "), "www.example.com");
        assert_eq!(Account::dcv_domain_name("*.www.example.com"), "example.com");
        assert_eq!(
            Account::dcv_domain_name("www.shop.example.com"),
            "shop.example.com"
        );
    }

    #[test]
    fn coverage() {
        let now = OffsetDateTime::now_utc();
        let domain = Domain {
            id: 1,
            name: "example.com".into(),
            organization_id: None,
            is_active: true,
            date_created: now,
            dcv_status: DcvStatus::Complete,
            dcv_method: "email".into(),
            validation_types: vec!["ov".into()],
            validated_until: Some(now + Duration::days(1)),
            dcv_approval: None,
            token: String::new(),
            token_expires: now,
        };
        assert!(domain.covers("example.com"));
        assert!(domain.covers("a.b.example.com"));
        assert!(domain.covers("*.example.com"));
        assert!(!domain.covers("badexample.com"));
        assert!(!domain.covers("com"));
        assert!(domain.is_validated(now));
        assert!(!domain.is_validated(now + Duration::days(2)));
    }
}
