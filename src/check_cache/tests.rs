use std::time::{Duration, SystemTime};

use super::*;

/// A run that started an hour from now: every file written by the test is settled.
fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn chain() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).expect("params");
    params.self_signed(&key).expect("certificate").pem()
}

fn key_pem() -> String {
    rcgen::KeyPair::generate().expect("key").serialize_pem()
}

/// A cache at `file` holding `entries`, as a run would load it.
fn write_cache(file: &Path, entries: &[(&str, &str)]) {
    let mut text = format!("{HEADER}\n");
    for (key, value) in entries {
        text.push_str(&format!("{key}\t{value}\n"));
    }
    fs::write(file, text).expect("write cache");
}

#[test]
fn a_chain_leaf_is_the_one_inspect_chain_reads_and_is_parsed_once_per_content() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let pem = chain();
    let (info, _) = crate::keys::inspect_chain(&pem).expect("chain");

    let cache = CheckCache::new(Some(file.clone()), later());
    let facts = cache.chain_leaf(&pem).expect("leaf");
    assert_eq!(facts, LeafFacts::from(&info));
    assert_eq!(cache.chain_leaf(&pem).expect("again"), facts);
    cache.save();

    // The next run trusts the entry for these exact bytes (a forged entry shows it is read)...
    let key = format!("c:{}", sha256_hex(pem.as_bytes()));
    write_cache(&file, &[(&key, "0a ff ee")]);
    let next = CheckCache::new(Some(file.clone()), later());
    let forged = next.chain_leaf(&pem).expect("leaf");
    assert_eq!(forged.serial.as_str(), "0a");
    assert_eq!(forged.sha256_fingerprint, "ff");
    // ...and any other bytes are parsed afresh.
    let edited = format!("{pem}\n");
    assert_eq!(next.chain_leaf(&edited).expect("leaf"), facts);
}

#[test]
fn a_chain_that_does_not_parse_is_an_error_every_time_and_never_cached() {
    let cache = CheckCache::new(None, later());
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(cache.chain_leaf(broken).is_err());
    assert!(cache.chain_leaf(broken).is_err());
    assert!(cache
        .computed_value(&format!("c:{}", sha256_hex(broken.as_bytes())))
        .is_none());
}

#[test]
fn a_key_is_parsed_once_per_content_and_other_bytes_are_parsed_again() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let pem = key_pem();
    let spki = crate::keys::PrivateKey::from_pem(&pem)
        .expect("key")
        .spki_sha256();
    let cache = CheckCache::new(Some(file.clone()), later());
    assert_eq!(cache.key_spki(pem.as_bytes()), Some(spki.clone()));
    cache.save();
    let saved = fs::read_to_string(&file).expect("saved");
    assert!(saved.contains(&spki), "{saved}");
    assert!(!saved.contains("PRIVATE KEY"), "{saved}");
    assert!(
        !saved.contains(pem.lines().nth(1).unwrap_or("-")),
        "{saved}"
    );

    // Another key in the same file is another entry: a swapped key is parsed, not trusted.
    let other = key_pem();
    let other_spki = crate::keys::PrivateKey::from_pem(&other)
        .expect("key")
        .spki_sha256();
    let next = CheckCache::new(Some(file), later());
    assert_eq!(next.key_spki(other.as_bytes()), Some(other_spki.clone()));
    assert_ne!(other_spki, spki);
    assert_eq!(next.key_spki(pem.as_bytes()), Some(spki));
    // Bytes that are not a key are no key, and nothing is recorded for them.
    assert_eq!(next.key_spki(b"not a key"), None);
    assert!(next
        .computed_value(&format!("k:{}", sha256_hex(b"not a key")))
        .is_none());
}

