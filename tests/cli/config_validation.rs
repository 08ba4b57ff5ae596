//! Every fixture in `tests/fixtures/invalid/` fails to load with the diagnostic it announces,
//! and the published JSON Schema matches the code.
//!
//! A fixture file starts with `# expect: LINE:COL SUBSTRING` lines; a fixture directory holds
//! several config files and an `expect` file of `# expect: FILE LINE:COL SUBSTRING` lines. Each
//! expectation must match one diagnostic: same file, line and column, message containing the
//! substring.

use std::fs;
use std::path::{Path, PathBuf};

use certform::config::{self, Diagnostic, Source};

const MIN_FIXTURES: usize = 30;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    manifest_dir().join("tests/fixtures/invalid")
}

#[derive(Debug)]
struct Expectation {
    file: PathBuf,
    line: usize,
    column: usize,
    substring: String,
}

fn parse_position(text: &str) -> (usize, usize) {
    let (line, column) = text
        .split_once(':')
        .unwrap_or_else(|| panic!("expected LINE:COL, found `{text}`"));
    (line.parse().unwrap(), column.parse().unwrap())
}

/// `# expect: [FILE ]LINE:COL SUBSTRING` lines.
fn expectations(text: &str, default_file: Option<&Path>, dir: &Path) -> Vec<Expectation> {
    text.lines()
        .take_while(|line| line.starts_with("# expect:"))
        .map(|line| {
            let rest = line.trim_start_matches("# expect:").trim_start();
            let (file, rest) = match default_file {
                Some(file) => (file.to_path_buf(), rest),
                None => {
                    let (name, rest) = rest.split_once(' ').unwrap();
                    (dir.join(name), rest)
                }
            };
            let (position, substring) = rest.split_once(' ').unwrap();
            let (line, column) = parse_position(position);
            Expectation {
                file,
                line,
                column,
                substring: substring.to_string(),
            }
        })
        .collect()
}

fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("toml" | "yaml" | "yml")
    )
}

/// The sources and expectations of one fixture (a file or a directory).
fn fixture(path: &Path) -> (Vec<Source>, Vec<Expectation>) {
    if path.is_dir() {
        let expect = fs::read_to_string(path.join("expect"))
            .unwrap_or_else(|_| panic!("{} has no `expect` file", path.display()));
        let mut sources = Vec::new();
        for entry in fs::read_dir(path).unwrap() {
            let file = entry.unwrap().path();
            if is_config_file(&file) {
                sources.push(Source {
                    text: fs::read_to_string(&file).unwrap(),
                    path: file,
                });
            }
        }
        assert!(
            sources.len() >= 2,
            "{} is a multi-file fixture",
            path.display()
        );
        (sources, expectations(&expect, None, path))
    } else {
        let text = fs::read_to_string(path).unwrap();
        let expected = expectations(&text, Some(path), Path::new(""));
        (
            vec![Source {
                path: path.to_path_buf(),
                text,
            }],
            expected,
        )
    }
}

fn fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() || is_config_file(path))
        .collect();
    paths.sort();
    paths
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|diagnostic| format!("    {diagnostic}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_diagnostic() {
    let paths = fixtures();
    assert!(
        paths.len() >= MIN_FIXTURES,
        "expected at least {MIN_FIXTURES} fixtures, found {}",
        paths.len()
    );
    let mut failures = Vec::new();
    for path in &paths {
        let (sources, expected) = fixture(path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if expected.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let diagnostics = match config::load(&sources) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without errors"));
                continue;
            }
            Err(diagnostics) => diagnostics,
        };
        for expectation in &expected {
            let found = diagnostics.iter().any(|diagnostic| {
                diagnostic.location.file == expectation.file
                    && diagnostic.location.line == expectation.line
                    && diagnostic.location.column == expectation.column
                    && diagnostic.message.contains(&expectation.substring)
            });
            if !found {
                failures.push(format!(
                    "{name}: no diagnostic at {}:{}:{} containing `{}`; got:\n{}",
                    expectation.file.display(),
                    expectation.line,
                    expectation.column,
                    expectation.substring,
                    render(&diagnostics)
                ));
            }
        }
        let mut sorted = diagnostics.clone();
        sorted.sort_by(|left, right| {
            (
                &left.location.file,
                left.location.line,
                left.location.column,
            )
                .cmp(&(
                    &right.location.file,
                    right.location.line,
                    right.location.column,
                ))
        });
        if sorted != diagnostics {
            failures.push(format!(
                "{name}: diagnostics not sorted:\n{}",
                render(&diagnostics)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn fixtures_cover_yaml_and_multiple_files() {
    let paths = fixtures();
    let yaml = paths
        .iter()
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .count();
    let directories = paths.iter().filter(|path| path.is_dir()).count();
    assert!(yaml >= 3, "{yaml} YAML fixtures");
    assert!(directories >= 2, "{directories} multi-file fixtures");
}

#[test]
fn plaintext_secrets_never_appear_in_diagnostics() {
    let secret = "c2VjcmV0LXZhbHVlLWRvLW5vdC1wcmludA==";
    for name in ["plaintext_secret.toml", "plaintext_secret_zone.yaml"] {
        let (sources, _) = fixture(&fixtures_dir().join(name));
        assert!(sources[0].text.contains(secret));
        let diagnostics = config::load(&sources).unwrap_err();
        let text = format!("{diagnostics:?}");
        assert!(!text.contains(secret), "{name} leaks its secret: {text}");
        assert!(
            !text.contains("c2VjcmV0"),
            "{name} leaks part of its secret: {text}"
        );
    }
}

#[test]
fn json_schema_file_is_current() {
    let path = manifest_dir().join("schemas/config.schema.json");
    let schema = config::json_schema();
    if std::env::var("CERTFORM_BLESS").as_deref() == Ok("1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &schema).unwrap();
        return;
    }
    let current = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == schema,
        "schemas/config.schema.json is out of date; run: cargo run -- schema > schemas/config.schema.json \
         (or CERTFORM_BLESS=1 cargo test --test cli json_schema_file_is_current)"
    );
}
