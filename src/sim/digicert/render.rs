//! JSON views of the account, in CertCentral's field names and formats (ISO 8601 with offset
//! for timestamps, `yyyy-MM-dd` for validity dates, `\r\n` in PEM).

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::model::{
    date, iso, spaced, Account, Certificate, Domain, Order, OrderStatus, Organization, Request,
    User, Validity,
};
use super::seed::{DcvStatus, LetterCase, ProductSeed, Role, ServerPlatform, ValidationStatus};

/// PEM with `\r\n` line endings, as CertCentral sends it.
pub(crate) fn pem_crlf(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::CRLF),
    )
}

fn days_remaining(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_days().max(0)
}

fn platform(product: Option<&ProductSeed>, id: i64) -> Value {
    let found: Option<&ServerPlatform> =
        product.and_then(|product| product.server_platforms.iter().find(|p| p.id == id));
    match found {
        Some(platform) => json!({
            "id": platform.id,
            "name": platform.name,
            "install_url": platform.install_url,
            "csr_url": platform.csr_url,
        }),
        None => {
            json!({"id": id, "name": if id == -1 { "OTHER" } else { "" }, "install_url": "", "csr_url": ""})
        }
    }
}

fn validity_json(validity: &Validity) -> Value {
    match validity {
        Validity::Years(years) => json!({"years": years}),
        Validity::Days(days) => json!({"days": days}),
        Validity::Custom(day) => json!({"custom_expiration_date": day.to_string()}),
    }
}

fn container(account: &Account, id: u64) -> Value {
    json!({"id": id, "name": account.settings.account.container_name})
}

fn user_brief(account: &Account, id: u64) -> Value {
    match account.users.get(&id) {
        Some(user) => json!({
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
        }),
        None => json!({"id": id}),
    }
}

fn organization_brief(organization: &Organization) -> Value {
    json!({
        "id": organization.id,
        "name": organization.name,
        "assumed_name": organization.assumed_name,
        "display_name": organization.display_name,
        "city": organization.city,
        "state": organization.state,
        "country": organization.country,
    })
}

fn product_brief(product: Option<&ProductSeed>, name_id: &str) -> Value {
    match product {
        Some(product) => {
            let (name, description) = product.validation_type.label();
            json!({
                "name_id": product.name_id,
                "name": product.name,
                "type": product.r#type,
                "validation_type": product.validation_type.as_str(),
                "validation_name": name,
                "validation_description": description,
            })
        }
        None => json!({"name_id": name_id}),
    }
}