#[test]
fn a_settled_file_is_hashed_once_and_rehashed_when_its_stat_data_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let deployed = dir.path().join("cert.pem");
    fs::write(&deployed, "first\n").expect("write");
    let cache = CheckCache::new(Some(file.clone()), later());
    assert_eq!(
        cache.file_sha256(&deployed).expect("hash"),
        sha256_hex(b"first\n")
    );
    cache.save();

    // The next run takes the recorded hash while the stat data is the same (a forged hash for
    // the same stat data shows it is not read again)...
    let text = fs::read_to_string(&file).expect("saved");
    let line = text.lines().nth(1).expect("one entry");
    let (key, value) = line.split_once('\t').expect("entry");
    let (stamp, _) = value.rsplit_once(' ').expect("stamp and hash");
    write_cache(&file, &[(key, &format!("{stamp} forged"))]);
    let next = CheckCache::new(Some(file.clone()), later());
    assert_eq!(next.file_sha256(&deployed).expect("hash"), "forged");

    // ...and hashes again once the file changed, even to the same size.
    fs::write(&deployed, "other\n").expect("rewrite");
    let after = CheckCache::new(Some(file), later());
    assert_eq!(
        after.file_sha256(&deployed).expect("hash"),
        sha256_hex(b"other\n")
    );
}

#[test]
fn a_file_changed_just_before_the_run_is_hashed_but_not_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let deployed = dir.path().join("cert.pem");
    fs::write(&deployed, "fresh\n").expect("write");
    // The run started now: the file's ctime is within the racy margin.
    let cache = CheckCache::new(Some(file.clone()), SystemTime::now());
    assert_eq!(
        cache.file_sha256(&deployed).expect("hash"),
        sha256_hex(b"fresh\n")
    );
    cache.save();
    assert!(!file.exists(), "nothing to record, nothing written");
}

#[test]
fn a_missing_file_is_an_error_not_an_entry() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = CheckCache::new(None, later());
    let error = cache
        .file_sha256(&dir.path().join("gone.pem"))
        .expect_err("missing");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_corrupt_or_unknown_cache_file_is_an_empty_cache_and_is_rewritten() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let pem = chain();
    let key = format!("c:{}", sha256_hex(pem.as_bytes()));
    for corrupt in [
        format!("certform-checks 99\n{key}\t0a ff ee\n"),
        format!("{HEADER}\n{key} 0a ff ee\n"),
        format!("{HEADER}\nx:{key}\t0a ff ee\n"),
        // A content key whose digest is not 64 hex digits.
        format!("{HEADER}\nc:zz\t0a ff ee\n"),
        format!("{HEADER}\n{}\t0a ff ee\n", &key[..key.len() - 1]),
        "\u{0}\u{1}garbage".to_string(),
    ] {
        fs::write(&file, &corrupt).expect("corrupt");
        let cache = CheckCache::new(Some(file.clone()), later());
        let facts = cache.chain_leaf(&pem).expect("leaf");
        assert_ne!(facts.sha256_fingerprint, "ff", "{corrupt:?} was trusted");
        cache.save();
        let saved = fs::read_to_string(&file).expect("rewritten");
        assert!(saved.starts_with(HEADER), "{saved}");
        assert!(saved.contains(&facts.sha256_fingerprint), "{saved}");
    }
}

#[test]
fn a_run_that_used_exactly_the_saved_entries_writes_nothing_and_unused_ones_are_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let (first, second) = (chain(), chain());
    let cache = CheckCache::new(Some(file.clone()), later());
    cache.chain_leaf(&first).expect("leaf");
    cache.chain_leaf(&second).expect("leaf");
    cache.save();

    // The same checks again: no write (the file removed after loading stays removed).
    let same = CheckCache::new(Some(file.clone()), later());
    same.chain_leaf(&first).expect("leaf");
    same.chain_leaf(&second).expect("leaf");
    fs::remove_file(&file).expect("remove");
    same.save();
    assert!(!file.exists());

    // A run that no longer reads `second` keeps only `first`.
    let full = CheckCache::new(Some(file.clone()), later());
    full.chain_leaf(&first).expect("leaf");
    full.chain_leaf(&second).expect("leaf");
    full.save();
    assert_eq!(fs::read_to_string(&file).expect("saved").lines().count(), 3);
    let fewer = CheckCache::new(Some(file.clone()), later());
    fewer.chain_leaf(&first).expect("leaf");
    fewer.save();
    let text = fs::read_to_string(&file).expect("saved");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&sha256_hex(first.as_bytes())), "{text}");
}

