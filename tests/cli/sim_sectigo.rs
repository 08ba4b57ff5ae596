//! The Sectigo Certificate Manager simulator over real HTTP (reqwest on a loopback socket):
//! its answers against the vendor's documented examples in `tests/fixtures/sectigo/` (same
//! keys, casing, types and enum values), the lifecycle through every status, the documented
//! error codes, roles and privileges, paging, faults, and `certform sim sectigo` itself.
//! Issued certificates are checked with `openssl verify` against the simulator's root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use certform::config::model::{Rfc2136Settings, SecretRef, TsigAlgorithm, TsigKey};
use certform::dns::rfc2136::Rfc2136;
use certform::dns::DnsProvider;
use certform::keys::{inspect_chain, PrivateKey};
use certform::sim::sectigo::{self, RunningSim, Seed};
use certform::spec::KeySpec;
use reqwest::Method;
use serde_json::{json, Value};

use crate::bind::{Bind, ZoneSpec, DEFAULT_KEY};

const ADMIN: (&str, &str) = ("certform-admin", "sim-admin-password");
const DRAO: (&str, &str) = ("certform-drao", "sim-drao-password");
const SMIME: (&str, &str) = ("certform-smime", "sim-smime-password");
const ORG: u64 = 101;
const PROFILE: u64 = 1001;

// ---------------------------------------------------------------------------------------------
// Helpers

async fn start(seed: Value) -> RunningSim {
    let seed: Seed = serde_json::from_value(seed).expect("seed");
    sectigo::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the Sectigo simulator")
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// `(status, code)` of a `{code, description}` error (panics on another shape).
    fn error(&self) -> (u16, i64) {
        let body = self.json();
        assert!(body["description"].is_string(), "{body}");
        assert_eq!(
            body.as_object().map(|map| map.len()),
            Some(2),
            "only `code` and `description`: {body}"
        );
        (self.status, body["code"].as_i64().expect("numeric code"))
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
    login: String,
    password: String,
    customer: String,
}

impl Api {
    fn new(sim: &RunningSim, (login, password): (&str, &str)) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            admin: sim.admin_url(),
            login: login.to_string(),
            password: password.to_string(),
            customer: sim.customer_uri(),
        }
    }

    fn with(&self, user: (&str, &str)) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            admin: self.admin.clone(),
            login: user.0.to_string(),
            password: user.1.to_string(),
            customer: self.customer.clone(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("login", &self.login)
            .header("password", &self.password)
            .header("customerUri", &self.customer);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json;charset=UTF-8")
                .body(body.to_string());
        }
        send(request).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn sim(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.admin));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let resp = send(request).await;
        assert_eq!(resp.status, 200, "/_sim/{path}: {}", resp.text());
        resp.json()
    }

    async fn details(&self, id: u64) -> Value {
        let resp = self.get(&format!("/ssl/v1/{id}")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }

    /// Enroll `names` (first is the CN) with an ECDSA P-256 key; the response.
    async fn enroll(&self, names: &[&str], extra: Value) -> Resp {
        let mut body = json!({
            "orgId": ORG,
            "csr": csr(names, KeySpec::Ecdsa(256)),
            "certType": PROFILE,
            "term": 199,
            "subjAltNames": names.join(","),
            "comments": "certform:test",
            "externalRequester": "",
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                body.insert(key.clone(), value.clone());
            }
        }
        self.post("/ssl/v1/enroll", body).await
    }

    async fn enroll_id(&self, names: &[&str]) -> u64 {
        let resp = self.enroll(names, json!({})).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()["sslId"].as_u64().expect("sslId")
    }
}

async fn send(request: reqwest::RequestBuilder) -> Resp {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn csr(names: &[&str], key: KeySpec) -> String {
    let key = PrivateKey::generate(key).expect("key");
    let sans: Vec<String> = names.iter().map(|name| (*name).to_string()).collect();
    let der = key.csr_der(names[0], &sans).expect("csr");
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sectigo")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every key of the documented example is in the answer with the same JSON type, recursively
/// (an array's first documented item against every answered item). `null` matches anything.
fn same_shape(path: &str, documented: &Value, actual: &Value) {
    match documented {
        Value::Object(map) => {
            let Some(actual_map) = actual.as_object() else {
                panic!("{path}: documented an object, got {actual}");
            };
            for (key, value) in map {
                let Some(actual_value) = actual_map.get(key) else {
                    panic!("{path}: documented key `{key}` missing from {actual}");
                };
                same_shape(&format!("{path}.{key}"), value, actual_value);
            }
        }
        Value::Array(items) => {
            let Some(actual_items) = actual.as_array() else {
                panic!("{path}: documented an array, got {actual}");
            };
            if let Some(first) = items.first() {
                for (index, item) in actual_items.iter().enumerate() {
                    same_shape(&format!("{path}[{index}]"), first, item);
                }
            }
        }
        Value::String(_) => assert!(
            actual.is_string(),
            "{path}: expected a string, got {actual}"
        ),
        Value::Number(_) => assert!(
            actual.is_number(),
            "{path}: expected a number, got {actual}"
        ),
        Value::Bool(_) => assert!(
            actual.is_boolean(),
            "{path}: expected a boolean, got {actual}"
        ),
        Value::Null => {}
    }
}

/// The answer's keys are all documented (`allowed`).
fn only_documented_keys(path: &str, actual: &Value, allowed: &[&str]) {
    let keys: BTreeSet<&str> = actual
        .as_object()
        .unwrap_or_else(|| panic!("{path}: not an object: {actual}"))
        .keys()
        .map(String::as_str)
        .collect();
    let extra: Vec<&&str> = keys.iter().filter(|key| !allowed.contains(key)).collect();
    assert!(extra.is_empty(), "{path}: undocumented keys {extra:?}");
}

/// D25's field table of SSL details (`#_get_ssl_certificate_details_response_fields`).
const DETAILS_FIELDS: &[&str] = &[
    "commonName",
    "sslId",
    "id",
    "orgId",
    "status",
    "orderNumber",
    "backendCertId",
    "vendor",
    "certType",
    "subType",
    "validationType",
    "term",
    "owner",
    "ownerId",
    "requester",
    "requesterId",
    "requestedVia",
    "externalRequester",
    "comments",
    "requested",
    "approved",
    "issued",
    "declined",
    "expires",
    "replaced",
    "revoked",
    "reasonCode",
    "renewed",
    "renewedDate",
    "serialNumber",
    "signatureAlg",
    "keyAlgorithm",
    "keySize",
    "keyType",
    "keyUsages",
    "extendedKeyUsages",
    "subjectAlternativeNames",
    "customFields",
    "certificateDetails",
    "autoInstallDetails",
    "autoRenewDetails",
    "suspendNotifications",
];

/// D25's status list (filter and details).
const STATUSES: &[&str] = &[
    "Invalid",
    "Requested",
    "Approved",
    "Declined",
    "Applied",
    "Issued",
    "Revoked",
    "Expired",
    "Replaced",
    "Rejected",
    "SAApproved",
    "Init",
];

/// D25's `requestedVia` display values.
const REQUESTED_VIA: &[&str] = &[
    "Enrollment Form",
    "Client Admin",
    "Web API",
    "Discovery",
    "Imported",
    "SCEP",
    "CD Agent",
    "MS Agent",
    "MS CA",
    "Bulk Request",
    "ACME",
    "EST",
    "REST API",
];

fn is_us_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[2] == b'/'
        && bytes[5] == b'/'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 2 | 5) || c.is_ascii_digit())
}