/// `GET /order/certificate/{id}`.
pub(crate) fn order_detail(account: &Account, order: &Order, now: OffsetDateTime) -> Value {
    let product = account.product(&order.product);
    let mut certificate = Map::new();
    let current = account.certificates.get(&order.certificate_id);
    let params = &order.params;
    certificate.insert("id".into(), json!(order.certificate_id));
    certificate.insert("common_name".into(), json!(params.common_name));
    certificate.insert("dns_names".into(), json!(params.dns_names));
    certificate.insert(
        "date_created".into(),
        json!(iso(current.map_or(order.date_created, |c| c.date_created))),
    );
    certificate.insert("csr".into(), json!(params.csr_text));
    if let Some(id) = order.organization_id {
        certificate.insert("organization".into(), json!({"id": id}));
    }
    certificate.insert(
        "organization_units".into(),
        json!(params.organization_units),
    );
    certificate.insert(
        "server_platform".into(),
        platform(product, params.server_platform_id),
    );
    certificate.insert("signature_hash".into(), json!(params.signature_hash));
    certificate.insert("key_size".into(), json!(params.csr.key_size));
    certificate.insert("cert_validity".into(), validity_json(&order.cert_validity));
    if let Some(issued) = current.and_then(|c| c.issued.as_ref()) {
        certificate.insert("thumbprint".into(), json!(issued.thumbprint));
        certificate.insert("serial_number".into(), json!(issued.serial));
        certificate.insert("date_issued".into(), json!(iso(issued.date_issued)));
        certificate.insert("valid_from".into(), json!(date(issued.not_before)));
        certificate.insert("valid_till".into(), json!(date(issued.not_after)));
        certificate.insert(
            "days_remaining".into(),
            json!(days_remaining(issued.not_after, now)),
        );
        if let Some(ica) = account.ca.intermediates.get(issued.intermediate) {
            certificate.insert("ca_cert".into(), json!({"id": ica.id, "name": ica.name}));
        }
    } else if let Some(ica) = account
        .ca
        .intermediate(&params.signature_hash, params.ca_cert_id.as_deref())
    {
        certificate.insert("ca_cert".into(), json!({"id": ica.id, "name": ica.name}));
    }
    if let Some(profile) = &params.profile_option {
        certificate.insert("profile_option".into(), json!(profile));
    }

    let mut out = Map::new();
    out.insert("id".into(), json!(order.id));
    out.insert("certificate".into(), Value::Object(certificate));
    out.insert("status".into(), json!(order.status.as_str()));
    out.insert(
        "is_renewal".into(),
        json!(order.renewal_of_order_id.is_some()),
    );
    if let Some(renewal_of) = order.renewal_of_order_id {
        out.insert("renewal_of_order_id".into(), json!(renewal_of));
    }
    out.insert("is_renewed".into(), json!(order.renewed_order_id.is_some()));
    out.insert(
        "renewed_order_id".into(),
        json!(order.renewed_order_id.unwrap_or(0)),
    );
    out.insert("date_created".into(), json!(iso(order.date_created)));
    out.insert(
        "order_valid_from".into(),
        json!(date(order.order_valid_from)),
    );
    out.insert(
        "order_valid_till".into(),
        json!(date(order.order_valid_till)),
    );
    if let Some(years) = order.validity_years {
        out.insert("validity_years".into(), json!(years));
    }
    match order
        .organization_id
        .and_then(|id| account.organizations.get(&id))
    {
        Some(organization) => {
            out.insert("organization".into(), organization_brief(organization));
        }
        None => {
            out.insert("organization".into(), json!({}));
        }
    }
    out.insert(
        "disable_renewal_notifications".into(),
        json!(order.disable_renewal_notifications),
    );
    out.insert("disable_ct".into(), json!(order.disable_ct));
    out.insert("container".into(), container(account, order.container_id));
    out.insert("product".into(), product_brief(product, &order.product));
    out.insert("user".into(), user_brief(account, order.user_id));
    let requests: Vec<Value> = order
        .request_ids
        .iter()
        .filter_map(|id| account.requests.get(id))
        .map(|request| {
            json!({
                "id": request.id,
                "date": iso(request.date),
                "type": request.kind.as_str(),
                "status": request.status.as_str(),
                "comments": request.comments,
            })
        })
        .collect();
    out.insert("requests".into(), json!(requests));
    out.insert("dcv_method".into(), json!(order.dcv_method));
    if account.settings.quirks.order_info_dcv_random_value {
        if let Some(value) = &order.dcv_random_value {
            out.insert("dcv_random_value".into(), json!(value));
        }
    }
    out.insert("notes".into(), json!([]));
    out.insert("payment_method".into(), json!(order.payment_method));
    out.insert("price".into(), json!(order.price));
    out.insert(
        "allow_duplicates".into(),
        json!(product.is_some_and(|p| p.duplicates_allowed)),
    );
    out.insert("has_duplicates".into(), json!(false));
    if let Some(alternative) = &order.alternative_order_id {
        out.insert("alternative_order_id".into(), json!(alternative));
    }
    if !order.custom_fields.is_empty() {
        let fields: Vec<Value> = order
            .custom_fields
            .iter()
            .map(|(id, value)| json!({"metadata_id": id, "value": value}))
            .collect();
        out.insert("custom_fields".into(), json!(fields));
    }
    if account.settings.quirks.order_duplicate_counts {
        let reissues = order.certificate_ids.len().saturating_sub(1);
        out.insert("duplicates_count".into(), json!(0));
        out.insert("reissues_count".into(), json!(reissues));
        out.insert("has_reissues".into(), json!(reissues > 0));
    }
    Value::Object(out)
}

