//! The codebase's own rules, checked on its source: the core's modules import downward only (no
//! circle between them), and no function outside tests is longer than 80 lines — in the core,
//! the functions crate and the bench. A rule README states is a test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The file's code before its `#[cfg(test)]` module, without its comment lines.
fn code(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines().map(|l| if l.trim_start().starts_with("//") { String::new() } else { l.to_string() }).collect()
}

/// The top-level modules of the core each one refers to (`crate::m`, `crate::{a, b}`, `super::m`
/// inside a directory module stays within it).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        let text = code(&f).join("\n");
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(list) => {
                    list.split('}').next().unwrap_or_default().split(',').map(|p| p.trim().split("::").next().unwrap_or_default()).collect()
                }
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default()],
            };
            let is_module = |n: &str| src.join(format!("{n}.rs")).exists() || src.join(n).is_dir();
            deps.extend(names.into_iter().filter(|n| !n.is_empty() && *n != top && is_module(n)).map(str::to_string));
        }
    }
    graph
}

#[test]
fn the_core_s_modules_form_no_circle() {
    let graph = module_graph();
    assert!(graph.len() > 20, "the module graph was read: {graph:?}");
    // depth-first search for a back edge; the path is the circle
    fn visit(m: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("module circle: {} → {m}", path[at..].join(" → "));
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

/// Functions longer than `limit` lines in the files under `dirs` (outside test modules).
fn long_functions(dirs: &[&str], limit: usize) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in dirs {
        rust_files(&root.join(d), &mut files);
    }
    let mut long = Vec::new();
    for f in files {
        let lines = code(&f);
        for (start, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t.strip_prefix("pub ").or_else(|| t.strip_prefix("pub(crate) ")).unwrap_or(t);
            let t = t.strip_prefix("async ").or_else(|| t.strip_prefix("const ")).unwrap_or(t);
            let Some(name) = t.strip_prefix("fn ") else { continue };
            let (mut depth, mut opened) = (0i32, false);
            for (n, l) in lines[start..].iter().enumerate() {
                // braces inside string and char literals do not count
                let mut in_str = false;
                let mut prev = ' ';
                for c in l.chars() {
                    if c == '/' && prev == '/' && !in_str {
                        break; // a trailing comment
                    }
                    match c {
                        '"' if prev != '\\' && prev != '\'' => in_str = !in_str,
                        '{' if !in_str && prev != '\'' => (depth, opened) = (depth + 1, true),
                        '}' if !in_str && prev != '\'' => depth -= 1,
                        _ => {}
                    }
                    prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                }
                if (opened && depth == 0) || (!opened && l.trim_end().ends_with(';')) {
                    if n + 1 > limit {
                        long.push(format!("{}: fn {} ({} lines)", f.display(), name.split(['(', '<']).next().unwrap_or_default(), n + 1));
                    }
                    break;
                }
            }
        }
    }
    long
}

#[test]
fn no_function_outside_tests_is_over_80_lines() {
    let long = long_functions(&["shared/src", "functions/src", "tests/bench", "tests/support"], 80);
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
    assert!(!long_functions(&["shared/src"], 40).is_empty(), "the check sees functions at all");
}

/// The core's files outside `dir` (relative to `src`), as (path, code lines).
fn core_files_outside(dir: &str) -> Vec<(PathBuf, Vec<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.into_iter().filter(|f| !f.starts_with(src.join(dir))).map(|f| (f.clone(), code(&f))).collect()
}

/// Only the store layer builds keys: outside `src/store/`, no code (tests aside) names a key
/// prefix or calls a key builder. A key built elsewhere is a layout the store cannot change.
#[test]
fn only_the_store_layer_builds_keys() {
    let prefixes = [
        "\"TENANT#",
        "\"CONF#",
        "\"KEY#",
        "\"KEYUSE#",
        "\"KEYREF#",
        "\"USER#",
        "\"GROUP#",
        "\"MEMBER#",
        "\"TENANTS\"",
        "\"SERVER\"",
        "\"LAYOUT\"",
        "\"USERNAME#",
        "\"GROUPNAME#",
        "\"UEXT",
        "\"GEXT",
        "\"XU#",
        "\"AT#",
        "#AUDIT#",
        "#RATE",
        "#CURSOR",
    ];
    let builders = ["tenant_pk(", "conf_pk(", "key_pk(", "key_use_pk(", "resource_sk(", "members_pk(", "cursor_pk(", "layout::keys"];
    let mut found = Vec::new();
    let files = core_files_outside("store");
    assert!(files.len() > 20, "the core was read");
    for (f, lines) in &files {
        for (n, l) in lines.iter().enumerate() {
            if let Some(p) = prefixes.iter().chain(&builders).find(|p| l.contains(*p)) {
                found.push(format!("{}:{}: {p}", f.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "keys built outside the store layer:\n{}", found.join("\n"));
}

/// The edge reaches the store only through the service: from `crate::store` it names nothing
/// but the store's error and item types.
#[test]
fn the_edge_imports_nothing_from_the_store_but_its_error_and_item_types() {
    let allowed = ["StoreError", "Item", "Shared", "layout::Stored", "layout::StoredText"];
    let edge = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/edge");
    let mut files = Vec::new();
    rust_files(&edge, &mut files);
    assert!(!files.is_empty());
    let mut found = Vec::new();
    for f in files {
        let text = code(&f).join("\n");
        for (i, _) in text.match_indices("crate::store::") {
            let rest = &text[i + "crate::store::".len()..];
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(list) => list.split('}').next().unwrap_or_default().split(',').map(|n| n.trim().to_string()).collect(),
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).next().unwrap_or_default().to_string()],
            };
            for n in names.into_iter().filter(|n| !n.is_empty()) {
                let n = n.trim_end_matches(':').to_string();
                if !allowed.contains(&n.as_str()) {
                    found.push(format!("{}: crate::store::{n}", f.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the edge reaches into the store:\n{}", found.join("\n"));
}