fn check_details(details: &Value, documented: &Value) {
    same_shape("details", documented, details);
    only_documented_keys("details", details, DETAILS_FIELDS);
    let status = details["status"].as_str().unwrap();
    assert!(STATUSES.contains(&status), "status {status}");
    assert!(REQUESTED_VIA.contains(&details["requestedVia"].as_str().unwrap()));
    assert!(
        [
            "Organization Validation (OV)",
            "Extended Validation (EV)",
            "Domain Validation (DV)"
        ]
        .contains(&details["validationType"].as_str().unwrap()),
        "{details}"
    );
    for key in [
        "requested",
        "approved",
        "issued",
        "expires",
        "revoked",
        "declined",
    ] {
        if let Some(date) = details.get(key) {
            assert!(
                is_us_date(date.as_str().unwrap()),
                "{key} is not MM/dd/yyyy: {date}"
            );
        }
    }
    assert_eq!(details["id"], details["sslId"]);
    assert_eq!(details["autoInstallDetails"]["state"], "Not configured");
    assert_eq!(details["autoRenewDetails"]["state"], "Not scheduled");
}

fn openssl_verify(root: &str, chain: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("root.pem");
    let untrusted = dir.path().join("untrusted.pem");
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&root_path, root).unwrap();
    std::fs::write(&untrusted, chain[1..].concat()).unwrap();
    std::fs::write(&leaf, &chain[0]).unwrap();
    let output = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&root_path)
        .arg("-untrusted")
        .arg(&untrusted)
        .arg(&leaf)
        .output()
        .expect("openssl is not installed: apt-get install openssl");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Documented shapes

