//! RFC 3339 timestamps as SCIM `dateTime` values.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as an RFC 3339 string with millisecond precision in UTC.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Formats a timestamp in UTC with millisecond precision (RFC 3339; trailing zeros of the
/// fraction dropped: `…T10:00:00.12Z`, `…T10:00:00Z`).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// A time given in milliseconds since the Unix epoch, formatted as [`format`] does.
pub fn format_unix_millis(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok().map(format)
}

/// Parses an RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch (fixed-width sortable keys).
pub fn unix_millis() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_rfc3339_always_did() {
        for (unix_ms, text) in [
            (0i64, "1970-01-01T00:00:00Z"),
            (1_795_000_000_100, "2026-11-18T11:06:40.1Z"),
            (1_795_000_000_120, "2026-11-18T11:06:40.12Z"),
            (1_795_000_000_123, "2026-11-18T11:06:40.123Z"),
            (1_795_000_000_003, "2026-11-18T11:06:40.003Z"),
            (951_782_399_999, "2000-02-28T23:59:59.999Z"),
        ] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap();
            assert_eq!(format(t), text);
            assert_eq!(parse(text).map(|p| p.unix_timestamp_nanos() / 1_000_000), Some(i128::from(unix_ms)));
            // the format description the stored timestamps were written with
            assert_eq!(t.format(&Rfc3339).unwrap(), text);
        }
    }
}