/// One entry of `GET /order/certificate`.
pub(crate) fn order_summary(account: &Account, order: &Order, now: OffsetDateTime) -> Value {
    let product = account.product(&order.product);
    let mut certificate = Map::new();
    certificate.insert("id".into(), json!(order.certificate_id));
    certificate.insert("common_name".into(), json!(order.params.common_name));
    certificate.insert("dns_names".into(), json!(order.params.dns_names));
    certificate.insert("signature_hash".into(), json!(order.params.signature_hash));
    if let Some(issued) = account
        .certificates
        .get(&order.certificate_id)
        .and_then(|c| c.issued.as_ref())
    {
        certificate.insert("valid_till".into(), json!(date(issued.not_after)));
        certificate.insert(
            "days_remaining".into(),
            json!(days_remaining(issued.not_after, now)),
        );
    }
    let organization = order
        .organization_id
        .and_then(|id| account.organizations.get(&id))
        .map_or_else(|| json!({}), |o| json!({"id": o.id, "name": o.name}));
    let mut out = Map::new();
    out.insert("id".into(), json!(order.id));
    out.insert("certificate".into(), Value::Object(certificate));
    out.insert("status".into(), json!(order.status.as_str()));
    out.insert("is_renewed".into(), json!(order.renewed_order_id.is_some()));
    out.insert("date_created".into(), json!(iso(order.date_created)));
    out.insert("organization".into(), organization);
    if let Some(years) = order.validity_years {
        out.insert("validity_years".into(), json!(years));
    }
    out.insert(
        "disable_renewal_notifications".into(),
        json!(order.disable_renewal_notifications),
    );
    out.insert("container".into(), container(account, order.container_id));
    out.insert(
        "product".into(),
        match product {
            Some(p) => json!({"name_id": p.name_id, "name": p.name, "type": p.r#type}),
            None => json!({"name_id": order.product}),
        },
    );
    out.insert("price".into(), json!(order.price));
    out.insert("has_duplicates".into(), json!(false));
    out.insert("product_name_id".into(), json!(order.product));
    Value::Object(out)
}

/// `certificate_chain` of create and reissue responses: leaf, intermediate, root.
pub(crate) fn certificate_chain(account: &Account, certificate: &Certificate) -> Value {
    let Some(chain) = account.chain_der(certificate) else {
        return json!([]);
    };
    let names = [
        certificate.params.common_name.clone(),
        certificate
            .issued
            .as_ref()
            .and_then(|issued| account.ca.intermediates.get(issued.intermediate))
            .map(|ica| ica.name.clone())
            .unwrap_or_default(),
        account.ca.root_name.clone(),
    ];
    let entries: Vec<Value> = chain
        .iter()
        .zip(names)
        .map(|(der, name)| json!({"subject_common_name": name, "pem": pem_crlf(der)}))
        .collect();
    json!(entries)
}

/// A request object.
pub(crate) fn request(account: &Account, request: &Request) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(request.id));
    out.insert("date".into(), json!(iso(request.date)));
    out.insert("type".into(), json!(request.kind.as_str()));
    out.insert("status".into(), json!(request.status.as_str()));
    out.insert(
        "requester".into(),
        user_brief(account, request.requester_id),
    );
    out.insert("comments".into(), json!(request.comments));
    if let Some(processor) = request.processor_id {
        out.insert("processor".into(), user_brief(account, processor));
        out.insert("processor_comment".into(), json!(request.processor_comment));
    }
    if let Some(at) = request.date_processed {
        out.insert("date_processed".into(), json!(iso(at)));
    }
    if let Some(reason) = &request.revocation_reason {
        out.insert("revocation_reason".into(), json!(reason));
    }
    let mut order = Map::new();
    order.insert("id".into(), json!(request.order_id));
    if let Some(found) = account.orders.get(&request.order_id) {
        order.insert("status".into(), json!(found.status.as_str()));
        order.insert(
            "certificate".into(),
            json!({
                "id": request.certificate_id.unwrap_or(found.certificate_id),
                "common_name": found.params.common_name,
            }),
        );
    }
    out.insert("order".into(), Value::Object(order));
    Value::Object(out)
}

fn access_role(role: Role) -> Value {
    match role {
        Role::Admin => json!({"id": 1, "name": "Administrator"}),
        Role::Orders => json!({"id": 100, "name": "Orders"}),
        Role::OrdersDomainsOrganizations => {
            json!({"id": 101, "name": "Orders, Domains, Organizations"})
        }
        Role::ViewOnly => json!({"id": 102, "name": "View Only"}),
        Role::UserManagement => json!({"id": 103, "name": "User Management"}),
    }
}

/// `GET /user/me` and the entries of `GET /user`.
pub(crate) fn user(account: &Account, user: &User, role: Role, now: OffsetDateTime) -> Value {
    let settings = &account.settings.account;
    json!({
        "id": user.id,
        "username": user.username,
        "account_id": settings.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "job_title": "",
        "telephone": "",
        "status": "active",
        "last_login_date": spaced(now),
        "container": {
            "id": settings.container_id,
            "public_id": format!("sim{}", settings.container_id),
            "name": settings.container_name,
            "parent_id": 0,
            "template_id": 1,
            "ekey": "",
            "has_logo": false,
            "is_active": true,
        },
        "access_roles": [access_role(role)],
        "is_cert_central": true,
        "is_enterprise": false,
        "is_saml_sso_only": false,
        "type": "standard",
        "has_container_assignments": false,
        "container_visibility": [],
    })
}

