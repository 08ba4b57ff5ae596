//! The client against DigiCert's documented response examples (`tests/fixtures/digicert/`,
//! sources in `SOURCES.md`): every example an endpoint certform calls must parse into the wire
//! types with the values the documentation shows.

use serde_json::{json, Value};

use super::wire::{
    list, reason_text, DomainInfo, OrderInfo, OrganizationInfo, ProductInfo, RandomValue, UserInfo,
};
use crate::ca::Problem;
use crate::spec::RevocationReason;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

macro_rules! fixture {
    ($name:literal) => {
        fixture(include_str!(concat!(
            "../../../tests/fixtures/digicert/",
            $name
        )))
    };
}

#[test]
fn the_documented_product_info_says_ov_in_capitals_and_needs_an_organization() {
    let product = ProductInfo::from_json(&fixture!("product-info.json")).expect("parses");
    assert_eq!(product.name_id, "ssl_basic");
    assert_eq!(product.validation_type.as_deref(), Some("ov"));
    assert!(product.needs_organization());
    for (spelling, needs) in [("EV", true), ("ev", true), ("Ov", true), ("DV", false)] {
        let value = json!({"name_id": "p", "validation_type": spelling});
        let product = ProductInfo::from_json(&value).expect("parses");
        assert_eq!(product.needs_organization(), needs, "{spelling}");
    }
    let plain = ProductInfo::from_json(&json!({"name_id": "p"})).expect("parses");
    assert!(!plain.needs_organization());
}

#[test]
fn the_documented_product_details_and_list_parse() {
    let plus = ProductInfo::from_json(&fixture!("product-info-ssl-plus.json")).expect("parses");
    assert_eq!(plus.allowed_validity_years, vec![1, 2]);
    assert_eq!(plus.signature_hashes, vec!["sha256", "sha384", "sha512"]);
    assert_eq!(plus.default_signature_hash.as_deref(), Some("sha256"));
    assert!(plus.custom_expiration_date_allowed);
    assert_eq!(plus.validation_type, None);
    let value = fixture!("product-list.json");
    let products: Vec<ProductInfo> = list(&value, "products")
        .iter()
        .filter_map(ProductInfo::from_json)
        .collect();
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].name_id, "ssl_plus");
    assert_eq!(products[0].name, "Standard SSL");
}

#[test]
fn a_documented_domain_listing_with_active_validations_is_pre_validated() {
    let value = fixture!("domain-list.json");
    let domain = DomainInfo::from_json(&list(&value, "domains")[0]).expect("parses");
    assert_eq!(domain.id, 12345);
    assert_eq!(domain.name, "example.org");
    assert_eq!(domain.dcv_status, "complete");
    assert_eq!(domain.validated, vec!["ev", "ov"]);
    // The same listing with its validations pending or expired needs DCV.
    for status in ["pending", "expired"] {
        let mut pending = list(&value, "domains")[0].clone();
        for validation in pending["validations"].as_array_mut().expect("array") {
            validation["status"] = json!(status);
        }
        let domain = DomainInfo::from_json(&pending).expect("parses");
        assert_eq!(domain.dcv_status, "pending", "{status}");
        assert!(domain.validated.is_empty());
    }
}

#[test]
fn where_a_validation_carries_dcv_status_that_field_decides() {
    let validations = fixture!("domain-validation.json")["validations"].clone();
    let domain =
        DomainInfo::from_json(&json!({"id": 1, "name": "example.com", "validations": validations}))
            .expect("parses");
    assert_eq!(domain.dcv_status, "complete");
    assert_eq!(domain.validated, vec!["ev"]);
    let old = json!({"id": 1, "name": "example.com",
        "validations": [{"type": "ov", "status": "active", "dcv_status": "pending"}]});
    assert_eq!(
        DomainInfo::from_json(&old).expect("parses").dcv_status,
        "pending"
    );
    let deprecated = json!({"id": 1, "name": "example.com", "status": "active"});
    assert_eq!(
        DomainInfo::from_json(&deprecated)
            .expect("parses")
            .dcv_status,
        "complete"
    );
}

