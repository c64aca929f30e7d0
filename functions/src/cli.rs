//! What `scim-local` and `scim-admin` share as command-line tools: where the embedded store lives
//! by default (one place, whatever the current directory), and how a failure is told to a
//! person (one sentence and its causes, never a Rust debug dump).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The directory earlier versions used by default, relative to wherever the command ran.
pub const LEGACY_DATA_DIR: &str = ".scim-local";

/// Where the embedded store is, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub path: PathBuf,
    pub why: &'static str,
}

/// The data directory: `explicit` (`--data-dir` or `SCIM_LOCAL_DATA_DIR`) when given; else
/// `$XDG_DATA_HOME/scim-local`, or `~/.local/share/scim-local`. A store that an earlier version
/// made in `./.scim-local` (its default) is still used when the new place holds none, and said so,
/// so an upgrade keeps its data.
pub fn data_dir(explicit: Option<PathBuf>) -> DataDir {
    if let Some(path) = explicit {
        return DataDir { path, why: "as given" };
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()).map(PathBuf::from);
    let default = match (xdg, home) {
        (Some(x), _) => x.join("scim-local"),
        (None, Some(h)) => h.join(".local/share/scim-local"),
        (None, None) => return DataDir { path: PathBuf::from(LEGACY_DATA_DIR), why: "no HOME is set" },
    };
    let legacy = Path::new(LEGACY_DATA_DIR);
    if !holds_store(&default) && holds_store(legacy) {
        let path = std::env::current_dir().map(|d| d.join(legacy)).unwrap_or_else(|_| legacy.to_path_buf());
        return DataDir {
            path,
            why: "the default of earlier versions, found in this directory; move it to the new default to keep one store",
        };
    }
    DataDir { path: default, why: "the default" }
}

/// Whether a directory holds an embedded store (its log).
pub fn holds_store(dir: &Path) -> bool {
    dir.join("table.log").exists()
}

/// Prints `program: error: <error>` and each cause on a line of its own (`  because: …`), on
/// stderr, and returns a failing exit code. A cause already spelled out in its parent's message
/// is not repeated.
pub fn fail(program: &str, e: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("{}", describe(program, e));
    ExitCode::FAILURE
}

/// The text [`fail`] prints.
pub fn describe(program: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{program}: error: {e}");
    let mut shown = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !shown.contains(&text) {
            out.push_str(&format!("\n  because: {text}"));
            shown.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// A failure a command reports in a sentence of its own.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Failure {
        Failure(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_sentences_with_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use (os error 98)");
        let e = scim_core::store::StoreError::caused("cannot open /data", io);
        let text = describe("scim-admin", &e);
        assert_eq!(text, "scim-admin: error: store failure: cannot open /data: Address already in use (os error 98)");
        let nested = scim_core::error::ScimError::Internal("x".into());
        assert!(!describe("scim-admin", &nested).contains('{'));
    }
}
