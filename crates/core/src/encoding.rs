//! Small rules several parts share, written once: form decoding of query strings and S3 event
//! keys, and full-jitter backoff between retries.

use std::borrow::Cow;
use std::time::Duration;

/// Text decoded as HTML forms encode it (`+` is a space, `%XX` a byte): query strings, and the
/// object keys in S3 event notifications. `None` for a `%` without two hex digits after it, or
/// bytes that are not UTF-8.
pub fn form_decode(part: &str) -> Option<Cow<'_, str>> {
    if !part.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(part));
    }
    let bytes = part.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let digit = |b: u8| (b as char).to_digit(16);
                decoded.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 2;
            }
            b => decoded.push(b),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

/// Full-jitter exponential backoff before retry `retry` (0 for the first): a wait drawn evenly
/// from zero to `base · 2^retry`, never above `cap`.
pub fn backoff(retry: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1 << retry.min(20)).min(cap);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_refuse_broken_escapes() {
        assert_eq!(form_decode("a+b%2Fc%C3%BC").as_deref(), Some("a b/cü"));
        assert!(matches!(form_decode("plain"), Some(Cow::Borrowed("plain"))));
        for broken in ["%", "%2", "%zz", "%ff"] {
            assert_eq!(form_decode(broken), None, "{broken}");
        }
    }

    #[test]
    fn backoff_stays_under_its_ceilings() {
        let (base, cap) = (Duration::from_millis(200), Duration::from_secs(20));
        for retry in 0..64 {
            let wait = backoff(retry, base, cap);
            assert!(wait <= cap && wait <= base.saturating_mul(1 << retry.min(20)));
        }
    }
}
