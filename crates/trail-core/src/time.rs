//! RFC 3339 timestamps to and from Unix microseconds (UTC).
//!
//! Parsing is strict: a full `date-time` with seconds and an explicit offset
//! (`Z` or `±hh:mm`), years 0000..=9999, no leap second. Fractions beyond
//! microseconds are truncated. Formatting always writes UTC with exactly six
//! fractional digits and a `Z`, so equal instants format identically.

const US_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Parses an RFC 3339 `date-time` with offset into Unix microseconds (UTC).
///
/// Accepts `T`/`t` as the separator and `Z`/`z` as UTC, per RFC 3339 5.6.
/// The error text describes the first problem found.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.digits(4, "year")?;
    p.expect(b'-', "'-' after year")?;
    let month = p.digits(2, "month")?;
    p.expect(b'-', "'-' after month")?;
    let day = p.digits(2, "day")?;
    match p.next() {
        Some(b'T' | b't') => {}
        _ => return Err("expected 'T' between date and time".into()),
    }
    let hour = p.digits(2, "hour")?;
    p.expect(b':', "':' after hour")?;
    let minute = p.digits(2, "minute")?;
    p.expect(b':', "':' after minute")?;
    let second = p.digits(2, "second")?;

    let mut micros = 0i64;
    if p.peek() == Some(b'.') {
        p.i += 1;
        let start = p.i;
        while let Some(d @ b'0'..=b'9') = p.peek() {
            if p.i - start < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            p.i += 1;
        }
        let n = p.i - start;
        if n == 0 {
            return Err("expected digits after '.'".into());
        }
        for _ in n..6 {
            micros *= 10;
        }
    }

    let offset_secs = match p.next() {
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = p.digits(2, "offset hour")?;
            p.expect(b':', "':' in offset")?;
            let om = p.digits(2, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err("offset out of range".into());
            }
            let v = oh * 3600 + om * 60;
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return Err("expected a time zone offset ('Z' or '+hh:mm')".into()),
    };
    if p.i != b.len() {
        return Err("unexpected characters after the offset".into());
    }

    if !(1..=12).contains(&month) {
        return Err("month out of range".into());
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range".into());
    }
    if hour > 23 || minute > 59 {
        return Err("time out of range".into());
    }
    if second > 59 {
        return Err("second out of range (leap seconds are not supported)".into());
    }

    let days = days_from_civil(year, month, day);
    let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(secs * US_PER_SEC + micros)
}

/// Formats Unix microseconds as `YYYY-MM-DDThh:mm:ss.ffffffZ` (UTC).
///
/// Instants outside years 0000..=9999 cannot be written in RFC 3339; they are
/// formatted with a signed or wider year so the output stays unambiguous.
pub fn format_rfc3339(us: i64) -> String {
    let secs = us.div_euclid(US_PER_SEC);
    let micros = us.rem_euclid(US_PER_SEC);
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else {
        format!("{y:+05}")
    };
    format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Byte cursor over the timestamp text.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), String> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    fn digits(&mut self, n: usize, what: &str) -> Result<i64, String> {
        let mut v = 0i64;
        for _ in 0..n {
            match self.next() {
                Some(d @ b'0'..=b'9') => v = v * 10 + i64::from(d - b'0'),
                _ => return Err(format!("expected {n} digits for the {what}")),
            }
        }
        Ok(v)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, using 400-year eras
/// that start on March 1st (so the leap day is the last day of a year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_examples() {
        let us = parse_rfc3339("2026-11-23T14:34:04.123456Z");
        assert_eq!(
            us.map(format_rfc3339).as_deref(),
            Ok("2026-11-23T14:34:04.123456Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9999999z"), Ok(-1));
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            parse_rfc3339("2024-02-29t12:00:00.5-05:30")
                .map(format_rfc3339)
                .as_deref(),
            Ok("2024-02-29T17:30:00.500000Z")
        );
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "2026-11-23",
            "2026-11-23T14:34:04",
            "2026-11-23 14:34:04Z",
            "2026-11-23T14:34Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T23:59:60Z",
            "2026-11-23T14:34:04.Z",
            "2026-11-23T14:34:04+0100",
            "2026-11-23T14:34:04+24:00",
            "2026-11-23T14:34:04Zjunk",
            "+2026-11-23T14:34:04Z",
            "2026-11-23T14:34:04.123\u{e9}Z",
            "1e9",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }
}
