use std::time::{Duration, SystemTime};

use super::*;

const STATE: &str = r#"# managed by certform; edit with care
format = 1
name = "web"
id = "cf-9c1474d753f2b21d"
ca = "local"
status = "issued"
order_id = "lo-66cbffca1bb5"
certificate_id = "lc-b3d459dbe9806cc5"
serial = "61cefe53cdf5f38ff39f95ffac038c31"
not_before = "2027-01-04T00:00:00Z"
not_after = "2027-04-04T00:00:00+02:00"
sha256_fingerprint = "8b6624e513745bafa40e6f8ff26277c8bb3d5e70293fd35bd9a26327284824bc"
spki_sha256 = "a18aca9c921180fc7620bda207b137f2189a7a157d55c640e466dc4555baa9d0"
common_name = "web.example.test"
sans = ["web.example.test"]
key_algorithm = "ecdsa-p256"
key_id = "create-e2b5aad946a2"
spec_digest = "sha256:4800fc6d5bc95f8f0aca5985f03d1a9e1fb00a7aa9edd5ced98cf99b5122f741"
on_remove = "forget"
prevent_destroy = false

[spec_fields]
ca = "local"
common_name = "web.example.test"

[deployments."files:out/web"]
sha256_fingerprint = "8b6624e513745bafa40e6f8ff26277c8bb3d5e70293fd35bd9a26327284824bc"
target_digest = "sha256:1f3a42b41960f8501458def2dec92eec93b8f165d5913ef7a5d7b5a60c1e370a"
deployed_at = "2027-01-04T00:00:00Z"
serial = "61cefe53cdf5f38ff39f95ffac038c31"
paths = ["out/web/cert.pem"]

[deployments."files:out/web".files]
"cert.pem" = "2b616bff29d193bf57c8397a406b1c2ac9dcd7f5779005e20936df86462e86a2"

[[history]]
at = "2027-01-04T00:00:00Z"
action = "create"
serial = "61cefe53cdf5f38ff39f95ffac038c31"
note = "serial 61cefe53cdf5f38ff39f95ffac038c31, expires 2027-04-04T00:00:00Z"
"#;

/// The cache a file holding `text` is (`Cache::scan`).
fn parse_text(text: &str, directory: &str) -> Option<Cache> {
    use std::io::Write;
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(text.as_bytes()).expect("write cache");
    Cache::scan(file, directory)
}

/// Every file counts as settled (the racy rule is tested on its own).
fn future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("web.toml"), STATE).expect("write state");
        Dir { dir }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("web.toml")
    }

    fn directory(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// One load of `web` through a cache of `text` (`""`: none); the record, whether it came
    /// from the cache, and the cache that load would write (`None`: unchanged).
    fn load(
        &self,
        text: &str,
        trusted_before: SystemTime,
    ) -> (CertificateState, bool, Option<String>) {
        let cache = parse_text(text, &self.directory()).unwrap_or_default();
        let (certificate, source) =
            read(&cache, "web", &self.file(), trusted_before).expect("loaded");
        let cached = matches!(source, Source::Cached(_));
        let written = render(&cache, &self.directory(), &[source]);
        (certificate, cached, written)
    }
}

#[test]
fn a_settled_file_is_cached_and_then_read_from_the_cache_only() {
    let dir = Dir::new();
    let (parsed, cached, written) = dir.load("", future());
    assert!(!cached);
    let text = written.expect("a new cache");
    assert!(text.starts_with(&header()), "{text}");
    assert!(text.ends_with("end 1\n"), "{text}");
    let (again, cached, rewritten) = dir.load(&text, future());
    assert!(cached, "{text}");
    assert_eq!(again, parsed, "the cached record is the parsed one");
    assert_eq!(rewritten, None, "an unchanged cache is not written again");
    // The entry is what is used: a (doctored) cached record comes back as it is.
    let doctored = text.replace("\"web.example.test\"", "\"cached.example.test\"");
    let (from_cache, cached, _) = dir.load(&doctored, future());
    assert!(cached);
    assert_eq!(from_cache.common_name, "cached.example.test");
}

#[test]
fn an_edit_under_the_same_size_and_mtime_is_read_from_the_file() {
    let dir = Dir::new();
    let (_, _, written) = dir.load("", future());
    let text = written.expect("a new cache");
    let mtime = fs::metadata(dir.file())
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(Duration::from_millis(20));
    let edited = STATE.replace("web.example.test\"\nsans", "bew.example.test\"\nsans");
    assert_eq!(edited.len(), STATE.len());
    assert_ne!(edited, STATE);
    fs::write(dir.file(), &edited).expect("edit");
    fs::File::options()
        .write(true)
        .open(dir.file())
        .and_then(|file| file.set_modified(mtime))
        .expect("restore mtime");
    let (certificate, cached, rewritten) = dir.load(&text, future());
    assert!(!cached, "the ctime changed");
    assert_eq!(certificate.common_name, "bew.example.test");
    let rewritten = rewritten.expect("the entry is replaced");
    assert!(rewritten.contains("bew.example.test"), "{rewritten}");
    assert!(
        !rewritten.contains("\"web.example.test\",\"sans\""),
        "{rewritten}"
    );
}

