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

/// Every file of each module (a directory, or one file) names, besides its own module, only the
/// modules its rule allows.
fn uses_only(rules: &[(&str, &[&str])]) {
    for (module, allowed) in rules {
        let path = src().join(module);
        let files = if path.is_dir() {
            sources(&path)
        } else {
            vec![path]
        };
        for file in files {
            let own = top_module(&file);
            for (named, line, path) in crate_paths(&file) {
                assert!(
                    named == own || allowed.contains(&named.as_str()),
                    "{}:{line} uses crate::{path}: {module} may use only {allowed:?}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_policy_the_cryptography_and_the_population_tree_depend_on_nothing_else() {
    let leaves: [(&str, &[&str]); 3] = [
        ("policy", &["policy"]),
        ("crypto", &["crypto"]),
        ("population.rs", &["policy"]),
    ];
    uses_only(&leaves);
}

#[test]
fn the_store_uses_no_http_and_no_domain_module() {
    // The store may use itself, the policy (population rules it compiles to SQL), the
    // population a query describes (the filter tree it compiles to SQL) and `rejection` (it
    // says which of its failures are outages).
    for file in sources(&src().join("store")) {
        for (named, line, path) in crate_paths(&file) {
            let allowed = matches!(
                named.as_str(),
                "store" | "policy" | "population" | "rejection"
            );
            assert!(
                allowed,
                "{}:{line} uses crate::{path}: the store may not use http or domain modules",
                file.display()
            );
        }
    }
}

/// The top-level module a file belongs to (`src/requests/opendsr/mod.rs` is in `requests`).
fn top_module(file: &Path) -> String {
    let relative = file.strip_prefix(src()).expect("a file under src");
    let first = relative
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn only_the_entry_points_use_http() {
    // The HTTP layer is a client of the domain, never a dependency of it: only the start-up
    // (which mounts it) and the command line (which starts it) may name it.
    for file in sources(&src()) {
        let top = top_module(&file);
        if matches!(top.as_str(), "http" | "startup" | "cli" | "main") {
            continue;
        }
        for (named, line, path) in crate_paths(&file) {
            assert!(
                !matches!(named.as_str(), "http" | "startup" | "cli"),
                "{}:{line} uses crate::{path}: only the entry points may use http",
                file.display()
            );
        }
    }
}

#[test]
fn http_reaches_the_data_only_through_the_services() {
    // Handlers parse, call one service and map its answer: no SQL, no store, no connection.
    for file in sources(&src().join("http")) {
        for (named, line, path) in crate_paths(&file) {
            assert!(
                named != "store",
                "{}:{line} uses crate::{path}: http may not use the store",
                file.display()
            );
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            assert!(
                !code.contains("services.db") && !code.contains(".run_write("),
                "{}:{}: a handler runs database work itself; call a service",
                file.display(),
                number + 1
            );
        }
    }
}

#[test]
fn the_domain_does_not_use_the_application_services() {
    // The services (`src/app/`) call down into the domain; the domain never calls up into
    // them, so the layers stay acyclic: http -> app -> domain -> store.
    for file in sources(&src()) {
        let top = top_module(&file);
        if matches!(top.as_str(), "app" | "http" | "startup" | "cli" | "main") {
            continue;
        }
        for (named, line, path) in crate_paths(&file) {
            assert!(
                named != "app",
                "{}:{line} uses crate::{path}: only http and the entry points use the services",
                file.display()
            );
        }
    }
}

#[test]
fn the_audit_log_knows_nothing_of_callers_and_the_infrastructure_nothing_of_the_domain() {
    // The audit log records actors by name; authentication depends on it, not the reverse.
    // The clock, the job runner, the write coalescer, paging and rejections are used by the
    // domain and use none of it.
    let rules: [(&str, &[&str]); 6] = [
        ("audit", &["audit", "coalesce", "crypto", "policy", "store"]),
        ("clock.rs", &[]),
        ("coalesce.rs", &[]),
        ("jobs.rs", &["clock"]),
        ("page.rs", &["rejection"]),
        ("rejection.rs", &[]),
    ];
    uses_only(&rules);
}

#[test]
fn the_checks_see_what_they_check() {
    // A check that finds no files or no paths would pass whatever the code says.
    assert!(sources(&src().join("store")).len() > 10);
    let named = crate_paths(&src().join("store").join("segments.rs"));
    assert!(named.iter().any(|(module, _, _)| module == "policy"));
    assert!(named.iter().any(|(module, _, _)| module == "population"));
    assert_eq!(
        top_module(&src().join("requests").join("opendsr").join("mod.rs")),
        "requests"
    );
    let startup = crate_paths(&src().join("startup.rs"));
    assert!(startup.iter().any(|(module, _, _)| module == "http"));
}
