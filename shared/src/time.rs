//! RFC 3339 timestamps as SCIM `dateTime` values.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as an RFC 3339 string with millisecond precision in UTC.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Formats a timestamp in UTC with millisecond precision (RFC 3339; trailing zeros of the
/// fraction dropped: `…T10:00:00.12Z`, `…T10:00:00Z`). Written field by field, so nothing can
/// fail: a year outside RFC 3339's four digits is written as it is (see [`format_unix_millis`]).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (date, time) = (t.date(), t.time());
    // `time` keeps years within ±9999; a year before 0 is written as it is, sign first
    let Ok(year) = u32::try_from(date.year()) else {
        return format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            date.year(),
            u8::from(date.month()),
            date.day(),
            time.hour(),
            time.minute(),
            time.second()
        );
    };
    // digit by digit: this runs on every write (meta, activity), and `format!` costs more
    let mut s = String::with_capacity(24);
    push_fields(&mut s, year, t);
    if s.ends_with(".000") {
        s.truncate(s.len() - 4);
    } else {
        while s.ends_with('0') {
            s.pop();
        }
    }
    s.push('Z');
    s
}

/// Appends `t` (in UTC) with exactly three fraction digits, `2026-11-29T23:49:03.040Z`: the
/// fixed-width form a log's aligned columns need. A year outside 0–9999 is clamped into it
/// (`time` keeps years within ±9999; a log line is never about such a time).
pub fn push_fixed_millis(s: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    push_fields(s, u32::try_from(t.year()).unwrap_or(0).min(9999), t);
    s.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of a UTC time whose year is `year`.
fn push_fields(s: &mut String, year: u32, t: OffsetDateTime) {
    let (date, time) = (t.date(), t.time());
    push_digits(s, year, 4);
    for (sep, n) in [('-', date.month() as u8), ('-', date.day()), ('T', time.hour()), (':', time.minute()), (':', time.second())] {
        s.push(sep);
        push_digits(s, u32::from(n), 2);
    }
    s.push('.');
    push_digits(s, u32::from(time.millisecond()), 3);
}

/// `n` in exactly `width` decimal digits (leading zeros).
pub fn push_digits(s: &mut String, n: u32, width: u32) {
    // from the last digit back, into a buffer as wide as any u32
    let mut digits = [b'0'; 10];
    let width = (width as usize).min(digits.len());
    let mut rest = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    s.extend(digits[..width].iter().map(|&d| char::from(d)));
}

/// A time given in milliseconds since the Unix epoch, formatted as [`format()`] does; `None`
/// when it is not a time RFC 3339 can write (before year 0 or after 9999).
pub fn format_unix_millis(ms: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    (0..=9999).contains(&t.year()).then(|| format(t))
}

/// Parses an RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the Unix epoch (every store read checks expiry with it: read from the system
/// clock without building a calendar date).
pub fn unix_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or_else(|before| -(before.duration().as_secs() as i64), |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch (fixed-width sortable keys).
pub fn unix_millis() -> i128 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or_else(|before| -(before.duration().as_millis() as i128), |d| d.as_millis() as i128)
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

    #[test]
    fn digits_are_padded_to_their_width() {
        for (n, width, text) in [(7, 2, "07"), (2026, 4, "2026"), (0, 3, "000"), (45, 3, "045"), (u32::MAX, 10, "4294967295")] {
            let mut s = String::new();
            push_digits(&mut s, n, width);
            assert_eq!(s, text);
        }
    }

    #[test]
    fn the_clock_reads_as_the_calendar_does() {
        let (secs, millis, t) = (unix_now(), unix_millis(), OffsetDateTime::now_utc());
        assert!((t.unix_timestamp() - secs).abs() <= 1, "{secs} vs {t}");
        assert!((t.unix_timestamp_nanos() / 1_000_000 - millis).abs() <= 1000, "{millis} vs {t}");
    }

    #[test]
    fn log_stamps_keep_three_fraction_digits() {
        for (unix_ms, text) in [(0i64, "1970-01-01T00:00:00.000Z"), (1_795_000_000_120, "2026-11-18T11:06:40.120Z")] {
            let mut s = String::from("> ");
            push_fixed_millis(&mut s, OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap());
            assert_eq!(s, format!("> {text}"));
        }
    }

    #[test]
    fn a_time_rfc3339_cannot_write_is_none_not_1970() {
        assert_eq!(format_unix_millis(253_402_300_799_999).as_deref(), Some("9999-12-31T23:59:59.999Z"));
        assert_eq!(format_unix_millis(253_402_300_800_000), None);
        assert_eq!(format_unix_millis(-62_167_219_200_001), None);
        assert_eq!(format_unix_millis(i64::MAX), None);
    }
}