/// An entry of `GET /product`.
pub(crate) fn product_summary(product: &ProductSeed, container_id: u64) -> Value {
    json!({
        "group_name": product.group_name,
        "name_id": product.name_id,
        "name": product.name,
        "type": product.r#type,
        "allowed_container_ids": [container_id],
        "allowed_validity_years": product.allowed_validity_years,
        "signature_hash_types": hash_types(product),
    })
}

/// `signature_hash_types` of a product: `{allowed_hash_types: [{id, name}], default_hash_type_id}`.
fn hash_types(product: &ProductSeed) -> Value {
    let hashes: Vec<Value> = product
        .signature_hashes
        .iter()
        .map(|hash| json!({"id": hash, "name": hash.replace("sha", "SHA-")}))
        .collect();
    json!({
        "allowed_hash_types": hashes,
        "default_hash_type_id": product.default_signature_hash,
    })
}

/// `GET /product/{name_id}`.
pub(crate) fn product_detail(product: &ProductSeed, case: LetterCase) -> Value {
    let platforms: Vec<Value> = product
        .server_platforms
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "install_url": p.install_url, "csr_url": p.csr_url}))
        .collect();
    let (validation_name, validation_description) = product.validation_type.label();
    json!({
        "group_name": product.group_name,
        "name_id": product.name_id,
        "name": product.name,
        "type": product.r#type,
        "validation_type": match case {
            LetterCase::Upper => product.validation_type.as_str().to_ascii_uppercase(),
            LetterCase::Lower => product.validation_type.as_str().to_string(),
        },
        "validation_name": validation_name,
        "validation_description": validation_description,
        "duplicates_allowed": product.duplicates_allowed,
        "allowed_validity_years": product.allowed_validity_years,
        "signature_hash_types": hash_types(product),
        "additional_dns_names_allowed": product.additional_dns_names_allowed,
        "increased_compatibility_allowed": false,
        "custom_expiration_date_allowed": product.custom_expiration_date_allowed,
        "csr_required": product.csr_required,
        "allow_auto_renew": product.allow_auto_renew,
        "server_platforms": platforms,
        "license_agreement": "",
    })
}

fn validation_status(status: ValidationStatus) -> &'static str {
    match status {
        ValidationStatus::Active => "active",
        ValidationStatus::Pending => "pending",
        ValidationStatus::Expired => "expired",
    }
}

fn validation_label(kind: &str) -> (String, String) {
    match kind {
        "ov" => ("OV".into(), "Normal Organization Validation".into()),
        "ev" => ("EV".into(), "Extended Organization Validation (EV)".into()),
        "cs" => ("CS".into(), "Code Signing Organization Validation".into()),
        "ev_cs" => (
            "EV CS".into(),
            "Code Signing Organization Extended Validation (EV CS)".into(),
        ),
        other => (other.to_uppercase(), String::new()),
    }
}

/// Validations of an organization.
pub(crate) fn organization_validations(organization: &Organization, now: OffsetDateTime) -> Value {
    let validations: Vec<Value> = organization
        .validations
        .iter()
        .map(|validation| {
            let (name, description) = validation_label(&validation.kind);
            let status = if validation.validated_until <= now {
                ValidationStatus::Expired
            } else {
                validation.status
            };
            json!({
                "type": validation.kind,
                "name": name,
                "description": description,
                "date_created": iso(validation.date_created),
                "validated_until": iso(validation.validated_until),
                "status": validation_status(status),
                "verified_users": [],
            })
        })
        .collect();
    json!(validations)
}

/// An organization.
pub(crate) fn organization(
    account: &Account,
    organization: &Organization,
    include_validation: bool,
    now: OffsetDateTime,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(organization.id));
    let validated = organization
        .validations
        .iter()
        .any(|v| v.status == ValidationStatus::Active && v.validated_until > now);
    out.insert(
        "status".into(),
        json!(if !organization.is_active {
            "inactive"
        } else if validated {
            "active"
        } else {
            "pending"
        }),
    );
    out.insert("name".into(), json!(organization.name));
    out.insert("assumed_name".into(), json!(organization.assumed_name));
    out.insert("display_name".into(), json!(organization.display_name));
    out.insert("is_active".into(), json!(organization.is_active));
    out.insert("address".into(), json!(organization.address));
    out.insert("address2".into(), json!(organization.address2));
    out.insert("zip".into(), json!(organization.zip));
    out.insert("city".into(), json!(organization.city));
    out.insert("state".into(), json!(organization.state));
    out.insert("country".into(), json!(organization.country));
    out.insert("telephone".into(), json!(organization.telephone));
    out.insert(
        "container".into(),
        json!({
            "id": account.settings.account.container_id,
            "parent_id": 0,
            "name": account.settings.account.container_name,
            "is_active": true,
        }),
    );
    if include_validation {
        out.insert(
            "validations".into(),
            organization_validations(organization, now),
        );
        out.insert("ev_approvers".into(), json!([]));
    }
    Value::Object(out)
}

