//! docker's human units: sizes (go-units `HumanSizeWithPrecision`,
//! decimal), durations (`HumanDuration`), and Go's `time.Time.String()`.

use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Go's `%.{precision}g`.
pub fn format_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn human(size: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", format_g(size, precision), units[i])
}

/// go-units `HumanSizeWithPrecision`: `5.6MB`.
pub fn human_size_precision(size: f64, precision: usize) -> String {
    human(size, 1000.0, &DECIMAL, precision)
}

/// go-units `HumanSize` (precision 4).
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 4)
}

/// go-units `BytesSize`: binary units (`1.5GiB`), as `docker stats` prints.
pub fn bytes_size(size: f64) -> String {
    human(size, 1024.0, &BINARY, 4)
}

/// go-units `HumanDuration`: `About a minute`, `2 hours`, `3 weeks`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// `HumanDuration(now - then) + " ago"`, with `now` given for tests.
pub fn ago(then_secs: i64, now_secs: i64) -> String {
    let d = Duration::from_secs(now_secs.saturating_sub(then_secs).max(0) as u64);
    format!("{} ago", human_duration(d))
}

pub fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// Go's `time.Time.String()` in local time:
/// `2024-01-02 15:04:05 +0100 CET`.
pub fn go_time_string(secs: i64) -> String {
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => format!("{} {}", t.format("%Y-%m-%d %H:%M:%S %z"), zone_name(secs)),
        None => secs.to_string(),
    }
}

/// The local zone's abbreviation at `secs` (`UTC`, `CET`), from libc.
fn zone_name(secs: i64) -> String {
    let t: libc::time_t = secs;
    // SAFETY: an all-zero tm is valid; localtime_r fills it, and tm_zone
    // then points at a static, NUL-terminated string (or is null).
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() || tm.tm_zone.is_null() {
            return "UTC".into();
        }
        std::ffi::CStr::from_ptr(tm.tm_zone)
            .to_string_lossy()
            .into_owned()
    }
}

/// Seconds since the epoch of an RFC 3339 time (`Created` of containers).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp())
}

/// A time given as docker's `--since`/`--until`: a Unix timestamp
/// (`1700000000`, `1700000000.5`), an RFC 3339 time or a duration
/// before `now` (`10m`, `1h30m`). Returns docker's `seconds[.nanos]` text.
pub fn parse_timestamp(value: &str, now_secs: i64) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Some(value.to_string());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp().to_string());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        && let Some(t) = Local.from_local_datetime(&t).single()
    {
        return Some(t.timestamp().to_string());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
        && let Some(t) = Local.from_local_datetime(&t).single()
    {
        return Some(t.timestamp().to_string());
    }
    let d = parse_go_duration(value)?;
    Some((now_secs - d.as_secs() as i64).to_string())
}

/// Go's `time.ParseDuration` for the units docker users write
/// (`ns`, `us`, `ms`, `s`, `m`, `h`), e.g. `1h30m`, `1.5s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * scale;
        any = true;
    }
    any.then(|| Duration::from_secs_f64(total))
}

/// docker's `RAMInBytes` for `-m 512m`, `--memory-swap 1g`: binary
/// units, an optional `b` suffix.
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        'p' => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mul as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size_precision(5_600_000.0, 3), "5.6MB");
        assert_eq!(human_size_precision(1_234_567.0, 3), "1.23MB");
        assert_eq!(human_size_precision(0.0, 3), "0B");
        assert_eq!(human_size_precision(999.0, 3), "999B");
        assert_eq!(human_size_precision(1000.0, 3), "1kB");
        assert_eq!(human_size_precision(4_261_355.0, 3), "4.26MB");
        assert_eq!(human_size_precision(77_800_000.0, 3), "77.8MB");
        assert_eq!(human_size_precision(123_456_789.0, 3), "123MB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(3.0 * 1024.0 * 1024.0 * 1024.0), "3GiB");
        assert_eq!(format_g(999.95, 3), "1e+03");
        assert_eq!(format_g(0.000012, 3), "1.2e-05");
    }

    #[test]
    fn durations_like_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(400)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(47)), "47 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3599)), "59 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5400)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(14 * 24 * 3600)), "2 weeks");
        assert_eq!(human_duration(s(60 * 24 * 3600)), "2 months");
        assert_eq!(human_duration(s(2 * 365 * 24 * 3600)), "2 years");
        assert_eq!(ago(100, 107), "7 seconds ago");
    }

    #[test]
    fn durations_and_memory_parse() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_timestamp("10m", 1000), Some("400".into()));
        assert_eq!(parse_timestamp("1700000000", 0), Some("1700000000".into()));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", 0),
            Some("1700000000".into())
        );
        assert_eq!(ram_in_bytes("512m"), Some(512 << 20));
        assert_eq!(ram_in_bytes("1g"), Some(1 << 30));
        assert_eq!(ram_in_bytes("1.5GB"), Some(3 << 29));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("abc"), None);
    }
}
