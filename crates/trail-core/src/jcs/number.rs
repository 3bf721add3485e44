//! JCS number encoding: ECMAScript `Number.prototype.toString` for finite
//! doubles. The shortest round-trip digits come from Rust's `{:e}` formatting
//! (which prints the shortest representation that parses back to the same
//! `f64`); this module only lays them out by the ECMAScript rules.

use std::fmt::Write as _;

use super::JcsError;

/// Integers with magnitude below 2^53 are exact in `f64`, and their shortest
/// round-trip digits are all their digits, so they can be printed directly.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Formats `f` exactly as ECMAScript's `Number::toString` would (RFC 8785
/// section 3.2.2.3). `-0` gives `"0"`; NaN and the infinities are an error.
pub fn format_number(f: f64) -> Result<String, JcsError> {
    let mut out = Vec::with_capacity(24);
    write_number(f, &mut out)?;
    // Only ASCII digits, '-', '.', 'e' and '+' are ever written.
    Ok(out.into_iter().map(char::from).collect())
}

/// Appends the ECMAScript rendering of `f` to `out`.
pub(crate) fn write_number(f: f64, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if !f.is_finite() {
        return Err(JcsError::NonFiniteNumber);
    }
    if f == 0.0 {
        out.push(b'0');
        return Ok(());
    }
    if f.fract() == 0.0 && f.abs() < EXACT_INT_LIMIT {
        // In range, so the cast is exact.
        write_int(f as i64, out);
        return Ok(());
    }

    let mut buf = StackBuf::default();
    // StackBuf holds 32 bytes; `{:e}` of an f64 is at most 24
    // ("-1.7976931348623157e308"), so these writes cannot fail.
    if write!(buf, "{f:e}").is_err() {
        return Err(JcsError::NonFiniteNumber);
    }
    // `{:e}` gives the shortest round-trip digit count k, but on an exact
    // tie between two k-digit candidates it may pick the odd one, where
    // ECMAScript picks the one closest to the exact value, ties to even.
    // Exact-precision formatting rounds the exact binary value half-to-even,
    // so re-format with k digits and keep it when it still round-trips.
    let k = buf
        .as_bytes()
        .iter()
        .take_while(|&&b| b != b'e')
        .filter(|b| b.is_ascii_digit())
        .count();
    let mut exact = StackBuf::default();
    if write!(exact, "{f:.*e}", k.saturating_sub(1)).is_ok()
        && std::str::from_utf8(exact.as_bytes())
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            == Some(f)
    {
        buf = exact;
    }
    let text = buf.as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let e_pos = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let (mantissa, exponent) = text.split_at(e_pos);
    let mut digits = [0u8; 24];
    let mut k = 0;
    for &b in mantissa {
        if b.is_ascii_digit() && k < digits.len() {
            digits[k] = b;
            k += 1;
        }
    }
    // Defensive: a k-digit result never ends in 0 (k-1 digits would then
    // round-trip too), but trailing zeros would break the layout below.
    while k > 1 && digits[k - 1] == b'0' {
        k -= 1;
    }
    let digits = &digits[..k];
    let exp = parse_exp(exponent.get(1..).unwrap_or_default());
    // ECMAScript's n: the decimal point sits after n digits.
    let n = exp + 1;
    let k = k as i32;

    if negative {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n) as usize));
        out.extend_from_slice(digits);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.extend_from_slice(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        write_int(i64::from((n - 1).abs()), out);
    }
    Ok(())
}

/// Parses the exponent part printed by `{:e}` (e.g. `-7`, `21`).
fn parse_exp(s: &[u8]) -> i32 {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let v = digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    if neg {
        -v
    } else {
        v
    }
}

/// Appends the decimal digits of `v` without allocating.
pub(crate) fn write_int(v: i64, out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A fixed-size `fmt::Write` sink, so number formatting does not allocate.
#[derive(Default)]
struct StackBuf {
    buf: [u8; 32],
    len: usize,
}

impl StackBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (-0.0, "0"),
            (2e-3, "0.002"),
            (1e30, "1e+30"),
            (4.5, "4.5"),
        ];
        for (f, want) in cases {
            assert_eq!(format_number(f).as_deref(), Ok(want), "{f:e}");
        }
        assert_eq!(format_number(f64::NAN), Err(JcsError::NonFiniteNumber));
    }
}
