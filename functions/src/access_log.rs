//! The local server's request log: a line per request (time, method, path without its query,
//! status, milliseconds) on standard error, at `info` (so `RUST_LOG=warn` silences it). Lines
//! are collected in memory and written by a background task every [`FLUSH_EVERY`] (and on
//! Ctrl-C), not by the request: a write per request, through the formatting subscriber, took a
//! third of a `GET /Users/{id}` (`tests/bench/ceiling.sh`).

use std::sync::Mutex;
use std::time::Duration;

/// How long a line may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Most bytes held between flushes; past this a request writes the lines itself.
const HELD: usize = 64 * 1024;

static LINES: Mutex<String> = Mutex::new(String::new());
static FLUSHER: std::sync::Once = std::sync::Once::new();

/// Whether request lines are logged (the filter of `RUST_LOG`).
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::INFO)
}

/// Adds a request's line; starts the flushing task on first use (inside a Tokio runtime).
pub fn record(method: &str, path: &str, status: u16, elapsed: Duration) {
    FLUSHER.call_once(|| {
        tokio::spawn(async {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                flush();
            }
        });
    });
    let now = time::OffsetDateTime::now_utc();
    let Ok(mut lines) = LINES.lock() else { return };
    // written piece by piece: `format!` machinery cost more than the rest of the line
    scim_core::time::push_fixed_millis(&mut lines, now);
    for part in ["  INFO request method=", method, " path=", path, " status="] {
        lines.push_str(part);
    }
    let mut number = itoa::Buffer::new();
    lines.push_str(number.format(status));
    lines.push_str(" ms=");
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    lines.push_str(number.format(micros / 1000));
    lines.push('.');
    scim_core::time::push_digits(&mut lines, (micros % 1000) as u32, 3);
    lines.push('\n');
    if lines.len() >= HELD {
        write_out(&mut lines, &mut std::io::stderr().lock());
    }
}

/// Writes the lines held so far.
pub fn flush() {
    flush_to(&mut std::io::stderr().lock());
}

fn flush_to(out: &mut impl std::io::Write) {
    if let Ok(mut lines) = LINES.lock() {
        write_out(&mut lines, out);
    }
}

fn write_out(lines: &mut String, out: &mut impl std::io::Write) {
    if !lines.is_empty() {
        // a closed standard error loses the log, not the request
        let _ = out.write_all(lines.as_bytes());
        lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_reach_the_buffer_and_leave_it_on_flush() {
        record("GET", "/scim/v2/Users/1", 200, Duration::from_micros(1500));
        let mut written = Vec::new();
        flush_to(&mut written);
        let held = String::from_utf8(written).unwrap();
        assert!(held.ends_with("INFO request method=GET path=/scim/v2/Users/1 status=200 ms=1.500\n"), "{held}");
        assert!(held.as_bytes()[..23].iter().all(|b| b.is_ascii_digit() || b"-T:.".contains(b)), "{held}");
        assert!(LINES.lock().unwrap().is_empty());
    }
}