/// A domain.
pub(crate) fn domain(
    account: &Account,
    domain: &Domain,
    include_validation: bool,
    include_dcv: bool,
    detail: bool,
    now: OffsetDateTime,
) -> Value {
    let validated = domain.is_validated(now);
    let mut out = Map::new();
    out.insert("id".into(), json!(domain.id));
    out.insert("is_active".into(), json!(domain.is_active));
    out.insert("name".into(), json!(domain.name));
    out.insert("date_created".into(), json!(iso(domain.date_created)));
    // Returned once a DCV check passed (listing and detail alike).
    if let Some(at) = domain.dcv_approval {
        out.insert("dcv_approval_datetime".into(), json!(iso(at)));
    }
    if detail {
        out.insert(
            "status".into(),
            json!(if validated { "active" } else { "pending" }),
        );
        out.insert("is_pending_validation".into(), json!(!validated));
        if let Some(until) = domain.validated_until {
            out.insert("dcv_expiration_datetime".into(), json!(iso(until)));
        }
    }
    let organization = domain
        .organization_id
        .and_then(|id| account.organizations.get(&id))
        .map_or_else(
            || json!({}),
            |o| {
                json!({
                    "id": o.id,
                    "status": if o.is_active { "active" } else { "inactive" },
                    "name": o.name,
                    "assumed_name": o.assumed_name,
                    "display_name": o.display_name,
                    "is_active": if o.is_active { "1" } else { "0" },
                })
            },
        );
    out.insert("organization".into(), organization);
    if include_validation {
        let dcv_status = match domain.dcv_status {
            DcvStatus::Complete if validated => "complete",
            _ => "pending",
        };
        let validations: Vec<Value> = domain
            .validation_types
            .iter()
            .map(|kind| {
                let (name, description) = validation_label(kind);
                let status = match (domain.dcv_status, domain.validated_until) {
                    (DcvStatus::Complete, Some(until)) if until > now => "active",
                    (DcvStatus::Complete, Some(_)) => "expired",
                    _ => "pending",
                };
                let mut entry = json!({
                    "type": kind,
                    "name": name,
                    "description": description,
                    "date_created": iso(domain.dcv_approval.unwrap_or(domain.date_created)),
                    "status": status,
                });
                // The documented listing has no `dcv_status`; domain info has it.
                if detail || account.settings.quirks.domain_list_dcv_status {
                    if let Some(map) = entry.as_object_mut() {
                        map.insert("dcv_status".into(), json!(dcv_status));
                    }
                }
                if let (Some(until), Some(map)) = (domain.validated_until, entry.as_object_mut()) {
                    map.insert("validated_until".into(), json!(iso(until)));
                }
                entry
            })
            .collect();
        out.insert("validations".into(), json!(validations));
    }
    out.insert("dcv_method".into(), json!(domain.dcv_method));
    if include_dcv && !validated {
        out.insert(
            "dcv_token".into(),
            json!({
                "token": domain.token,
                "status": "pending",
                "expiration_date": iso(domain.token_expires),
            }),
        );
    }
    out.insert(
        "container".into(),
        json!({
            "id": account.settings.account.container_id,
            "name": account.settings.account.container_name,
        }),
    );
    Value::Object(out)
}

/// Whether an order's status matches a `filters[status]` value (`issued` also matches
/// `expired`, as on CertCentral).
pub(crate) fn status_matches(status: OrderStatus, wanted: &str) -> bool {
    status.as_str() == wanted || (wanted == "issued" && status == OrderStatus::Expired)
}

/// Turn every empty object into `[]` (the `empty_objects_as_arrays` quirk).
pub(crate) fn empty_objects_as_arrays(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                if child.as_object().is_some_and(Map::is_empty) {
                    *child = json!([]);
                } else {
                    empty_objects_as_arrays(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(empty_objects_as_arrays),
        _ => {}
    }
}