#[test]
fn the_documented_order_info_and_list_entry_parse() {
    let info = OrderInfo::from_json(&fixture!("order-info.json")).expect("parses");
    assert_eq!(info.id, 123456);
    assert_eq!(info.status, "needs_approval");
    assert_eq!(info.common_name, "example.com");
    assert_eq!(
        info.dns_names,
        vec!["example.com", "example2.com", "example3.com"]
    );
    assert_eq!(info.organization, Some(112233));
    assert_eq!(info.signature_hash.as_deref(), Some("sha256"));
    assert_eq!(info.server_platform, Some(-1));
    assert_eq!(info.certificate_id, None, "not issued yet");
    let value = fixture!("order-list.json");
    let entry = OrderInfo::from_json(&list(&value, "orders")[0]).expect("parses");
    assert_eq!(entry.id, 123456);
    assert_eq!(entry.certificate_id, Some(104));
    assert_eq!(entry.status, "pending");
    assert_eq!(entry.product.as_deref(), Some("ssl_plus"));
    assert_eq!(entry.organization, Some(112233));
}

#[test]
fn the_documented_user_and_organizations_parse() {
    let user = UserInfo::from_json(&fixture!("user-me.json"));
    assert_eq!(user.id, 125039);
    assert_eq!(user.username, "john.smith@digicert.com");
    assert_eq!(user.account_id, Some(123654));
    assert!(user.is_admin());
    let plain = fixture!("organization-list.json");
    let organization =
        OrganizationInfo::from_json(&list(&plain, "organizations")[0]).expect("parses");
    assert_eq!(
        (organization.id, organization.status.as_str()),
        (1, "active")
    );
    assert!(organization.validated.is_empty());
    let validated = fixture!("organization-list-validations.json");
    let organization =
        OrganizationInfo::from_json(&list(&validated, "organizations")[0]).expect("parses");
    assert_eq!(organization.id, 112233);
    assert_eq!(organization.validated, vec!["ov"]);
}

#[test]
fn the_order_random_value_answer_parses() {
    let documented = RandomValue::from_json(&fixture!("dcv-random-value.json")).expect("parses");
    assert_eq!(documented.value, "<random value>");
    assert_eq!(
        documented.expires, None,
        "the page's placeholder is no date"
    );
    let real = json!({"dcv_random_value": "abc123", "expiration_date": "2026-12-31T10:00:00Z"});
    let real = RandomValue::from_json(&real).expect("parses");
    assert_eq!(
        real.expires.map(|at| at.unix_timestamp()),
        Some(1_798_711_200)
    );
    assert_eq!(
        RandomValue::from_json(&json!({"dcv_random_value": ""})),
        None
    );
    assert_eq!(RandomValue::from_json(&json!({})), None);
}

#[test]
fn the_documented_dcv_errors_parse() {
    for (text, code) in [
        (
            include_str!("../../../tests/fixtures/digicert/error-invalid-dns-txt.json"),
            "invalid_dns_txt",
        ),
        (
            include_str!("../../../tests/fixtures/digicert/error-file-random-value-not-found.json"),
            "file_random_value_not_found",
        ),
    ] {
        assert!(Problem::from_digicert_json(text.as_bytes()).has_digicert_code(code));
    }
}

#[test]
fn revocation_reasons_go_out_in_snake_case() {
    assert_eq!(
        reason_text(RevocationReason::KeyCompromise),
        "key_compromise"
    );
    assert_eq!(
        reason_text(RevocationReason::AffiliationChanged),
        "affiliation_changed"
    );
    assert_eq!(
        reason_text(RevocationReason::CessationOfOperation),
        "cessation_of_operation"
    );
    assert_eq!(reason_text(RevocationReason::Superseded), "superseded");
    assert_eq!(reason_text(RevocationReason::Unspecified), "unspecified");
}
