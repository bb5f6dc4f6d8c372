//! Input checks run before anything reaches SQL, so errors name the field.

use crate::error::{Error, Result};

/// Longest username accepted.
pub const MAX_USERNAME: usize = 64;
/// Longest extension accepted.
pub const MAX_EXTENSION: usize = 32;

/// RFC 3261 `user`: `unreserved` and `user-unreserved`. `escaped` (`%HH`) is
/// left out so every account has exactly one spelling in the table.
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c)
}

pub fn username(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_USERNAME {
        return Err(Error::invalid(
            "username",
            format!("must be 1 to {MAX_USERNAME} characters, got {}", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|&c| !is_user_char(c)) {
        return Err(Error::invalid(
            "username",
            format!("{c:?} is not allowed in a SIP user part"),
        ));
    }
    Ok(())
}

pub fn extension(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_EXTENSION || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "extension",
            format!("must be 1 to {MAX_EXTENSION} digits, got {s:?}"),
        ));
    }
    Ok(())
}

/// Lowercase hex of an exact length, as produced by the digest code.
pub fn hex(field: &'static str, s: &str, len: usize) -> Result<()> {
    if s.len() != len || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::invalid(
            field,
            format!("must be {len} lowercase hex digits"),
        ));
    }
    Ok(())
}

/// Free text that ends up in SIP headers or URIs: control characters would
/// allow header injection, so they are refused here once for all callers.
pub fn text(field: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::invalid(field, format!("longer than {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Like [`text`] but also non-empty.
pub fn required(field: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    text(field, s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in [
            "alice",
            "a",
            "bob.smith",
            "x-1_(2)!~*'&=+$,;?/",
            &"a".repeat(64),
        ] {
            username(ok).unwrap();
        }
        for bad in ["", "al ice", "al@ice", "a%41", "é", "a:b", &"a".repeat(65)] {
            let err = username(bad).unwrap_err();
            assert!(err.to_string().contains("username"), "{err}");
        }
    }

    #[test]
    fn extensions_and_hex() {
        extension("1001").unwrap();
        assert!(extension("").is_err());
        assert!(extension("10a").is_err());
        assert!(extension("+100").is_err());
        hex("ha1_md5", &"0a".repeat(16), 32).unwrap();
        assert!(hex("ha1_md5", &"0A".repeat(16), 32).is_err());
        assert!(hex("ha1_md5", &"0a".repeat(15), 32).is_err());
        assert!(text("display_name", "a\r\nVia: x", 100).is_err());
    }
}
