//! One route table: the core's `ROUTES`, the function binaries and the SAM template agree.

use scim_core::edge::ROUTES;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (binary, METHOD, path) triples wired in the template, read from each function's
/// `Binary:` build property and its `Path:`/`Method:` event properties.
fn template_routes() -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    let mut routes = BTreeSet::new();
    let mut binaries = BTreeSet::new();
    let mut binary: Option<String> = None;
    let mut path: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        // a new top-level resource (two-space indent) resets the current function
        if line.starts_with("  ") && !line.starts_with("   ") && t.ends_with(':') {
            binary = None;
        }
        if let Some(b) = t.strip_prefix("Binary:") {
            let b = b.trim().to_string();
            binaries.insert(b.clone());
            binary = Some(b);
        } else if let Some(p) = t.strip_prefix("Path:") {
            path = Some(p.trim().trim_matches('\'').trim_matches('"').to_string());
        } else if let Some(m) = t.strip_prefix("Method:")
            && let (Some(b), Some(p)) = (&binary, path.take())
        {
            let p = p.strip_prefix("/scim/v2").unwrap_or(&p).to_string();
            routes.insert((b.clone(), m.trim().to_ascii_uppercase(), p));
        }
    }
    (routes, binaries)
}

#[test]
fn template_functions_and_core_routes_agree() {
    let core: BTreeSet<(String, String, String)> =
        ROUTES.iter().map(|r| (r.function.to_string(), r.method.to_string(), r.path.to_string())).collect();
    let (template, binaries) = template_routes();
    assert_eq!(template, core, "infra/template.yaml and scim_core::edge::ROUTES differ");
    let mut expected_bins: BTreeSet<String> = ROUTES.iter().map(|r| r.function.to_string()).collect();
    expected_bins.insert("authorizer".into());
    expected_bins.insert("events".into());
    assert_eq!(binaries, expected_bins, "template functions");
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("functions/src/bin"))
        .expect("functions/src/bin")
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .filter(|n| n != "scim-local" && n != "scim-admin")
        .collect();
    assert_eq!(on_disk, expected_bins, "functions/src/bin");
}
