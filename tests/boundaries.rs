//! The layering, checked by reading the sources' paths to other modules: which module may use
//! which (docs/ARCHITECTURE.md, "Boundaries"). A new path across a boundary fails here.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules a file names through `crate::…` (in `use` lines and in paths), with
/// the line where each is named; comments are left out.
fn crate_paths(file: &Path) -> Vec<(String, usize, String)> {
    let text = std::fs::read_to_string(file).expect("a readable source");
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let module: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let full: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push((module, number + 1, full));
            rest = after;
        }
    }
    found
}

#[test]
fn only_the_store_speaks_sql() {
    let store = src().join("store");
    let mut offenders = Vec::new();
    for file in sources(&src()) {
        if file.starts_with(&store) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("diesel") {
                offenders.push(format!("{}:{}", file.display(), number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "diesel outside src/store: {offenders:#?}"
    );
}

#[test]
fn the_policy_and_the_cryptography_depend_on_nothing_else() {
    for (module, allowed) in [("policy", ["policy"]), ("crypto", ["crypto"])] {
        for file in sources(&src().join(module)) {
            for (named, line, path) in crate_paths(&file) {
                assert!(
                    allowed.contains(&named.as_str()),
                    "{}:{line} uses crate::{path}: {module} may use only itself",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_store_uses_no_http_and_no_domain_module() {
    // The store may use itself and the policy (population rules it compiles to SQL). The one
    // domain type it still reads is the segment filter's syntax tree, which it compiles to SQL;
    // issue 19 moves that tree to a module of its own.
    for file in sources(&src().join("store")) {
        for (named, line, path) in crate_paths(&file) {
            let allowed = matches!(named.as_str(), "store" | "policy")
                || path.starts_with("segments::filter::");
            assert!(
                allowed,
                "{}:{line} uses crate::{path}: the store may not use http or domain modules",
                file.display()
            );
        }
    }
}

#[test]
fn the_checks_see_what_they_check() {
    // A check that finds no files or no paths would pass whatever the code says.
    assert!(sources(&src().join("store")).len() > 10);
    let named = crate_paths(&src().join("store").join("segments.rs"));
    assert!(named.iter().any(|(module, _, _)| module == "policy"));
    assert!(named
        .iter()
        .any(|(_, _, path)| path.starts_with("segments::filter::")));
}
