//! RFC 3339 timestamps as SCIM `dateTime` values.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as an RFC 3339 string with millisecond precision in UTC.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Formats a timestamp in UTC with millisecond precision.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
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