#[test]
fn a_file_changed_within_the_racy_margin_is_not_cached() {
    let dir = Dir::new();
    let (_, cached, written) = dir.load("", SystemTime::now() - RACY_MARGIN);
    assert!(!cached);
    assert_eq!(written, None, "nothing to record, nothing loaded");
    // A stale entry is dropped even when the new one cannot be recorded yet.
    let (_, _, settled) = dir.load("", future());
    let text = settled.expect("a cache");
    std::thread::sleep(Duration::from_millis(20));
    fs::write(
        dir.file(),
        STATE.replace("2027-01-04T00:00:00Z", "2027-01-05T00:00:00Z"),
    )
    .expect("rewrite");
    let (certificate, cached, rewritten) = dir.load(&text, SystemTime::now() - RACY_MARGIN);
    assert!(!cached);
    assert_eq!(
        certificate.not_before.map(|at| at.day()),
        Some(5),
        "read from the file"
    );
    let rewritten = rewritten.expect("the stale entry goes");
    assert!(rewritten.ends_with("end 0\n"), "{rewritten}");
}

#[test]
fn a_broken_foreign_or_truncated_cache_is_no_cache() {
    let dir = Dir::new();
    let (_, _, written) = dir.load("", future());
    let text = written.expect("a cache");
    let directory = dir.directory();
    assert!(parse_text(&text, &directory).is_some());
    let truncated = &text[..text.len() - 5];
    let other_version = text.replacen(env!("CARGO_PKG_VERSION"), "0.0.0-other", 1);
    let other_count = text.replace("end 1\n", "end 2\n");
    let no_header = text.replacen("certform-state-cache 1", "certform-state-cache 2", 1);
    for broken in [
        "",
        "\u{0}garbage",
        truncated,
        &text[..text.len() / 2],
        &other_version,
        &other_count,
        &no_header,
    ] {
        assert!(parse_text(broken, &directory).is_none(), "{broken}");
        let (certificate, cached, rewritten) = dir.load(broken, future());
        assert!(!cached);
        assert_eq!(certificate.name, "web");
        assert!(
            rewritten.is_some_and(|new| new == text),
            "rewritten in full"
        );
    }
    // Another directory's cache (the same repository, another `[state] dir`).
    assert!(parse_text(&text, "/elsewhere/certificates").is_none());
}

#[test]
fn an_entry_that_does_not_decode_is_read_from_the_file() {
    let dir = Dir::new();
    let (parsed, _, written) = dir.load("", future());
    let text = written.expect("a cache");
    for broken in [
        text.replace("\"format\":1", "\"format\":\"one\""),
        text.replace("\"name\":\"web\"", "\"name\":\"other\""),
    ] {
        assert_ne!(broken, text);
        let (certificate, cached, rewritten) = dir.load(&broken, future());
        assert!(!cached, "{broken}");
        assert_eq!(certificate, parsed);
        assert!(rewritten.is_some_and(|new| new == text));
    }
}

#[test]
fn a_record_the_encoding_would_change_is_not_cached() {
    let mut certificate: CertificateState = toml::from_str(STATE).expect("a state record");
    assert!(encode(&certificate).is_some());
    // `key_file` is read but never written: a record still holding it is not cached.
    certificate.legacy_key_file = Some("web/create-e2b5aad946a2.key".to_string());
    assert_eq!(encode(&certificate), None);
}

#[test]
fn a_hand_edit_gets_the_parse_error_whatever_the_cache_holds() {
    let dir = Dir::new();
    let (_, _, written) = dir.load("", future());
    let text = written.expect("a cache");
    fs::write(
        dir.file(),
        STATE.replace("status = \"issued\"", "status = issued"),
    )
    .expect("edit");
    let cache = parse_text(&text, &dir.directory()).expect("cache");
    let error = read(&cache, "web", &dir.file(), future()).expect_err("corrupt");
    let direct = parse_certificate(&dir.file(), "web", &fs::read(dir.file()).expect("read"))
        .expect_err("corrupt");
    assert_eq!(error.to_string(), direct.to_string());
    assert!(error.to_string().contains("web.toml:6:"), "{error}");
}

#[test]
fn kept_entries_are_copied_from_the_scanned_file_even_once_it_is_replaced() {
    let dir = Dir::new();
    fs::write(
        dir.dir.path().join("api.toml"),
        STATE.replace("name = \"web\"", "name = \"api\""),
    )
    .expect("write api");
    let api = dir.dir.path().join("api.toml");
    // A cache of `web` alone, in a file of its own.
    let (_, _, written) = dir.load("", future());
    let text = written.expect("a cache");
    let web_line = text.lines().nth(2).expect("the entry").to_string();
    let cache_file = dir.dir.path().join("cache");
    fs::write(&cache_file, &text).expect("write cache");
    let cache = Cache::open(&cache_file, &dir.directory()).expect("a cache");
    // Another run replaces the cache meanwhile (as `save` does: a new file renamed over it):
    // this load still reads the one it scanned.
    save(&cache_file, "replaced\n");
    assert_eq!(fs::read_to_string(&cache_file).expect("read"), "replaced\n");
    let (web, web_source) = read(&cache, "web", &dir.file(), future()).expect("web");
    assert!(matches!(web_source, Source::Cached(_)));
    assert_eq!(web.name, "web");
    let (_, api_source) = read(&cache, "api", &api, future()).expect("api");
    assert!(matches!(api_source, Source::Parsed(Some(_))));
    let rewritten =
        render(&cache, &dir.directory(), &[api_source, web_source]).expect("a new entry");
    let lines: Vec<&str> = rewritten.lines().collect();
    assert_eq!(lines.len(), 5, "{rewritten}");
    assert!(lines[2].starts_with("api\t"), "{rewritten}");
    assert_eq!(lines[3], web_line, "the kept line, byte for byte");
    assert_eq!(lines[4], "end 2");
}
