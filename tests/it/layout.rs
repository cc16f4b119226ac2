//! The layout's invariants (ARCHITECTURE.md): imports point one way. These read the
//! source, not the server: a module that reaches upward fails here with its file and
//! line, before it can grow into a cycle.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `file:line: text` under `dir` (relative to the crate root) whose code (not its
/// comments) names one of `needles`, skipping files for which `allowed` says yes.
fn offenders(dir: &str, needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join(dir), &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|needle| code.contains(needle)) {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn nothing_outside_http_imports_http_except_the_start_up() {
    let found = offenders("src", &["crate::http", "super::http", "use http::"], |f| {
        f.starts_with("src/http/") || f == "src/app.rs" || f == "src/main.rs"
    });
    assert!(
        found.is_empty(),
        "imports of `crate::http` outside src/http/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_renderings_use_neither_http_nor_delivery_nor_federation() {
    let found = offenders(
        "src/views",
        &[
            "crate::http",
            "crate::webhooks",
            "crate::federation",
            "crate::notices",
        ],
        |_| false,
    );
    assert!(
        found.is_empty(),
        "src/views/ reaches upward:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_domain_knows_no_http_storage_or_delivery() {
    let found = offenders(
        "src/domain",
        &[
            "crate::http",
            "crate::log",
            "crate::writer",
            "crate::webhooks",
            "crate::federation",
            "actix",
            "sled::",
            "SystemTime",
            "getrandom",
        ],
        |_| false,
    );
    assert!(
        found.is_empty(),
        "src/domain/ must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_projections_know_nothing_of_the_server() {
    let found = offenders(
        "projections/src",
        &["gatehouse::", "sled", "actix", "SystemTime", "getrandom"],
        |_| false,
    );
    assert!(
        found.is_empty(),
        "projections/ must stay pure:\n{}",
        found.join("\n")
    );
}

/// The self-check of the checks: the scanner does find an import when one is there
/// (so the tests above cannot pass by scanning nothing).
#[test]
fn the_scanner_finds_what_is_there() {
    let found = offenders("src/http", &["crate::domain"], |_| false);
    assert!(!found.is_empty());
    let found = offenders("src", &["crate::views"], |f| {
        !f.starts_with("src/webhooks/")
    });
    assert!(
        !found.is_empty(),
        "the webhooks render entities through crate::views"
    );
}
