//! The test suite's own layout. With `autotests = false` Cargo builds only `tests/cli/main.rs`,
//! so a new `tests/NAME.rs`, or a `tests/cli/NAME.rs` without its `mod` line, would never be
//! compiled or run, and nothing would say so. This test says so.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The `.rs` files directly in `dir`, by name.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
}

/// The file each `mod` line of `main.rs` compiles: `NAME.rs` beside it, or its `#[path]`.
fn declared_modules(main: &Path) -> BTreeSet<PathBuf> {
    let text = fs::read_to_string(main).unwrap_or_else(|e| panic!("read {}: {e}", main.display()));
    let dir = main.parent().unwrap_or(Path::new("."));
    let mut declared = BTreeSet::new();
    let mut path_attribute = None;
    for line in text.lines().map(str::trim) {
        if let Some(path) = line
            .strip_prefix("#[path = \"")
            .and_then(|rest| rest.strip_suffix("\"]"))
        {
            path_attribute = Some(path.to_string());
        } else if let Some(name) = line.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            let file = match path_attribute.take() {
                Some(path) => dir.join(path),
                None => dir.join(format!("{name}.rs")),
            };
            declared.insert(fs::canonicalize(&file).unwrap_or(file));
        }
    }
    declared
}

#[test]
fn every_test_file_is_a_module_of_the_one_test_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = tests.join("cli/main.rs");
    let declared = declared_modules(&main);
    let mut stray: Vec<String> = Vec::new();
    for file in rust_files(&tests) {
        stray.push(format!("{} (a test binary of its own)", file.display()));
    }
    for dir in [tests.join("cli"), tests.join("support")] {
        for file in rust_files(&dir) {
            let canonical = fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if canonical != fs::canonicalize(&main).unwrap_or_else(|_| main.clone())
                && !declared.contains(&canonical)
            {
                stray.push(format!("{} (no `mod` line)", file.display()));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "test files that `cargo test` never compiles (`autotests = false`):\n  {}\n\
         move each into `tests/cli/` and declare it in `tests/cli/main.rs` (`mod NAME;`)",
        stray.join("\n  ")
    );
}

#[test]
fn the_layout_check_sees_a_missing_mod_line() {
    let root = tempfile::tempdir().expect("temp dir");
    let cli = root.path().join("cli");
    let support = root.path().join("support");
    for dir in [&cli, &support] {
        fs::create_dir(dir).expect("create dir");
    }
    let main = cli.join("main.rs");
    fs::write(
        &main,
        "//! doc\n\nmod a;\n#[path = \"../support/b.rs\"]\nmod b;\n",
    )
    .expect("write");
    for file in [cli.join("a.rs"), cli.join("c.rs"), support.join("b.rs")] {
        fs::write(file, "").expect("write");
    }
    let declared = declared_modules(&main);
    let canonical = |path: PathBuf| fs::canonicalize(path).expect("canonical");
    assert!(declared.contains(&canonical(cli.join("a.rs"))));
    assert!(declared.contains(&canonical(support.join("b.rs"))));
    assert!(!declared.contains(&canonical(cli.join("c.rs"))));
    assert_eq!(declared.len(), 2);
}