#[tokio::test(flavor = "multi_thread")]
async fn answers_have_the_documented_shapes() {
    let sim = start(json!({"random_seed": 7})).await;
    let api = Api::new(&sim, ADMIN);

    // Enroll: {sslId:number, renewId:string of 20}.
    let resp = api
        .enroll(
            &["shape.example.com", "www.shape.example.com"],
            json!({"customFields": [{"name": "Cost Center", "value": "42"}]}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let enrolled = resp.json();
    same_shape("enroll", &fixture("enroll.json"), &enrolled);
    only_documented_keys("enroll", &enrolled, &["sslId", "renewId"]);
    let renew_id = enrolled["renewId"].as_str().unwrap();
    assert_eq!(renew_id.len(), 20);
    assert!(renew_id.chars().all(|c| c.is_ascii_alphanumeric()));
    let id = enrolled["sslId"].as_u64().unwrap();

    // Details of an issued certificate.
    let details = api.details(id).await;
    check_details(&details, &fixture("details-issued.json"));
    assert_eq!(details["status"], "Issued");
    assert_eq!(details["keyType"], "EC - P-256");
    assert_eq!(details["comments"], "certform:test");
    assert_eq!(details["requestedVia"], "REST API");
    assert_eq!(
        details["customFields"],
        json!([{"name": "Cost Center", "value": "42"}])
    );
    assert_eq!(
        details["subjectAlternativeNames"],
        json!(["shape.example.com", "www.shape.example.com"])
    );
    let serial = details["serialNumber"].as_str().unwrap();
    assert!(serial.split(':').all(|octet| octet.len() == 2), "{serial}");
    // `?dateFormat=` (D25 "Date formatting").
    let iso = api
        .get(&format!("/ssl/v1/{id}?dateFormat=ISO"))
        .await
        .json();
    assert_eq!(iso["requested"].as_str().unwrap().len(), 10);
    assert_eq!(&iso["requested"].as_str().unwrap()[4..5], "-");

    // Details of a request waiting for approval.
    let drao = api.with(DRAO);
    let pending = drao.enroll_id(&["pending.example.com"]).await;
    let details = api.details(pending).await;
    // A certificate that does not exist yet has no fingerprint: the generated D25 example
    // shows `sha1Hash` on a `Requested` record, the simulator only once issued.
    let mut documented = fixture("details-requested.json");
    documented["certificateDetails"]
        .as_object_mut()
        .unwrap()
        .remove("sha1Hash");
    check_details(&details, &documented);
    assert!(details["certificateDetails"].get("sha1Hash").is_none());
    assert_eq!(details["status"], "Requested");

    // List and count.
    let resp = api.get("/ssl/v1?size=1&position=0").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("X-Total-Count"), Some("2"));
    let list = resp.json();
    same_shape("list", &fixture("list.json"), &list);
    only_documented_keys("list[0]", &list[0], &["sslId", "commonName"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let head = api.call(Method::HEAD, "/ssl/v1", None).await;
    assert_eq!(
        (head.status, head.header("X-Total-Count")),
        (200, Some("2"))
    );
    assert!(head.body.is_empty());

    // Profiles and custom fields.
    let types = api.get("/ssl/v1/types?organizationId=101").await.json();
    same_shape("types", &fixture("types.json"), &types);
    for profile in types.as_array().unwrap() {
        only_documented_keys(
            "types[]",
            profile,
            &[
                "id",
                "name",
                "description",
                "terms",
                "keyTypes",
                "useSecondaryOrgName",
            ],
        );
    }
    let fields = api.get("/ssl/v1/customFields").await.json();
    same_shape("customFields", &fixture("custom-fields.json"), &fields);

    // Renew by id.
    let resp = api
        .post(&format!("/ssl/v1/renewById/{id}"), json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let renewed = resp.json();
    same_shape("renewById", &fixture("renew-by-id.json"), &renewed);
    only_documented_keys("renewById", &renewed, &["sslId"]);

    // Per-certificate DCV of a certificate on a domain that is not validated.
    let waiting = api
        .enroll(&["dcv.example.net"], json!({"dcvMode": "CNAME"}))
        .await
        .json()["sslId"]
        .as_u64()
        .unwrap();
    let dcv = api.get(&format!("/ssl/v1/{waiting}/dcv")).await.json();
    same_shape("dcv", &fixture("dcv.json"), &dcv);
    assert_eq!(dcv["dcvLog"]["log"][0]["dcvStatus"], "Awaiting Validation");
    assert!(dcv["instructions"][0]["host"]
        .as_str()
        .unwrap()
        .ends_with(".example.net."));
    let resp = api
        .call(
            Method::POST,
            &format!("/ssl/v1/{waiting}/dcv/recheck"),
            None,
        )
        .await;
    assert_eq!(resp.status, 202);
    same_shape("recheck", &fixture("dcv-recheck.json"), &resp.json());
    only_documented_keys("recheck", &resp.json(), &["dcvLog"]);

    // Collect: headers and body as D25's example (`base64` is the default format).
    let documented = fixture("collect-headers.json");
    let resp = api.get(&format!("/ssl/v1/collect/{id}")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        documented["Content-Type"].as_str()
    );
    let disposition = resp.header("Content-Disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"") && disposition.ends_with('"'),
        "{disposition}"
    );
    assert!(resp.text().starts_with("-----BEGIN PKCS7-----"));
    let x509 = api.get(&format!("/ssl/v1/collect/{id}?format=x509")).await;
    let blocks = pem::parse_many(&x509.body).unwrap();
    assert_eq!(blocks.len(), 3);
    // Root first, the certificate last, as in the example.
    assert_eq!(
        blocks[0].contents(),
        pem::parse(sim.root_pem()).unwrap().contents()
    );

    // Errors.
    let resp = Api {
        password: "wrong".to_string(),
        ..api.with(ADMIN)
    }
    .get("/ssl/v1/types")
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json(), fixture("error-unauthorized.json"));
    let resp = api
        .get(&format!("/ssl/v1/collect/{pending}?format=x509CO"))
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json(), fixture("error-not-collectable.json"));
    let resp = api.with(SMIME).enroll(&["a.example.com"], json!({})).await;
    let documented = fixture("error-no-privilege.json");
    assert_eq!(resp.error(), (400, documented["code"].as_i64().unwrap()));
    assert!(resp.json()["description"]
        .as_str()
        .unwrap()
        .starts_with("You are not authorized to perform "));

    // Organizations, domains, domain DCV.
    let organizations = api.get("/organization/v1").await.json();
    same_shape(
        "organizations",
        &fixture("organizations.json"),
        &organizations,
    );
    assert_eq!(
        organizations[0]["departments"][0],
        json!({"id": 102, "name": "IT", "parentName": "Example Inc"})
    );
    let resp = api.get("/domain/v1").await;
    assert_eq!(resp.header("X-Total-Count"), Some("2"));
    let domains = resp.json();
    same_shape("domains", &fixture("domains.json"), &domains);
    let domain = api.get("/domain/v1/201").await.json();
    same_shape("domain", &fixture("domain.json"), &domain);
    assert_eq!(domain["validationStatus"], "VALIDATED");
    assert_eq!(
        api.get("/domain/v1/202").await.json()["validationStatus"],
        "NOT_VALIDATED"
    );
    let list = api
        .get("/dcv/v1/validation?domain=example.com")
        .await
        .json();
    same_shape("dcv list", &fixture("dcv-validation-list.json"), &list);
    let status = api
        .post(
            "/dcv/v2/validation/status",
            json!({"domain": "example.com"}),
        )
        .await
        .json();
    same_shape(
        "dcv status",
        &fixture("dcv-validation-status.json"),
        &status,
    );
    let start = api
        .post(
            "/dcv/v1/validation/start/domain/cname",
            json!({"domain": "example.net"}),
        )
        .await
        .json();
    same_shape("dcv start", &fixture("dcv-start-cname.json"), &start);
    let submit = api
        .post(
            "/dcv/v1/validation/submit/domain/cname",
            json!({"domain": "example.net"}),
        )
        .await
        .json();
    same_shape("dcv submit", &fixture("dcv-submit-cname.json"), &submit);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_through_every_status() {
    let sim = start(json!({})).await;
    let api = Api::new(&sim, ADMIN);
    let drao = api.with(DRAO);
    let root = sim.root_pem();

    // DRAO_SSL requests wait for approval; collect answers -183 meanwhile.
    let id = drao
        .enroll_id(&["life.example.com", "alt.example.com"])
        .await;
    assert_eq!(api.details(id).await["status"], "Requested");
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{id}/x509CO"))
            .await
            .error(),
        (400, -183)
    );
    // The DRAO user may not approve; the MRAO admin may, with a message.
    let resp = drao
        .post(&format!("/ssl/v1/approve/{id}"), json!({"message": "ok"}))
        .await;
    assert_eq!(resp.error(), (400, -3));
    let resp = api.post(&format!("/ssl/v1/approve/{id}"), json!({})).await;
    assert_eq!(resp.error(), (400, -7));
    let resp = api
        .post(&format!("/ssl/v1/approve/{id}"), json!({"message": "ok"}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty());
    let details = api.details(id).await;
    assert_eq!(details["status"], "Issued");
    assert_eq!(details["owner"], "certform-admin");
    let resp = api
        .post(
            &format!("/ssl/v1/approve/{id}"),
            json!({"message": "again"}),
        )
        .await;
    assert_eq!(resp.error(), (400, -1112));

    // Collect in every documented format.
    let chain = api
        .get(&format!("/ssl/v1/collect/{id}?format=x509R"))
        .await
        .text();
    let (info, pems) = inspect_chain(&chain).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("life.example.com"));
    assert_eq!(info.sans, vec!["alt.example.com", "life.example.com"]);
    assert_eq!(pems.len(), 3);
    openssl_verify(&root, &pems[..2]);
    let first_serial = info.serial.clone();
    for (format, count) in [
        ("x509", 3),
        ("x509CO", 1),
        ("pem", 3),
        ("pemco", 1),
        ("pemia", 2),
        ("x509IO", 2),
        ("x509IOR", 2),
        ("x509R", 3),
    ] {
        let resp = api.get(&format!("/ssl/v1/collect/{id}/{format}")).await;
        assert_eq!(resp.status, 200, "{format}");
        assert_eq!(
            pem::parse_many(&resp.body).unwrap().len(),
            count,
            "{format}"
        );
    }
    let bin = api.get(&format!("/ssl/v1/collect/{id}?format=bin")).await;
    assert_eq!(bin.body[0], 0x30, "PKCS#7 DER");
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{id}?format=p12"))
            .await
            .error(),
        (400, -126)
    );

    // Replace: same record, new key, back through Applied to Issued.
    let resp = api
        .post(
            &format!("/ssl/v1/replace/{id}"),
            json!({"csr": csr(&["life.example.com"], KeySpec::Ecdsa(384)), "reason": ""}),
        )
        .await;
    assert_eq!(resp.error(), (400, -7), "reason must not be empty");
    let resp = api
        .post(
            &format!("/ssl/v1/replace/{id}"),
            json!({
                "csr": csr(&["life.example.com"], KeySpec::Ecdsa(384)),
                "reason": "key rotation",
                "subjectAlternativeNames": ["life.example.com", "new.example.com"],
            }),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let details = api.details(id).await;
    assert_eq!(details["status"], "Issued");
    assert_eq!(details["keyType"], "EC - P-384");
    assert!(details["replaced"].is_string());
    let chain = api.get(&format!("/ssl/v1/collect/{id}/x509R")).await.text();
    let (info, _) = inspect_chain(&chain).unwrap();
    assert_ne!(info.serial, first_serial);
    assert_eq!(info.sans, vec!["life.example.com", "new.example.com"]);

    // Renew by id: a new record; the old one says renewed.
    let resp = api
        .post(
            &format!("/ssl/v1/renewById/{id}"),
            json!({"csr": csr(&["life.example.com"], KeySpec::Ecdsa(256))}),
        )
        .await;
    let renewed = resp.json()["sslId"].as_u64().unwrap();
    assert_ne!(renewed, id);
    assert_eq!(api.details(renewed).await["status"], "Issued");
    let old = api.details(id).await;
    assert_eq!(old["renewed"], true);
    assert!(old["renewedDate"].is_string());
    // Renew by renew id: 204.
    let renew_id = api
        .enroll(&["byrenewid.example.com"], json!({}))
        .await
        .json()["renewId"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = api
        .post(&format!("/ssl/v1/renew/{renew_id}"), json!({}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(
        api.post("/ssl/v1/renew/nosuchrenewid00000000", json!({}))
            .await
            .error(),
        (400, -123)
    );

    // Revoke with a numeric reason code (a string is coerced), then again, then collect.
    let resp = api
        .post(
            &format!("/ssl/v1/revoke/{id}"),
            json!({"reasonCode": 9, "reason": "x"}),
        )
        .await;
    assert_eq!(resp.error(), (400, -1601));
    let resp = api
        .post(&format!("/ssl/v1/revoke/{id}"), json!({"reasonCode": 4}))
        .await;
    assert_eq!(resp.error(), (400, -7));
    let resp = api
        .post(
            &format!("/ssl/v1/revoke/{id}"),
            json!({"reasonCode": "4", "reason": "superseded"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let details = api.details(id).await;
    assert_eq!(details["status"], "Revoked");
    assert_eq!(details["reasonCode"], 4);
    assert_eq!(
        api.post(
            &format!("/ssl/v1/revoke/{id}"),
            json!({"reasonCode": 4, "reason": "again"})
        )
        .await
        .error(),
        (400, -159)
    );
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{id}/x509")).await.error(),
        (400, -110)
    );
    // Revoke by serial (colon-separated, as in D25's example).
    let serial = api.details(renewed).await["serialNumber"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = api
        .post(
            &format!("/ssl/v1/revoke/serial/{serial}"),
            json!({"reasonCode": 1, "reason": "key compromise"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(api.details(renewed).await["status"], "Revoked");

    // Decline a pending request (the "cancel"); a declined one cannot be approved or revoked.
    let pending = drao.enroll_id(&["cancel.example.com"]).await;
    let resp = api
        .post(
            &format!("/ssl/v1/decline/{pending}"),
            json!({"message": "not needed"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let details = api.details(pending).await;
    assert_eq!(details["status"], "Declined");
    assert!(details["declined"].is_string());
    assert_eq!(
        api.post(
            &format!("/ssl/v1/approve/{pending}"),
            json!({"message": "m"})
        )
        .await
        .error(),
        (400, -1112)
    );
    assert_eq!(
        api.post(
            &format!("/ssl/v1/revoke/{pending}"),
            json!({"reasonCode": 0, "reason": "r"})
        )
        .await
        .error(),
        (400, -102)
    );
    // Delete: only imported or discovered certificates.
    let resp = api
        .call(Method::DELETE, &format!("/ssl/v1/{pending}"), None)
        .await;
    assert_eq!(resp.error(), (400, -1));

    // Issuance delay and the clock.
    api.sim(
        Method::PUT,
        "workflow",
        Some(json!({"approval": "auto", "issue_delay_seconds": 3600})),
    )
    .await;
    let slow = api.enroll_id(&["slow.example.com"]).await;
    assert_eq!(api.details(slow).await["status"], "Applied");
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{slow}")).await.error(),
        (400, -183)
    );
    api.sim(
        Method::POST,
        "clock",
        Some(json!({"advance_seconds": 3601})),
    )
    .await;
    assert_eq!(api.details(slow).await["status"], "Issued");
    // Expiry by the clock.
    api.sim(
        Method::POST,
        "clock",
        Some(json!({"advance_seconds": 200 * 86_400})),
    )
    .await;
    assert_eq!(api.details(slow).await["status"], "Expired");
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{slow}/x509CO"))
            .await
            .status,
        200
    );

    // DCV: a name on a domain that is not validated waits until the domain is.
    let waiting = api
        .enroll(&["w.example.net"], json!({"dcvMode": "TXT"}))
        .await
        .json()["sslId"]
        .as_u64()
        .unwrap();
    api.sim(Method::POST, &format!("certificates/{waiting}/issue"), None)
        .await;
    assert_eq!(api.details(waiting).await["status"], "Issued");
    let waiting = api
        .enroll(&["v.example.net"], json!({"dcvMode": "CNAME"}))
        .await
        .json()["sslId"]
        .as_u64()
        .unwrap();
    api.sim(
        Method::POST,
        "clock",
        Some(json!({"advance_seconds": 3601})),
    )
    .await;
    assert_eq!(api.details(waiting).await["status"], "Applied");
    api.sim(Method::POST, "domains/example.net/validate", None)
        .await;
    assert_eq!(api.details(waiting).await["status"], "Issued");

    // Forced statuses (for clients' status mapping).
    for status in ["Rejected", "Invalid", "SAApproved", "Init", "Approved"] {
        let forced = api
            .sim(
                Method::PUT,
                &format!("certificates/{pending}/status"),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(forced["status"], status);
        assert_eq!(api.details(pending).await["status"], status);
    }

    let stats = sim.stats();
    assert_eq!(stats.approvals, 1);
    assert_eq!(stats.declines, 1);
    assert_eq!(stats.revocations, 2);
    assert_eq!(stats.replacements, 1);
    assert_eq!(stats.renewals, 2);
    assert!(stats
        .duplicate_common_names()
        .contains_key("life.example.com"));
    assert_eq!(stats.requests_by_route["POST /ssl/v1/enroll"], 6);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Validation codes

#[tokio::test(flavor = "multi_thread")]
async fn enroll_refusals_carry_the_documented_codes() {
    let sim = start(json!({
        "profiles": [
            {"id": 1001, "name": "OV Multi-Domain", "terms": [199, 365],
             "key_types": {"RSA": ["2048", "3072"], "EC": ["P-256"]}},
            {"id": 1002, "name": "OV SSL", "terms": [199], "key_types": {"RSA": ["2048"]}}
        ],
        "custom_fields": [
            {"id": 1, "name": "Cost Center", "mandatory": true},
            {"id": 2, "name": "Ticket", "input": "NUMBER"},
            {"id": 3, "name": "Review", "input": "DATE"}
        ],
        "workflow": {"require_external_requester": true}
    }))
    .await;
    let api = Api::new(&sim, ADMIN);
    let ok = json!({
        "customFields": [{"name": "Cost Center", "value": "cc-1"}],
        "externalRequester": "ops@example.com",
    });
    let resp = api.enroll(&["ok.example.com"], ok.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let rsa_3072 = csr(&["r.example.com"], KeySpec::Rsa(3072));
    let merge = |extra: Value| {
        let mut body = ok.clone();
        for (key, value) in extra.as_object().unwrap() {
            body[key.as_str()] = value.clone();
        }
        body
    };
    let cases: Vec<(&str, Value, i64)> = vec![
        ("orgId missing", json!({"orgId": null}), -7),
        ("unknown organization", json!({"orgId": 999}), -1023),
        ("csr missing", json!({"csr": ""}), -7),
        ("csr not base64", json!({"csr": "!!!"}), -9),
        ("csr not decodable", json!({"csr": "AAAA"}), -10),
        ("certType missing", json!({"certType": null}), -7),
        ("unknown profile", json!({"certType": 4242}), -39),
        ("term missing", json!({"term": null}), -7),
        ("term not allowed", json!({"term": 730}), -36),
        ("EC on an RSA-only profile", json!({"certType": 1002}), -170),
        (
            "key size not allowed",
            json!({"certType": 1002, "csr": rsa_3072, "subjAltNames": "r.example.com"}),
            -13,
        ),
        (
            "comments too long",
            json!({"comments": "x".repeat(1025)}),
            -1601,
        ),
        (
            "SANs as an array",
            json!({"subjAltNames": ["ok.example.com"]}),
            -1002,
        ),
        (
            "unknown domain",
            json!({"subjAltNames": "ok.example.com,x.other.org"}),
            -1010,
        ),
        (
            "domain not validated",
            json!({"subjAltNames": "ok.example.com,y.example.net"}),
            -737,
        ),
        (
            "bad name",
            json!({"subjAltNames": "ok.example.com,bad name.example.com"}),
            -1601,
        ),
        ("mandatory custom field", json!({"customFields": []}), -62),
        (
            "unknown custom field",
            json!({"customFields": [{"name": "Cost Center", "value": "a"}, {"name": "Nope", "value": "1"}]}),
            -135,
        ),
        (
            "typed custom field",
            json!({"customFields": [{"name": "Cost Center", "value": "a"}, {"name": "Ticket", "value": "abc"}]}),
            -1601,
        ),
        (
            "date custom field",
            json!({"customFields": [{"name": "Cost Center", "value": "a"}, {"name": "Review", "value": "05/21/2025"}]}),
            -1601,
        ),
        (
            "external requester required",
            json!({"externalRequester": ""}),
            -139,
        ),
        (
            "external requester not an email",
            json!({"externalRequester": "ops"}),
            -1601,
        ),
        (
            "dcvMode AUTO (OpenAPI only)",
            json!({"dcvMode": "AUTO"}),
            -1601,
        ),
        (
            "EMAIL DCV without dcvEmail",
            json!({"dcvMode": "EMAIL"}),
            -7,
        ),
    ];
    for (name, extra, code) in cases {
        let resp = api.enroll(&["ok.example.com"], merge(extra)).await;
        assert_eq!(resp.error(), (400, code), "{name}: {}", resp.text());
    }
    // The body must be JSON.
    let resp = api.call(Method::POST, "/ssl/v1/enroll", None).await;
    assert_eq!(resp.error(), (400, -1002));
    // A date custom field in yyyy-MM-dd and a numeric ticket pass.
    let resp = api
        .enroll(
            &["ok2.example.com"],
            merge(json!({"customFields": [{"name": "Cost Center", "value": "a"}, {"name": "Ticket", "value": "17"}, {"name": "Review", "value": "2026-12-01"}]})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(sim.stats().enrollments, 2);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Authentication and roles

#[tokio::test(flavor = "multi_thread")]
async fn credentials_roles_and_privileges() {
    let sim = start(json!({})).await;
    let api = Api::new(&sim, ADMIN);
    // Missing headers, wrong password, wrong customer URI: 401 -16.
    let bare = send(reqwest::Client::new().get(format!("{}/ssl/v1/types", sim.base_url()))).await;
    assert_eq!(bare.error(), (401, -16));
    let wrong_customer = Api {
        customer: "someone-else".to_string(),
        ..api.with(ADMIN)
    };
    assert_eq!(wrong_customer.get("/ssl/v1").await.error(), (401, -16));
    // An S/MIME administrator sees no SSL data and may not enroll.
    let smime = api.with(SMIME);
    let id = api.enroll_id(&["role.example.com"]).await;
    let resp = smime.get("/ssl/v1").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("X-Total-Count"), Some("0"));
    assert_eq!(resp.json(), json!([]));
    assert_eq!(smime.get("/ssl/v1/types").await.json(), json!([]));
    assert_eq!(
        smime.get(&format!("/ssl/v1/{id}")).await.error(),
        (404, -124)
    );
    let resp = smime
        .post(
            &format!("/ssl/v1/revoke/{id}"),
            json!({"reasonCode": 0, "reason": "r"}),
        )
        .await;
    assert_eq!(resp.error(), (400, -3));
    // A user added through the admin endpoint, without the revoke privilege.
    api.sim(
        Method::POST,
        "users",
        Some(
            json!({"login": "bot", "password": "bot-password", "role": "RAO_SSL",
                    "privileges": ["sslRequest", "autoApproveCertificates"]}),
        ),
    )
    .await;
    let bot = api.with(("bot", "bot-password"));
    let own = bot.enroll_id(&["bot.example.com"]).await;
    assert_eq!(api.details(own).await["status"], "Issued");
    let resp = bot
        .post(
            &format!("/ssl/v1/revoke/{own}"),
            json!({"reasonCode": 0, "reason": "r"}),
        )
        .await;
    assert_eq!(resp.error(), (400, -3));
    assert!(resp.json()["description"]
        .as_str()
        .unwrap()
        .contains("SSL revocation"));
    // EV: the requester cannot approve their own request (-1140).
    api.sim(Method::PUT, "workflow", Some(json!({"approval": "manual"})))
        .await;
    let ev = api
        .enroll(&["ev.example.com"], json!({"certType": 1003}))
        .await
        .json()["sslId"]
        .as_u64()
        .unwrap();
    assert_eq!(api.details(ev).await["status"], "Requested");
    assert_eq!(
        api.post(&format!("/ssl/v1/approve/{ev}"), json!({"message": "mine"}))
            .await
            .error(),
        (400, -1140)
    );
    let other = api.with(("certform-ssl", "sim-ssl-password"));
    let resp = other
        .post(
            &format!("/ssl/v1/approve/{ev}"),
            json!({"message": "four eyes"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(api.details(ev).await["status"], "Issued");
    let stats = sim.stats();
    assert_eq!(stats.unauthorized, 2);
    assert!(stats.forbidden >= 2);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Listing, paging and finding a request by its marker

#[tokio::test(flavor = "multi_thread")]
async fn paging_filters_and_seeded_certificates() {
    let sim = start(json!({
        "certificates": [
            {"count": 25, "common_name": "host{n}.example.com", "status": "Issued",
             "comments": "seeded {n}", "requested_via": "Imported"},
            {"count": 2, "common_name": "gone{n}.example.com", "status": "Revoked"},
            {"count": 1, "common_name": "old.example.com", "status": "Issued", "age_days": 400}
        ],
        "quirks": {"list_item_fields": "full", "list_comments_filter": true}
    }))
    .await;
    let api = Api::new(&sim, ADMIN);
    // Default page of 10, position is 0-based, size at most 200.
    let resp = api.get("/ssl/v1").await;
    assert_eq!(resp.header("X-Total-Count"), Some("28"));
    assert_eq!(resp.json().as_array().unwrap().len(), 10);
    let mut seen = BTreeSet::new();
    let mut position = 0;
    loop {
        let page = api
            .get(&format!("/ssl/v1?size=7&position={position}"))
            .await
            .json();
        let items = page.as_array().unwrap().clone();
        for item in &items {
            seen.insert(item["sslId"].as_u64().unwrap());
            assert!(
                item["subjectAlternativeNames"].is_array(),
                "full items: {item}"
            );
        }
        if items.len() < 7 {
            break;
        }
        position += 7;
    }
    assert_eq!(seen.len(), 28);
    assert_eq!(
        api.get("/ssl/v1?size=500")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        28
    );
    // Filters.
    let count = |query: &'static str| {
        let api = &api;
        async move {
            api.call(Method::HEAD, &format!("/ssl/v1?{query}"), None)
                .await
                .header("X-Total-Count")
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(count("status=Revoked").await, "2");
    assert_eq!(count("status=Expired").await, "1");
    assert_eq!(count("status=Unmanaged").await, "0");
    assert_eq!(count("commonName=host1").await, "11");
    assert_eq!(count("requestedVia=IMPORTED").await, "25");
    assert_eq!(count("sslTypeId=1001&orgId=101").await, "28");
    assert_eq!(count("comments=seeded%2017").await, "1");
    assert_eq!(api.get("/ssl/v1?status=Bogus").await.error(), (400, -1601));
    // Imported certificates may be deleted.
    let first = api.get("/ssl/v1?commonName=host3.example.com").await.json()[0]["sslId"]
        .as_u64()
        .unwrap();
    let resp = api
        .call(Method::DELETE, &format!("/ssl/v1/{first}"), None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(
        api.get(&format!("/ssl/v1/{first}")).await.error(),
        (404, -124)
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_filter_is_ignored_by_default() {
    let sim = start(json!({})).await;
    let api = Api::new(&sim, ADMIN);
    api.enroll_id(&["a.example.com"]).await;
    api.enroll(&["b.example.com"], json!({"comments": "certform:marker-b"}))
        .await;
    // Without the quirk the undocumented filter is ignored: a client must read details.
    let resp = api.get("/ssl/v1?comments=certform%3Amarker-b").await;
    assert_eq!(resp.header("X-Total-Count"), Some("2"));
    let found = api.get("/ssl/v1?commonName=b.example.com").await.json();
    let id = found[0]["sslId"].as_u64().unwrap();
    assert_eq!(api.details(id).await["comments"], "certform:marker-b");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn update_and_manual_marks() {
    let sim = start(json!({})).await;
    let api = Api::new(&sim, ADMIN);
    // PUT /api/ssl/v1 answers with the details (D25's example is a `Requested` record).
    let pending = api.with(DRAO).enroll_id(&["upd.example.com"]).await;
    let resp = api
        .call(
            Method::PUT,
            "/ssl/v1",
            Some(
                json!({"sslId": pending, "comments": "certform:marker", "term": 365,
                        "subjectAlternativeNames": ["upd.example.com", "www.upd.example.com"]}),
            ),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut documented = fixture("details-requested.json");
    documented["certificateDetails"]
        .as_object_mut()
        .unwrap()
        .remove("sha1Hash");
    let updated = resp.json();
    check_details(&updated, &documented);
    assert_eq!(updated["comments"], "certform:marker");
    assert_eq!(updated["term"], 365);
    assert_eq!(
        updated["subjectAlternativeNames"],
        json!(["upd.example.com", "www.upd.example.com"])
    );
    let resp = api
        .call(
            Method::PUT,
            "/ssl/v1",
            Some(json!({"sslId": pending, "term": 30})),
        )
        .await;
    assert_eq!(resp.error(), (400, -36));
    // Only comments and the like once issued.
    let issued = api.enroll_id(&["iss.example.com"]).await;
    let resp = api
        .call(
            Method::PUT,
            "/ssl/v1",
            Some(json!({"sslId": issued, "comments": "note"})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = api
        .call(
            Method::PUT,
            "/ssl/v1",
            Some(json!({"sslId": issued, "term": 365})),
        )
        .await;
    assert_eq!(resp.error(), (400, -1601));
    assert_eq!(
        api.call(Method::PUT, "/ssl/v1", Some(json!({"comments": "x"})))
            .await
            .error(),
        (400, -7)
    );
    // Manual renewal mark and manual revocation (no CA call).
    let resp = api
        .post(
            &format!("/ssl/v1/renew/manual/{issued}"),
            json!({"id": pending}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(api.details(issued).await["renewed"], true);
    let resp = api
        .post(
            "/ssl/v1/revoke/manual",
            json!({"certId": issued, "serialNumber": null, "issuer": null,
                   "revokeDate": "2025-05-21T12:24:27.916+00:00", "reasonCode": 4}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let details = api.details(issued).await;
    assert_eq!(details["status"], "Revoked");
    assert_eq!(details["revoked"], "05/21/2025");
    assert_eq!(
        api.post("/ssl/v1/revoke/manual", json!({"reasonCode": 4}))
            .await
            .error(),
        (400, -951)
    );
    sim.shutdown().await.unwrap();
}

/// An RFC 2136 client for the test's BIND, with its default TSIG key.
fn rfc2136(bind: &Bind) -> Rfc2136 {
    let settings = Rfc2136Settings {
        server: bind.addr.to_string(),
        key: Some(TsigKey {
            key_name: DEFAULT_KEY.to_string(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env(DEFAULT_KEY.to_string()),
        }),
        zones: Vec::new(),
    };
    let secrets = |secret: &SecretRef| match secret {
        SecretRef::Env(name) => Ok(bind.secret(name).as_bytes().to_vec()),
        SecretRef::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
    };
    Rfc2136::new("bind", &settings, &secrets)
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread")]
async fn dcv_recheck_reads_the_published_record_from_dns() {
    let bind = Bind::start(&[ZoneSpec::new("dns.test")]);
    let sim = start(json!({
        "domains": [{"id": 301, "name": "dns.test", "validation": "not_validated"}],
        "dcv": {"dns_server": bind.addr.to_string(), "dns_timeout_ms": 2000}
    }))
    .await;
    let api = Api::new(&sim, ADMIN);
    let resp = api
        .enroll(&["app.dns.test"], json!({"dcvMode": "TXT"}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.json()["sslId"].as_u64().unwrap();
    assert_eq!(api.details(id).await["status"], "Applied");
    let dcv = api.get(&format!("/ssl/v1/{id}/dcv")).await.json();
    let instruction = &dcv["instructions"][0];
    assert_eq!(instruction["dcvMode"], "TXT");
    assert_eq!(instruction["host"], "_pki-validation.dns.test.");
    let point = instruction["point"].as_str().unwrap().to_string();

    // No record yet: still awaiting validation.
    let resp = api
        .call(Method::POST, &format!("/ssl/v1/{id}/dcv/recheck"), None)
        .await;
    assert_eq!(resp.status, 202);
    assert_eq!(
        resp.json()["dcvLog"]["log"][0]["dcvStatus"],
        "Awaiting Validation"
    );
    assert_eq!(api.details(id).await["status"], "Applied");
    // A wrong value does not validate either.
    let dns = rfc2136(&bind);
    dns.add_txt("_pki-validation.dns.test", "not-the-token")
        .await
        .unwrap();
    api.call(Method::POST, &format!("/ssl/v1/{id}/dcv/recheck"), None)
        .await;
    assert_eq!(api.details(id).await["status"], "Applied");

    // Publish the token in the real BIND: the recheck validates the domain and issues.
    dns.add_txt("_pki-validation.dns.test", &point)
        .await
        .unwrap();
    let resp = api
        .call(Method::POST, &format!("/ssl/v1/{id}/dcv/recheck"), None)
        .await;
    assert_eq!(resp.status, 202);
    assert_eq!(resp.json()["dcvLog"]["log"][0]["dcvStatus"], "Validated");
    assert_eq!(api.details(id).await["status"], "Issued");
    assert_eq!(
        api.get("/domain/v1/301").await.json()["validationStatus"],
        "VALIDATED"
    );
    assert_eq!(sim.stats().dcv_rechecks, 3);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Quirks: the other shapes of what the references leave open

#[tokio::test(flavor = "multi_thread")]
async fn quirks_switch_the_undocumented_shapes() {
    let sim = start(json!({"quirks": {
        "unauthorized_code": -970,
        "not_collectable_status": 409,
        "not_collectable_code": -1400,
        "forbidden_status": 403,
        "sa_approved_spelling": "SA Approved",
        "details_date_format": "ISO",
        "domain_status_style": "title",
        "replace_keeps_id": false,
        "strict_reason_code": true,
        "pem_line_endings": "crlf",
        "delete_any": true
    }}))
    .await;
    let api = Api::new(&sim, ADMIN);
    let wrong = Api {
        password: "wrong".to_string(),
        ..api.with(ADMIN)
    };
    let resp = wrong.get("/ssl/v1").await;
    assert_eq!(resp.error(), (401, -970));
    assert_eq!(resp.json()["description"], "Incorrect login credentials.");
    let pending = api.with(DRAO).enroll_id(&["q.example.com"]).await;
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{pending}")).await.error(),
        (409, -1400)
    );
    assert_eq!(
        api.with(SMIME)
            .enroll(&["q.example.com"], json!({}))
            .await
            .error(),
        (403, -3)
    );
    let details = api.details(pending).await;
    assert_eq!(details["requested"].as_str().unwrap().len(), 10);
    assert_eq!(&details["requested"].as_str().unwrap()[4..5], "-");
    api.sim(
        Method::PUT,
        &format!("certificates/{pending}/status"),
        Some(json!({"status": "SAApproved"})),
    )
    .await;
    assert_eq!(api.details(pending).await["status"], "SA Approved");
    for filter in ["SA%20Approved", "SAApproved"] {
        let resp = api.get(&format!("/ssl/v1?status={filter}")).await;
        assert_eq!(resp.header("X-Total-Count"), Some("1"), "{filter}");
    }
    assert_eq!(
        api.get("/domain/v1/201").await.json()["validationStatus"],
        "Validated"
    );
    assert_eq!(
        api.get("/domain/v1/202").await.json()["validationStatus"],
        "Not validated"
    );
    // Replace creates a new record; the old one is `Replaced`.
    let id = api.enroll_id(&["r.example.com"]).await;
    let resp = api
        .post(
            &format!("/ssl/v1/replace/{id}"),
            json!({"csr": csr(&["r.example.com"], KeySpec::Ecdsa(256)), "reason": "rotate"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(api.details(id).await["status"], "Replaced");
    let found = api
        .get("/ssl/v1?commonName=r.example.com&status=Issued")
        .await
        .json();
    let new_id = found[0]["sslId"].as_u64().unwrap();
    assert_ne!(new_id, id);
    // A string reason code is refused when strict.
    let resp = api
        .post(
            &format!("/ssl/v1/revoke/{new_id}"),
            json!({"reasonCode": "4", "reason": "r"}),
        )
        .await;
    assert_eq!(resp.error(), (400, -1002));
    let collected = api.get(&format!("/ssl/v1/collect/{new_id}/x509")).await;
    assert!(collected.text().contains("-----\r\n"), "CRLF line endings");
    assert_eq!(pem::parse_many(&collected.body).unwrap().len(), 3);
    let resp = api
        .call(Method::DELETE, &format!("/ssl/v1/{new_id}"), None)
        .await;
    assert_eq!(resp.status, 204, "delete_any");
    // A forced `Issued` is collectable.
    api.sim(
        Method::PUT,
        &format!("certificates/{pending}/status"),
        Some(json!({"status": "Issued"})),
    )
    .await;
    assert_eq!(
        api.get(&format!("/ssl/v1/collect/{pending}/x509CO"))
            .await
            .status,
        200
    );
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Faults, limits, counts

#[tokio::test(flavor = "multi_thread")]
async fn faults_limits_and_counts() {
    let sim = start(json!({"random_seed": 3})).await;
    let api = Api::new(&sim, ADMIN);
    api.sim(
        Method::PUT,
        "faults",
        Some(json!({"error_rate": 1.0, "error_status": 503})),
    )
    .await;
    assert_eq!(api.get("/ssl/v1/types").await.error(), (503, -2));
    api.sim(
        Method::PUT,
        "faults",
        Some(json!({"drop_rate": 1.0, "drop_phase": "after"})),
    )
    .await;
    let dropped = reqwest::Client::new()
        .post(format!("{}/ssl/v1/enroll", sim.base_url()))
        .header("login", ADMIN.0)
        .header("password", ADMIN.1)
        .header("customerUri", "certform-sim")
        .body(
            json!({"orgId": ORG, "csr": csr(&["drop.example.com"], KeySpec::Ecdsa(256)),
                   "certType": PROFILE, "term": 199})
            .to_string(),
        )
        .send()
        .await;
    assert!(dropped.is_err(), "the connection was cut");
    api.sim(Method::PUT, "faults", Some(json!({}))).await;
    // The dropped enroll happened: the certificate exists, found by its common name.
    let found = api.get("/ssl/v1?commonName=drop.example.com").await;
    assert_eq!(found.header("X-Total-Count"), Some("1"));
    api.sim(
        Method::PUT,
        "limits",
        Some(json!({"windows": [{"requests": 2, "seconds": 60}], "retry_after_header": true})),
    )
    .await;
    assert_eq!(api.get("/ssl/v1/types").await.status, 200);
    assert_eq!(api.get("/ssl/v1/types").await.status, 200);
    let limited = api.get("/ssl/v1/types").await;
    assert_eq!(limited.error(), (429, -1));
    assert!(limited.header("Retry-After").is_some());
    let stats = api.sim(Method::GET, "stats", None).await;
    assert_eq!(stats["injected_errors"], 1);
    assert_eq!(stats["dropped_connections"], 1);
    assert_eq!(stats["rate_limited"], 1);
    assert_eq!(stats["enrollments"], 1);
    assert_eq!(stats["enrollments_by_common_name"]["drop.example.com"], 1);
    assert_eq!(stats["certificates_by_status"]["Issued"], 1);
    assert_eq!(stats["requests_by_route"]["GET /ssl/v1/types"], 2);
    sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The command

#[test]
fn cli_prints_url_customer_and_credentials() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(
        &seed_path,
        "customer_uri = \"acme\"\n[[users]]\nlogin = \"api-user\"\npassword = \"api-secret\"\nrole = \"MRAO\"\n",
    )
    .unwrap();
    let root_path = dir.path().join("root.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certform"))
        .args([
            "sim",
            "sectigo",
            "--listen",
            "127.0.0.1:0",
            "--manual-approval",
            "--seed",
        ])
        .arg(&seed_path)
        .arg("--root-out")
        .arg(&root_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.starts_with("press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let field = |name: &str| {
        printed
            .iter()
            .find_map(|line| line.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
            .trim()
            .to_string()
    };
    let base = field("base URL:");
    assert_eq!(field("customer URI:"), "acme");
    assert!(
        text.contains("api-user") && text.contains("api-secret") && text.contains("MRAO"),
        "{text}"
    );
    assert!(base.ends_with("/api"), "{base}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (types, enrolled) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let request = |method: Method, path: &str| {
            client
                .request(method, format!("{base}{path}"))
                .header("login", "api-user")
                .header("password", "api-secret")
                .header("customerUri", "acme")
        };
        let types = send(request(Method::GET, "/ssl/v1/types")).await;
        let enrolled = send(
            request(Method::POST, "/ssl/v1/enroll").body(
                json!({"orgId": ORG, "csr": csr(&["cli.example.com"], KeySpec::Ecdsa(256)),
                   "certType": PROFILE, "term": 199})
                .to_string(),
            ),
        )
        .await;
        let id = enrolled.json()["sslId"].as_u64().unwrap();
        let details = send(request(Method::GET, &format!("/ssl/v1/{id}"))).await;
        (types, details)
    });
    assert_eq!(types.status, 200, "{}", types.text());
    assert_eq!(enrolled.json()["status"], "Requested", "--manual-approval");
    assert!(std::fs::read_to_string(&root_path)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_refuses_a_bad_seed_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, r#"{"quirks": {"list_item_fields": "some"}}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_certform"))
        .args(["sim", "sectigo", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("list_item_fields"), "{stderr}");
}
