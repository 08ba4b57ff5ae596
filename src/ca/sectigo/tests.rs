//! Wire parsing and pure rules of the Sectigo client. The example values are those of
//! Sectigo's 25.5 REST API reference (D25) as quoted in `../shared/reference/sectigo-check.md`;
//! the documented fixtures in `tests/fixtures/sectigo/` are parsed by `fixtures_parse`.

use serde_json::json;

use super::wire::*;
use super::*;
use crate::spec::KeySpec;

#[test]
fn secrets_never_print() {
    let settings = SectigoSettings::new(
        "http://127.0.0.1:1/api/",
        "acme",
        "admin",
        Secret::new("very-secret-password"),
    );
    let shown = format!("{settings:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert_eq!(settings.url, "http://127.0.0.1:1/api");
    let header = http::HeaderName::from_static("password");
    assert!(crate::http::is_secret_header(&header));
}

#[test]
fn enroll_answer_and_renewal_answer_give_the_record_id() {
    // D25 `#_request_ssl_certificate` and `#_renew_ssl_certificate_by_id`.
    let enrolled = json!({"sslId": 55, "renewId": "gu03sW6WENt7GTvDTuOP"});
    assert_eq!(client::answer_id(&enrolled), Some(55));
    assert_eq!(client::answer_id(&json!({"sslId": 74})), Some(74));
    assert_eq!(client::answer_id(&json!({})), None);
}

#[test]
fn details_parse_both_date_spellings_and_the_documented_serial() {
    // D25 `#_get_ssl_certificate_details_http_response`: `MM/dd/yyyy` dates, a colon-separated
    // serial; OAS: ISO dates.
    let d25 = json!({
        "commonName": "ccmqa.com", "sslId": 58, "id": 58, "orgId": 3, "status": "Issued",
        "certType": {"id": 224, "name": "OV Multi-Domain", "terms": [365]},
        "term": 365, "comments": "renewed yearly\ncertform cf-00aa",
        "requested": "05/21/2025", "expires": "05/21/2026",
        "serialNumber": "00:0::11::2:2::33", "keyType": "RSA - 2048",
        "subjectAlternativeNames": ["ccmqa.com", "www.ccmqa.com"], "renewed": false
    });
    let details = Details::from_json(&d25).expect("parses");
    assert_eq!(details.id, 58);
    assert_eq!(map_status(&details.status), OrderStatus::Issued);
    assert_eq!(details.profile_id, Some(224));
    assert_eq!(details.org_id, Some(3));
    assert_eq!(details.term, Some(365));
    assert_eq!(
        details.expires.map(|d| d.date().to_string()),
        Some("2026-05-21".to_string())
    );
    assert_eq!(details.serial, Some(Serial::parse("00:0::11::2:2::33")));
    assert_eq!(details.names, ["ccmqa.com", "www.ccmqa.com"]);
    assert!(has_marker(&details.comments, "cf-00aa"));
    assert!(!has_marker(&details.comments, "cf-00a"));

    let oas = json!({"id": "9", "status": "SA Approved", "expires": "2026-05-21T12:24:27.916+00:00",
        "subjAltNames": "a.example, b.example", "certType": 7});
    let details = Details::from_json(&oas).expect("parses");
    assert_eq!(details.id, 9);
    assert_eq!(details.profile_id, Some(7));
    assert_eq!(details.names, ["a.example", "b.example"]);
    assert_eq!(map_status(&details.status), OrderStatus::Pending);
    assert_eq!(
        details.expires.map(|d| d.time().hour()),
        Some(12),
        "ISO with offset and milliseconds"
    );
    // A list summary (`{"sslId":58,"commonName":"ccmqa.com"}`) parses with no status.
    let summary =
        Details::from_json(&json!({"sslId": 58, "commonName": "ccmqa.com"})).expect("parses");
    assert_eq!(summary.id, 58);
}

#[test]
fn dates_in_every_documented_spelling() {
    for (text, day) in [
        ("05/21/2026", "2026-05-21"),
        ("2026-05-21", "2026-05-21"),
        ("2025-05-21 12:24:26", "2025-05-21"),
        ("2025-05-21T12:24:27Z", "2025-05-21"),
        ("2025-05-21T12:24:27.916+00:00", "2025-05-21"),
        ("2025-05-21T12:24:27+0000", "2025-05-21"),
    ] {
        let parsed = parse_date(text).unwrap_or_else(|| panic!("{text} parses"));
        assert_eq!(parsed.date().to_string(), day, "{text}");
    }
    assert_eq!(parse_date(""), None);
    assert_eq!(parse_date("soon"), None);
    // A plain date is through the end of that day.
    assert_eq!(parse_date("05/21/2026").map(|d| d.hour()), Some(23));
}

#[test]
fn every_documented_status_maps() {
    for (status, expected) in [
        ("Requested", OrderStatus::Pending),
        ("Approved", OrderStatus::Pending),
        ("SAApproved", OrderStatus::Pending),
        ("SA Approved", OrderStatus::Pending),
        ("Applied", OrderStatus::Pending),
        ("Init", OrderStatus::Pending),
        ("Issued", OrderStatus::Issued),
        ("Revoked", OrderStatus::Revoked),
        ("Expired", OrderStatus::Expired),
        ("Declined", OrderStatus::Canceled),
        ("Rejected", OrderStatus::Rejected),
        ("Invalid", OrderStatus::Rejected),
        ("Replaced", OrderStatus::Pending),
        ("Something New", OrderStatus::Pending),
    ] {
        assert_eq!(map_status(status), expected, "{status}");
    }
    assert!(awaits_approval("Requested"));
    assert!(!awaits_approval("Applied"));
    assert_eq!(pending_detail("Requested"), "awaiting approval in SCM");
}

#[test]
fn error_bodies_and_codes() {
    // D25 `#overview-errors`: the 401 example.
    assert_eq!(
        error_body(br#"{"code":-16,"description":"Unknown user"}"#),
        Some((-16, "Unknown user".to_string()))
    );
    assert_eq!(
        error_body(br#"{"code":"-183","description":"Certificate is not collectable."}"#),
        Some((-183, "Certificate is not collectable.".to_string()))
    );
    assert_eq!(error_body(b"<html>"), None);
    assert!(NOT_YET_CODES.contains(&-183));
    assert!(NOT_YET_CODES.contains(&-1400));
    assert!(CREDENTIAL_CODES.contains(&-970));
    assert!(FORBIDDEN_CODES.contains(&-3));
}

#[test]
fn hints_name_the_failure() {
    let error = |status: u16, code: i64| {
        CaError::new(ErrorClass::Auth, "x")
            .with_status(status)
            .with_problem(Problem::Sectigo {
                code,
                description: String::new(),
            })
    };
    let unknown = error(401, -16).hint().unwrap_or_default();
    assert!(unknown.contains("customer_uri"), "{unknown}");
    let password = error(401, -970).hint().unwrap_or_default();
    assert!(password.contains("`password`"), "{password}");
    let role = error(400, -3).hint().unwrap_or_default();
    assert!(role.contains("RAO"), "{role}");
    assert_eq!(error(400, -999).hint(), None);
}

#[test]
fn profiles_parse_and_check_keys() {
    // D25 `#_list_ssl_certificate_profiles_http_response`: `keyTypes` `{"RSA":[...]}`.
    let value = json!([
        {"id": 224, "name": "OV Multi-Domain", "description": "d", "terms": [365, 730],
         "keyTypes": {"RSA": ["1024", "2048", "4096"]}, "useSecondaryOrgName": false},
        {"id": 225, "name": "EC only", "terms": ["365"], "keyTypes": {"EC": ["P-256", "P-384"]}},
        {"id": 226, "name": "Any key", "terms": [365]}
    ]);
    let profiles: Vec<Profile> = items(&value)
        .iter()
        .filter_map(Profile::from_json)
        .collect();
    assert_eq!(profiles.len(), 3);
    assert_eq!(profiles[0].terms, [365, 730]);
    assert_eq!(profiles[1].terms, [365]);
    assert!(profiles[0].allows_key(&KeySpec::Rsa(2048)));
    assert!(!profiles[0].allows_key(&KeySpec::Rsa(3072)));
    assert!(!profiles[0].allows_key(&KeySpec::Ecdsa(256)));
    assert!(profiles[1].allows_key(&KeySpec::Ecdsa(384)));
    assert!(!profiles[1].allows_key(&KeySpec::Rsa(2048)));
    assert!(profiles[2].allows_key(&KeySpec::Ed25519));
    assert_eq!(profiles[0].describe_keys(), "RSA 1024/2048/4096");
}

#[test]
fn terms_come_from_the_profile() {
    let profile = Profile {
        id: 1,
        name: "OV".into(),
        description: String::new(),
        terms: vec![365, 730],
        key_types: Vec::new(),
    };
    assert_eq!(term_for(Some(730), Validity::Days(90), &profile), Ok(730));
    let refused = term_for(Some(90), Validity::Days(90), &profile).unwrap_err();
    assert!(refused.contains("365, 730"), "{refused}");
    assert_eq!(term_for(None, Validity::Days(730), &profile), Ok(730));
    assert_eq!(term_for(None, Validity::Years(1), &profile), Ok(365));
    assert_eq!(term_for(None, Validity::Days(90), &profile), Ok(365));
    let empty = Profile {
        terms: Vec::new(),
        ..profile
    };
    assert!(term_for(None, Validity::Days(90), &empty).is_err());
    assert_eq!(term_for(Some(42), Validity::Days(90), &empty), Ok(42));
}

#[test]
fn custom_fields_are_typed() {
    let fields: Vec<CustomField> = items(&json!([
        {"id": 1, "name": "Cost center", "mandatory": true},
        {"id": 2, "name": "Due", "mandatory": false, "input": {"type": "DATE"}},
        {"id": 3, "name": "Tier", "mandatory": false, "input": {"type": "TEXT_OPTION", "options": ["gold", "silver"]}},
        {"id": 4, "name": "Count", "mandatory": false, "inputType": "NUMBER"}
    ]))
    .iter()
    .filter_map(CustomField::from_json)
    .collect();
    assert_eq!(fields.len(), 4);
    assert!(fields[0].mandatory);
    assert_eq!(fields[0].refuses("anything"), None);
    assert_eq!(fields[1].refuses("2026-01-31"), None);
    assert!(fields[1].refuses("31.01.2026").is_some());
    assert_eq!(fields[2].refuses("gold"), None);
    assert!(fields[2].refuses("bronze").is_some());
    assert_eq!(fields[3].refuses("12"), None);
    assert!(fields[3].refuses("twelve").is_some());
}

#[test]
fn organizations_flatten_departments_and_domains_read_both_spellings() {
    // D25 `#_list_organizations`: `[{id, name, departments:[{id, name, parentName}]}]`.
    let orgs = organizations(&json!([
        {"id": 1, "name": "Example Org", "departments": [{"id": 7, "name": "IT", "parentName": "Example Org"}]},
        {"id": 2, "name": "Other"}
    ]));
    assert_eq!(
        orgs.iter()
            .map(|o| (o.id, o.name.as_str()))
            .collect::<Vec<_>>(),
        [(1, "Example Org"), (7, "IT"), (2, "Other")]
    );
    assert_eq!(orgs[1].parent.as_deref(), Some("Example Org"));
    for (raw, shown) in [
        ("Validated", "validated"),
        ("VALIDATED", "validated"),
        ("Not validated", "not validated"),
        ("NOT_VALIDATED", "not validated"),
        ("Expired", "expired"),
    ] {
        assert_eq!(domain_status(raw), shown, "{raw}");
    }
    let domain = Domain::from_json(&json!({"id": 5, "name": "example.com",
        "validationStatus": "VALIDATED", "validationMethod": "CNAME_CSR_HASH"}))
    .expect("parses");
    assert!(domain.is_validated());
    assert!(domain.covers("www.example.com"));
    assert!(domain.covers("*.example.com"));
    assert!(!domain.covers("badexample.com"));
}

#[test]
fn per_certificate_dcv_becomes_challenges() {
    // D25 `#_get_ssl_certificate_dcv_details`.
    let value = json!([{
        "dcvLog": {"error": {"code": 0, "description": null}, "log": [
            {"dcvStatus": "Awaiting Validation", "domainName": "a.example", "lastCheck": "2025-05-21 12:24:26"},
            {"dcvStatus": "Validated", "domainName": "b.example"}
        ]},
        "instructions": [
            {"domainName": "a.example", "dcvMode": "CNAME", "host": "_abc.a.example.", "point": "xyz.sectigo.com."},
            {"domainName": "b.example", "dcvMode": "HTTP", "url": "http://b.example/.well-known/pki-validation/X.txt", "file": "line1\nline2"}
        ]
    }]);
    let entries = dcv_entries(&value);
    assert_eq!(entries.len(), 2);
    let challenges: Vec<Challenge> = entries
        .into_iter()
        .filter_map(|e| challenge_of(9, e))
        .collect();
    assert_eq!(challenges[0].status, "pending");
    assert_eq!(
        challenges[0].kind,
        ChallengeKind::DnsCname {
            name: "_abc.a.example.".into(),
            target: "xyz.sectigo.com.".into()
        }
    );
    assert_eq!(challenges[1].status, "valid");
    assert_eq!(
        challenges[1].kind,
        ChallengeKind::Http {
            path: "/.well-known/pki-validation/X.txt".into(),
            content: "line1\nline2".into()
        }
    );
}

#[test]
fn revocation_reasons_are_numeric_codes() {
    assert_eq!(reason_code(RevocationReason::Unspecified), 0);
    assert_eq!(reason_code(RevocationReason::KeyCompromise), 1);
    assert_eq!(reason_code(RevocationReason::AffiliationChanged), 3);
    assert_eq!(reason_code(RevocationReason::Superseded), 4);
    assert_eq!(reason_code(RevocationReason::CessationOfOperation), 5);
    assert!(!reason_text(RevocationReason::Unspecified).is_empty());
}

#[test]
fn comments_carry_the_marker_within_the_limit() {
    let own = "x".repeat(settings::OWN_COMMENTS_LIMIT);
    let tag = "cf-0123456789abcdef";
    let text = comments(Some(&own), tag);
    assert!(text.chars().count() <= settings::COMMENTS_LIMIT);
    assert!(has_marker(&text, tag));
    assert_eq!(comments(None, tag), "certform cf-0123456789abcdef");
}

#[test]
fn collected_chains_are_put_leaf_first_without_the_root() {
    let (root, root_issuer) = test_ca("Root", None);
    let (intermediate, intermediate_issuer) = test_ca("Intermediate", Some(&root_issuer));
    let leaf = test_leaf(&intermediate_issuer);
    // Served root first, with CRLF line ends.
    let body = format!("{}{}{}", root.pem(), intermediate.pem(), leaf.pem()).replace('\n', "\r\n");
    let chain = chain_of(body.as_bytes()).expect("a chain");
    let blocks = pem::parse_many(chain.as_bytes()).expect("PEM");
    assert_eq!(blocks.len(), 2, "leaf and intermediate; the root dropped");
    assert_eq!(blocks[0].contents(), leaf.der().as_ref());
    assert_eq!(blocks[1].contents(), intermediate.der().as_ref());
    assert!(chain_of(b"no pem here").is_err());
}

fn test_ca(
    name: &str,
    issuer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = match issuer {
        None => params.self_signed(&key).expect("self-signed"),
        Some(issuer) => params.signed_by(&key, issuer).expect("signed"),
    };
    (cert, rcgen::Issuer::new(params, key))
}

fn test_leaf(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> rcgen::Certificate {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).expect("params");
    params.signed_by(&key, issuer).expect("signed")
}

/// The documented response examples in `tests/fixtures/sectigo/` (transcribed from Sectigo's
/// 25.5 REST API reference; sources in `SOURCES.md`) parse into what the client acts on.
#[test]
fn documented_fixtures_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sectigo");
    let read = |name: &str| -> Vec<u8> {
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    };
    let json = |name: &str| -> Value { serde_json::from_slice(&read(name)).expect("JSON") };

    let issued = Details::from_json(&json("details-issued.json")).expect("details");
    assert_eq!(issued.id, 54);
    assert_eq!(map_status(&issued.status), OrderStatus::Issued);
    assert_eq!(issued.org_id, Some(99));
    assert_eq!(issued.profile_id, Some(1009));
    assert_eq!(issued.term, Some(365));
    assert!(issued.expires.is_some(), "MM/dd/yyyy expiry parsed");
    assert!(issued.serial.is_some());
    let requested = Details::from_json(&json("details-requested.json")).expect("details");
    assert!(awaits_approval(&requested.status));
    assert_eq!(map_status(&requested.status), OrderStatus::Pending);

    let profiles: Vec<Profile> = items(&json("types.json"))
        .iter()
        .filter_map(Profile::from_json)
        .collect();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].terms, [365]);
    assert!(profiles[0].allows_key(&KeySpec::Rsa(2048)));
    assert!(!profiles[0].allows_key(&KeySpec::Ecdsa(256)));

    let fields: Vec<CustomField> = items(&json("custom-fields.json"))
        .iter()
        .filter_map(CustomField::from_json)
        .collect();
    assert_eq!(fields.len(), 1);
    assert!(fields[0].mandatory);
    assert_eq!(fields[0].name, "testName");

    assert_eq!(client::answer_id(&json("enroll.json")), Some(55));
    assert_eq!(client::answer_id(&json("renew-by-id.json")), Some(74));
    let listed: Vec<Details> = items(&json("list.json"))
        .iter()
        .filter_map(Details::from_json)
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, 58);
    assert_eq!(listed[0].common_name, "ccmqa.com");

    let orgs = organizations(&json("organizations.json"));
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].id, 1000);
    let domain = Domain::from_json(&json("domain.json")).expect("domain");
    assert!(domain.is_validated());
    let domains: Vec<Domain> = items(&json("domains.json"))
        .iter()
        .filter_map(Domain::from_json)
        .collect();
    assert_eq!(domains.len(), 4);
    assert_eq!(domains[0].validation, "unknown", "the list has no status");

    let entries = dcv_entries(&json("dcv.json"));
    assert_eq!(entries.len(), 1);
    let challenge = challenge_of(1, entries[0].clone()).expect("a challenge");
    assert_eq!(challenge.status, "pending");
    assert!(matches!(challenge.kind, ChallengeKind::DnsCname { .. }));

    assert_eq!(
        error_body(&read("error-unauthorized.json")),
        Some((-16, "Unknown user".to_string()))
    );
    assert_eq!(
        error_body(&read("error-not-collectable.json")).map(|(code, _)| code),
        Some(-183)
    );
    let forbidden = error_body(&read("error-no-privilege.json")).map(|(code, _)| code);
    assert!(forbidden.is_some_and(|code| FORBIDDEN_CODES.contains(&code)));
}
