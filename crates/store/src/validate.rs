//! Input checks run before anything reaches SQL, so errors name the field.

use std::net::IpAddr;

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

/// Longest telephone number (DID, fixed caller ID) accepted.
pub const MAX_NUMBER: usize = 32;

/// A telephone number: digits with an optional leading `+`.
pub fn number(field: &'static str, s: &str) -> Result<()> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || s.len() > MAX_NUMBER || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            field,
            format!("must be digits with an optional leading +, at most {MAX_NUMBER}, got {s:?}"),
        ));
    }
    Ok(())
}

/// A host to send SIP to: an IP address (IPv6 without brackets) or a DNS
/// name of letter-digit-hyphen labels (RFC 1123).
pub fn host(field: &'static str, s: &str) -> Result<()> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || s.len() > 253 || !name.split('.').all(label_ok) {
        return Err(Error::invalid(
            field,
            format!("{s:?} is neither an IP address nor a DNS name"),
        ));
    }
    Ok(())
}

/// An IPv4 or IPv6 address or CIDR block, returned in canonical form
/// (`2001:DB8::/32` becomes `2001:db8::/32`). A block with host bits set is
/// refused rather than silently widened: `10.1.2.3/8` is more likely a typo
/// than a wish to trust all of `10.0.0.0/8`.
pub fn cidr(field: &'static str, s: &str) -> Result<String> {
    let bad = |reason: String| Error::invalid(field, format!("{s:?}: {reason}"));
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("not an IPv4 or IPv6 address".into()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let Some(prefix) = prefix else {
        return Ok(addr.to_string());
    };
    let len: u8 = match prefix.parse() {
        Ok(len) if len <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => len,
        _ => return Err(bad(format!("prefix length must be 0 to {max}"))),
    };
    let network = mask(addr, len);
    if network != addr {
        return Err(bad(format!(
            "host bits set; the network is {network}/{len}"
        )));
    }
    Ok(format!("{addr}/{len}"))
}

/// `addr` with all but the first `len` bits cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
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

    #[test]
    fn numbers_hosts_and_cidrs() {
        for ok in ["+4930123456", "0049301", "1"] {
            number("number", ok).unwrap();
        }
        for bad in ["", "+", "++1", "1+", "12 3", "0x1", &"1".repeat(33)] {
            assert!(number("number", bad).is_err(), "{bad:?}");
        }
        for ok in [
            "sip.example.com",
            "sip.example.com.",
            "a-1.b",
            "192.0.2.1",
            "2001:db8::1",
        ] {
            host("host", ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "-a.com",
            "a..b",
            "a_b.com",
            "[2001:db8::1]",
            "h:5060",
            "a b",
        ] {
            assert!(host("host", bad).is_err(), "{bad:?}");
        }
        assert_eq!(cidr("t", "192.0.2.0/24").unwrap(), "192.0.2.0/24");
        assert_eq!(cidr("t", "192.0.2.7").unwrap(), "192.0.2.7");
        assert_eq!(cidr("t", "0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(cidr("t", "2001:DB8::/32").unwrap(), "2001:db8::/32");
        assert_eq!(cidr("t", "::1/128").unwrap(), "::1/128");
        for bad in [
            "",
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "192.0.2.1/24",
            "2001:db8::1/32",
            "::/129",
            "example.com/24",
            "192.0.2.0/24/1",
        ] {
            let err = cidr("inbound_trust", bad).unwrap_err();
            assert!(err.to_string().contains("inbound_trust"), "{bad:?}: {err}");
        }
        assert!(cidr("t", "10.1.2.3/8")
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/8"));
    }
}
