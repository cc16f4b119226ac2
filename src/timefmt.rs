//! RFC 3339 times (UTC) to and from unix milliseconds, without a date-time dependency:
//! the server only ever needs "when was this event", never calendars or zones.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-23T10:30:58Z` (seconds) or with milliseconds when `millis`.
pub fn format(ms: u64, millis: bool) -> String {
    // Writes come in bursts within one second: each thread keeps its last second's
    // text (the digits cost a division each; a SCIM create answers with one time).
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = ms / 1000;
    let mut out = LAST.with_borrow_mut(|(last, text)| {
        if *last != secs {
            *text = format_seconds(secs as i64);
            *last = secs;
        }
        let mut out = String::with_capacity(24);
        out.push_str(text);
        out
    });
    if millis {
        out.push('.');
        push_digits(&mut out, (ms % 1000) as i64, 3);
    }
    out.push('Z');
    out
}

/// `2026-11-23T10:30:58` of `secs` since the epoch.
fn format_seconds(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    // Digits pushed in place: two `format!`s with padding showed in the profile of a SCIM
    // create, which renders two of these.
    let mut out = String::with_capacity(24);
    if y <= 9999 {
        push_digits(&mut out, y, 4);
    } else {
        out.push_str(&y.to_string());
    }
    for (sep, v) in [
        ('-', m),
        ('-', d),
        ('T', rem / 3600),
        (':', (rem / 60) % 60),
        (':', rem % 60),
    ] {
        out.push(sep);
        push_digits(&mut out, v, 2);
    }
    out
}

/// `v` (`0 <= v < 10^width`) in `width` decimal digits, zeros first.
fn push_digits(out: &mut String, v: i64, width: u32) {
    for i in (0..width).rev() {
        let digit = (v / 10i64.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space or `t` instead of `T` and a
/// lower-case `z` are accepted, as RFC 3339 §5.6 allows) into unix milliseconds.
/// Times before 1970 are 0, the epoch: no event is that old, so asked of that time the
/// answer is the one before everything (they were refused as "not an RFC 3339 time").
pub fn parse(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    // The day must exist in its month (`02-30` was read as 2 March).
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || !(1..=month_days).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = format!("{digits:0<3}").parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            // RFC 3339: hours 00–23, minutes 00–59 (`+25:00` was applied as given).
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 60 + om;
            if *c == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se.min(59) - offset_min * 60;
    let ms = secs * 1000 + frac_ms;
    Some(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_before_1970_is_the_epoch() {
        assert_eq!(parse("1969-12-31T23:59:59Z"), Some(0));
        assert_eq!(parse("1900-01-01T00:00:00+01:00"), Some(0));
        assert_eq!(parse("1970-01-01T00:00:00.001Z"), Some(1));
        assert_eq!(parse("1969-13-01T00:00:00Z"), None);
    }

    /// The text kept for the last second is the one of the time asked, whatever the
    /// times before it on the same thread.
    #[test]
    fn times_within_and_across_seconds_in_any_order_round_trip() {
        use rand::Rng;
        let mut rng = rand::rng();
        let base = 1_763_000_000_000u64;
        for _ in 0..10_000 {
            // A few seconds apart at most, so that runs of the same second happen.
            let ms = base + rng.random_range(0..4_000);
            assert_eq!(parse(&format(ms, true)), Some(ms));
            assert_eq!(parse(&format(ms, false)), Some(ms / 1000 * 1000));
        }
    }

    #[test]
    fn round_trips_and_offsets() {
        for ms in [0u64, 951_782_400_000, 1_763_000_000_123, 4_102_444_799_999] {
            assert_eq!(parse(&format(ms, true)), Some(ms), "{}", format(ms, true));
        }
        assert_eq!(format(1_763_000_000_000, false), "2025-11-13T02:13:20Z");
        assert_eq!(format(0, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_763_000_000_007, true), "2025-11-13T02:13:20.007Z");
        assert_eq!(
            format(253_402_300_799_999, true),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format(253_402_300_800_000, false), "10000-01-01T00:00:00Z");
        // What the digits pushed in place replace: padded `format!`.
        let mut ms = 0u64;
        while ms < 253_402_300_799_999 {
            let secs = (ms / 1000) as i64;
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let rem = secs.rem_euclid(86_400);
            let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
            let expected = format!(
                "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
                ms % 1000
            );
            assert_eq!(format(ms, true), expected);
            ms = ms * 3 + 7_777_777;
        }
        assert_eq!(parse("2025-11-13T03:13:20+01:00"), Some(1_763_000_000_000));
        assert_eq!(parse("2025-11-13t02:13:20.5z"), Some(1_763_000_000_500));
        assert_eq!(parse("2025-11-12T21:13:20-05:00"), Some(1_763_000_000_000));
        for bad in [
            "",
            "2025-11-13",
            "2025-13-01T00:00:00Z",
            "2025-11-13T02:13:20",
            "2025-11-13T02:13:20+0100",
            "2025-11-13T02:13:20.Z",
            "x025-11-13T02:13:20Z",
            "2026-02-30T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00+01:99",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(parse("2000-02-29T00:00:00+23:59").map(|_| ()), Some(()));
    }
}
