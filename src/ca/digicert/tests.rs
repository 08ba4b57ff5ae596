use super::client::{has_reissue_request, pending_revoke_request};
use super::wire::{dcv_base, map_status, OrderInfo};
use super::*;

#[test]
fn secrets_never_print() {
    let secret = Secret::new("abc-very-secret");
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    let settings = DigicertSettings::new("http://127.0.0.1:1", secret);
    assert!(!format!("{settings:?}").contains("very-secret"));
}

#[test]
fn reissue_requests_are_found_by_tag_unless_rejected() {
    let order = serde_json::json!({
        "id": 7,
        "requests": [
            {"id": 1, "type": "new_request", "status": "approved", "comments": "certform cf-1.aa"},
            {"id": 2, "type": "reissue", "status": "rejected", "comments": "certform cf-1.bb"},
            {"id": 3, "type": "reissue", "status": "pending", "comments": "certform cf-1.cc"},
        ],
    });
    assert!(has_reissue_request(&order, "cf-1.cc"));
    assert!(!has_reissue_request(&order, "cf-1.bb"), "rejected");
    assert!(!has_reissue_request(&order, "cf-1.aa"), "not a reissue");
    assert!(!has_reissue_request(&order, "cf-1.c"), "exact tag only");
    assert!(!has_reissue_request(
        &serde_json::json!({"id": 7}),
        "cf-1.cc"
    ));
}

#[test]
fn a_pending_revoke_request_is_found_on_the_order() {
    let mut order = serde_json::json!({
        "id": 7,
        "requests": [
            {"id": 1, "type": "new_request", "status": "pending"},
            {"id": 2, "type": "revoke", "status": "rejected"},
        ],
    });
    assert_eq!(pending_revoke_request(&order), None);
    if let Some(requests) = order["requests"].as_array_mut() {
        requests.push(serde_json::json!({"id": 3, "type": "revoke", "status": "pending"}));
    }
    assert_eq!(pending_revoke_request(&order), Some(3));
}

#[test]
fn statuses_map_to_the_trait() {
    assert_eq!(map_status("needs_approval"), OrderStatus::Pending);
    assert_eq!(map_status("waiting_pickup"), OrderStatus::Pending);
    assert_eq!(map_status("reissue_pending"), OrderStatus::Pending);
    assert_eq!(map_status("canceled"), OrderStatus::Canceled);
    assert_eq!(dcv_base("*.www.example.com"), "example.com");
}

#[test]
fn lenient_order_parsing() {
    let value = json!({"id": "12", "status": "issued", "certificate": [], "organization": []});
    let info = OrderInfo::from_json(&value).expect("parses");
    assert_eq!(info.id, 12);
    assert_eq!(info.certificate_id, None);
}