#[test]
fn the_saved_cache_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let cache = CheckCache::new(Some(file.clone()), later());
    cache.key_spki(key_pem().as_bytes()).expect("spki");
    cache.save();
    let mode = fs::metadata(&file).expect("saved").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_key_listed_twice_keeps_its_last_entry_and_the_file_is_rewritten_once() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let pem = chain();
    let key = format!("c:{}", sha256_hex(pem.as_bytes()));
    write_cache(&file, &[(&key, "01 aa bb"), (&key, "02 cc dd")]);
    let cache = CheckCache::new(Some(file.clone()), later());
    assert_eq!(cache.chain_leaf(&pem).expect("leaf").serial.as_str(), "02");
    cache.save();
    let text = fs::read_to_string(&file).expect("saved");
    assert_eq!(text, format!("{HEADER}\n{key}\t02 cc dd\n"));
    // Now every entry is used: the next run writes nothing.
    let next = CheckCache::new(Some(file.clone()), later());
    next.chain_leaf(&pem).expect("leaf");
    fs::remove_file(&file).expect("remove");
    next.save();
    assert!(!file.exists());
}

#[test]
fn deployed_file_and_content_entries_are_saved_under_their_own_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let deployed = dir.path().join("cert.pem");
    fs::write(&deployed, "first\n").expect("write");
    let pem = key_pem();
    let cache = CheckCache::new(Some(file.clone()), later());
    cache.file_sha256(&deployed).expect("hash");
    let spki = cache.key_spki(pem.as_bytes()).expect("spki");
    cache.save();
    let text = fs::read_to_string(&file).expect("saved");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let path = deployed.to_str().expect("utf-8 path");
    assert!(
        lines[1].starts_with(&format!("f:{path}\t")) && lines[1].ends_with(&sha256_hex(b"first\n")),
        "{text}"
    );
    assert_eq!(
        lines[2],
        format!("k:{}\t{spki}", sha256_hex(pem.as_bytes()))
    );
}

/// The saved entry of `kind` (`p:`, `s:`...) for `path`: its stamp and its value.
fn saved_entry(file: &Path, kind: &str, path: &Path) -> (String, String) {
    let text = fs::read_to_string(file).expect("saved");
    let key = format!("{kind}{}", path.display());
    let line = text
        .lines()
        .find(|line| line.starts_with(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    let (_, value) = line.split_once('\t').expect("entry");
    let fields: Vec<&str> = value.splitn(6, ' ').collect();
    (fields[..5].join(" "), fields[5].to_string())
}

#[test]
fn a_settled_chain_file_is_not_read_again_until_its_stat_data_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let path = dir.path().join("web.pem");
    let pem = chain();
    fs::write(&path, &pem).expect("write");
    let facts = LeafFacts::from(&crate::keys::inspect_chain(&pem).expect("chain").0);
    let read = || fs::read_to_string(&path).map(Some);

    let cache = CheckCache::new(Some(file.clone()), later());
    let first = cache.chain_at(&path, read).expect("read");
    assert_eq!(first, Some(Chain::Text(pem.clone())));
    // Within the run, the facts just recorded.
    let again = cache.chain_at(&path, read).expect("read");
    assert_eq!(again, Some(Chain::Known(facts.clone())));
    cache.save();
    let (stamp, value) = saved_entry(&file, "p:", &path);
    assert_eq!(value, facts_value(&facts));

    // The next run does not read the file (a forged entry with the same stat data shows it).
    let forged = format!("{stamp} 0a ff ee");
    write_cache(&file, &[(&format!("p:{}", path.display()), &forged)]);
    let next = CheckCache::new(Some(file.clone()), later());
    let never = || -> io::Result<Option<String>> { panic!("read a known chain") };
    let Some(Chain::Known(known)) = next.chain_at(&path, never).expect("known") else {
        panic!("not known");
    };
    assert_eq!(known.serial.as_str(), "0a");

    // Rewritten with the same size: other stat data, read again.
    let same_size = pem.replacen("BEGIN CERTIFICATE", "BEGIN CERTIFICATF", 1);
    fs::write(&path, &same_size).expect("rewrite");
    let after = CheckCache::new(Some(file), later());
    assert_eq!(
        after.chain_at(&path, read).expect("read"),
        Some(Chain::Text(same_size))
    );
}

#[test]
fn a_chain_file_with_a_private_key_or_not_parsing_or_not_settled_is_never_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("web.pem");
    let read = || fs::read_to_string(&path).map(Some);
    for text in [
        format!("{}{}", chain(), key_pem()),
        "not a chain\n".to_string(),
    ] {
        fs::write(&path, &text).expect("write");
        let cache = CheckCache::new(None, later());
        for _ in 0..2 {
            assert_eq!(
                cache.chain_at(&path, read).expect("read"),
                Some(Chain::Text(text.clone()))
            );
        }
        assert!(cache
            .computed_value(&format!("p:{}", path.display()))
            .is_none());
    }
    // Written within the racy margin of the run's start.
    let pem = chain();
    fs::write(&path, &pem).expect("write");
    let cache = CheckCache::new(None, SystemTime::now());
    cache.chain_at(&path, read).expect("read");
    assert_eq!(
        cache.chain_at(&path, read).expect("read"),
        Some(Chain::Text(pem))
    );
    // A missing file is what `read` says.
    fs::remove_file(&path).expect("remove");
    let missing = || -> io::Result<Option<String>> { Ok(None) };
    assert_eq!(cache.chain_at(&path, missing).expect("read"), None);
}

#[test]
fn a_settled_key_file_is_not_read_again_until_its_stat_data_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let path = dir.path().join("web.key");
    let pem = key_pem();
    fs::write(&path, &pem).expect("write");
    let spki = crate::keys::PrivateKey::from_pem(&pem)
        .expect("key")
        .spki_sha256();
    let cache = CheckCache::new(Some(file.clone()), later());
    assert_eq!(cache.key_spki_at(&path), Some(spki.clone()));
    cache.save();
    let (stamp, value) = saved_entry(&file, "s:", &path);
    assert_eq!(value, spki);

    write_cache(
        &file,
        &[(&format!("s:{}", path.display()), &format!("{stamp} forged"))],
    );
    let next = CheckCache::new(Some(file.clone()), later());
    assert_eq!(next.key_spki_at(&path).as_deref(), Some("forged"));

    // Another key in its place, and a file that is no key: read and parsed again.
    let other = key_pem();
    fs::write(&path, &other).expect("swap");
    let after = CheckCache::new(Some(file.clone()), later());
    let other_spki = crate::keys::PrivateKey::from_pem(&other)
        .expect("key")
        .spki_sha256();
    assert_eq!(after.key_spki_at(&path), Some(other_spki));
    fs::write(&path, "garbage\n").expect("garbage");
    let broken = CheckCache::new(Some(file), later());
    assert_eq!(broken.key_spki_at(&path), None);
    assert_eq!(broken.key_spki_at(&dir.path().join("gone.key")), None);
}

#[test]
fn stat_entries_of_each_kind_are_loaded_back_and_other_kinds_make_the_cache_corrupt() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let entries = [
        ("f:/a", "1 2 3 4.5 6.7 aa"),
        ("s:/b", "1 2 3 4.5 6.7 bb"),
        ("p:/c", "1 2 3 4.5 6.7 0a ff ee"),
        ("o:/d", "1 2 3 4.5 6.7 lo-1 issued 0a 2027-01-01T00:00:00Z"),
    ];
    write_cache(&file, &entries);
    let text = fs::read_to_string(&file).expect("cache");
    let loaded = parse(text.clone()).expect("valid");
    assert_eq!(loaded.len(), 4);
    for (key, value) in entries {
        assert_eq!(loaded.get(key).map(|(value, _)| value), Some(value));
    }
    assert!(parse(format!("{text}x:/e\tvalue\n")).is_none());
}

#[test]
fn a_cache_file_out_of_order_is_looked_up_by_key_and_keeps_the_last_of_a_key() {
    let text =
        format!("{HEADER}\nf:/z\t1 z\nf:/a\t1 first\no:/m\t1 m\nf:/a\t1 last\nf:/a.x\t1 ax\n");
    let loaded = parse(text).expect("valid");
    assert_eq!(loaded.len(), 4);
    assert_eq!(loaded.dropped, 1);
    let value = |key: &str| loaded.get(key).map(|(value, _)| value.to_string());
    assert_eq!(value("f:/a").as_deref(), Some("1 last"));
    assert_eq!(value("f:/a.x").as_deref(), Some("1 ax"));
    assert_eq!(value("f:/z").as_deref(), Some("1 z"));
    assert_eq!(value("o:/m").as_deref(), Some("1 m"));
    assert_eq!(value("f:/b"), None);
    // A line without a tab, or an unknown header, is not a cache.
    assert!(parse(format!("{HEADER}\nf:/a 1\n")).is_none());
    assert!(parse("certform-checks 0\nf:/a\t1\n".to_string()).is_none());
}

#[test]
fn every_entry_of_a_large_cache_is_found_at_its_own_index_and_no_other_key_is() {
    let mut text = format!("{HEADER}\n");
    let mut keys: Vec<String> = (0..5000)
        .map(|i| format!("f:/srv/fleet/out/c{i}/cert.pem"))
        .collect();
    keys.sort();
    for (i, key) in keys.iter().enumerate() {
        text.push_str(&format!("{key}\t1 v{i}\n"));
    }
    let loaded = parse(text).expect("valid");
    assert_eq!(loaded.len(), keys.len());
    // Half full at most, and a power of two (the lookup masks the hash).
    assert!(loaded.slots.len() >= 2 * keys.len() && loaded.slots.len().is_power_of_two());
    for (i, key) in keys.iter().enumerate() {
        let expected = format!("1 v{i}");
        assert_eq!(loaded.get(key), Some((expected.as_str(), i)), "{key}");
    }
    for absent in [
        "f:/srv/fleet/out/c5000/cert.pem",
        "f:/srv/fleet/out/c1/cert.pe",
        "",
        "s:/x",
    ] {
        assert_eq!(loaded.get(absent), None, "{absent}");
    }
    assert_eq!(
        parse(format!("{HEADER}\n")).expect("empty").get("f:/a"),
        None
    );
}

/// The content-keyed (`c:`, `k:`) keys of the saved cache at `file`.
fn saved_content_keys(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .expect("saved")
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once('\t'))
        .map(|(key, _)| key.to_string())
        .filter(|key| !is_stat_key(key))
        .collect()
}

#[test]
fn a_content_entry_a_recorded_stat_entry_covers_is_not_saved_and_one_loaded_is_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(FILE_NAME);
    let chain_path = dir.path().join("web.pem");
    let key_path = dir.path().join("web.key");
    let (pem, key) = (chain(), key_pem());
    fs::write(&chain_path, &pem).expect("write");
    fs::write(&key_path, &key).expect("write");
    let chain_key = ContentKey::Chain(digest(pem.as_bytes())).text();
    let key_key = ContentKey::Key(digest(key.as_bytes())).text();
    let read = || fs::read_to_string(&chain_path).map(Some);

    // Files written just before the run (the issuing run): no stat entry, so the content
    // entries are what the next run finds them by.
    let issuing = CheckCache::new(Some(file.clone()), SystemTime::now());
    issuing.chain_at(&chain_path, read).expect("read");
    assert!(issuing.key_spki_at(&key_path).is_some());
    issuing.save();
    let mut saved = saved_content_keys(&file);
    saved.sort();
    let mut expected = vec![chain_key.clone(), key_key.clone()];
    expected.sort();
    assert_eq!(saved, expected);

    // The next run finds both by content and records their stat data: the content entries
    // it loaded are dropped, the stat entries answer from now on.
    let next = CheckCache::new(Some(file.clone()), later());
    let Some(Chain::Text(text)) = next.chain_at(&chain_path, read).expect("read") else {
        panic!("a settled chain without a stat entry is read");
    };
    // What refresh does with the text: the loaded content entry answers.
    assert!(next.chain_leaf(&text).is_ok());
    assert!(next.key_spki_at(&key_path).is_some());
    next.save();
    assert_eq!(saved_content_keys(&file), Vec::<String>::new());
    saved_entry(&file, "p:", &chain_path);
    saved_entry(&file, "s:", &key_path);

    // A chain parsed for itself (a CA's answer, no file) is still kept by its content.
    let direct = CheckCache::new(Some(file.clone()), later());
    let other = chain();
    direct.chain_leaf(&other).expect("parses");
    direct.save();
    assert_eq!(
        saved_content_keys(&file),
        vec![ContentKey::Chain(digest(other.as_bytes())).text()]
    );

    // A fresh run with nothing loaded, settled files: only stat entries are saved.
    fs::remove_file(&file).expect("remove");
    let fresh = CheckCache::new(Some(file.clone()), later());
    fresh.chain_at(&chain_path, read).expect("read");
    assert!(fresh.key_spki_at(&key_path).is_some());
    fresh.save();
    assert_eq!(saved_content_keys(&file), Vec::<String>::new());
}
