//! Byte classes and small scanning helpers shared by the parsers (RFC 3261 §25).

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};

const TOKEN: u8 = 1;
const WORD: u8 = 2;
const UNRESERVED: u8 = 4;
const USER: u8 = 8;
const PASSWORD: u8 = 16;
const PARAM: u8 = 32;
const HNV: u8 = 64;
const HOST: u8 = 128;

const fn build_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mut v = 0;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN;
        }
        if alnum
            || matches!(
                c,
                b'-' | b'.'
                    | b'!'
                    | b'%'
                    | b'*'
                    | b'_'
                    | b'+'
                    | b'`'
                    | b'\''
                    | b'~'
                    | b'('
                    | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
        {
            v |= WORD;
        }
        let unreserved = alnum
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        if unreserved {
            v |= UNRESERVED;
        }
        // '%' is admitted by the classes below and checked as an escape separately.
        if unreserved
            || c == b'%'
            || matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
        {
            v |= USER;
        }
        if unreserved || c == b'%' || matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
            v |= PASSWORD;
        }
        if unreserved || c == b'%' || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            v |= PARAM;
        }
        if unreserved || c == b'%' || matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            v |= HNV;
        }
        if alnum || matches!(c, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        t[i] = v;
        i += 1;
    }
    t
}

static TABLE: [u8; 256] = build_table();

#[inline]
pub(crate) fn is_token(c: u8) -> bool {
    TABLE[c as usize] & TOKEN != 0
}
#[inline]
pub(crate) fn is_word(c: u8) -> bool {
    TABLE[c as usize] & WORD != 0
}
#[inline]
pub(crate) fn is_user(c: u8) -> bool {
    TABLE[c as usize] & USER != 0
}
#[inline]
pub(crate) fn is_password(c: u8) -> bool {
    TABLE[c as usize] & PASSWORD != 0
}
#[inline]
pub(crate) fn is_param(c: u8) -> bool {
    TABLE[c as usize] & PARAM != 0
}
#[inline]
pub(crate) fn is_hnv(c: u8) -> bool {
    TABLE[c as usize] & HNV != 0
}
#[inline]
pub(crate) fn is_host(c: u8) -> bool {
    TABLE[c as usize] & HOST != 0
}

/// Linear whitespace inside a header value. CR and LF only occur there as
/// part of a fold (the header indexer guarantees it), so they count as LWS.
#[inline]
pub(crate) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn all_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token(c))
}

/// Trims LWS (including folds) from both ends.
pub(crate) fn trim_lws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !is_lws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|&c| !is_lws(c)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(&[])
}

/// Parses 1*DIGIT into a `u64`, `None` on empty, non-digit or overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Digits parsed as u32. Distinguishes "not a number" from "too large".
pub(crate) fn parse_u32_checked(s: &[u8]) -> Result<u32, ErrorKind> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::BadParam);
    }
    parse_u64(s)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(ErrorKind::ValueOutOfRange)
}

#[inline]
pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Checks that every byte is in `class` and every '%' starts a `%HH` escape.
pub(crate) fn check_escaped(s: &[u8], class: impl Fn(u8) -> bool) -> Result<(), usize> {
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(&a), Some(&b)) if hex_val(a).is_some() && hex_val(b).is_some() => i += 3,
                _ => return Err(i),
            }
        } else if class(c) {
            i += 1;
        } else {
            return Err(i);
        }
    }
    Ok(())
}

/// Decodes `%HH` escapes. Not recursive: "%2541" becomes "%41" (RFC 3986).
/// Malformed escapes are kept verbatim.
pub fn pct_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            if let (Some(a), Some(b)) = (
                s.get(i + 1).and_then(|&x| hex_val(x)),
                s.get(i + 2).and_then(|&x| hex_val(x)),
            ) {
                out.push(a * 16 + b);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

/// Compares `raw` (possibly %-escaped) with `plain`, ASCII case-insensitively,
/// without allocating.
pub(crate) fn pct_eq_ignore_case(raw: &[u8], plain: &[u8]) -> bool {
    if memchr::memchr(b'%', raw).is_none() {
        return raw.eq_ignore_ascii_case(plain);
    }
    let mut i = 0;
    let mut j = 0;
    while let Some(&c) = raw.get(i) {
        let (byte, step) = if c == b'%' {
            match (
                raw.get(i + 1).and_then(|&x| hex_val(x)),
                raw.get(i + 2).and_then(|&x| hex_val(x)),
            ) {
                (Some(a), Some(b)) => (a * 16 + b, 3),
                _ => (c, 1),
            }
        } else {
            (c, 1)
        };
        match plain.get(j) {
            Some(&p) if p.eq_ignore_ascii_case(&byte) => {}
            _ => return false,
        }
        i += step;
        j += 1;
    }
    j == plain.len()
}

/// Removes the backslash of each quoted-pair. Input is the inside of a
/// quoted-string (quotes already stripped).
pub fn unescape_quoted(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'\\' {
            if let Some(&n) = s.get(i + 1) {
                out.push(n);
                i += 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

/// Replaces each fold (CRLF followed by whitespace) with a single SP.
pub(crate) fn unfold(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\r', b'\n', s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'\r' || c == b'\n' {
            // Drop trailing whitespace already written, then the fold itself.
            while out.last().is_some_and(|&b| b == b' ' || b == b'\t') {
                out.pop();
            }
            while s.get(i).is_some_and(|&b| is_lws(b)) {
                i += 1;
            }
            out.push(b' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

/// A cursor over a header value.
pub(crate) struct Cursor<'a> {
    pub s: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    pub fn at(s: &'a [u8], pos: usize) -> Self {
        Cursor { s, pos }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    #[inline]
    pub fn is_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips LWS; returns whether any was skipped.
    #[inline]
    pub fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips LWS then eats `c` (SWS c SWS); restores the position if `c` is absent.
    pub fn eat_sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(c) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or(&[])
    }

    /// 1*token as &str.
    pub fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token);
        if t.is_empty() {
            None
        } else {
            std::str::from_utf8(t).ok()
        }
    }

    /// A quoted-string at the cursor; returns its inside (escapes kept).
    pub fn quoted(&mut self) -> Result<&'a [u8], ParseError> {
        let open = self.pos;
        if !self.eat(b'"') {
            return Err(ParseError::new(ErrorKind::UnbalancedQuotes, open));
        }
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(ParseError::new(ErrorKind::UnbalancedQuotes, open)),
                Some(b'"') => {
                    let inner = self.s.get(start..self.pos).unwrap_or(&[]);
                    self.pos += 1;
                    return Ok(inner);
                }
                Some(b'\\') => match self.s.get(self.pos + 1) {
                    Some(&n) if n != b'\r' && n != b'\n' => self.pos += 2,
                    _ => return Err(ParseError::new(ErrorKind::UnbalancedQuotes, open)),
                },
                // Raw control characters are not qdtext; a fold is LWS.
                Some(c) if c < 0x20 && c != b'\t' && c != b'\r' && c != b'\n' || c == 0x7f => {
                    return Err(ParseError::new(ErrorKind::BadValue, self.pos))
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    pub fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, self.pos)
    }
}

/// Splits at the first `c` (ASCII), without the pattern machinery of `str::find`.
#[inline]
pub(crate) fn split_at_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let p = memchr::memchr(c, s.as_bytes())?;
    Some((s.get(..p)?, s.get(p + 1..)?))
}

pub(crate) fn as_str(s: &[u8]) -> Option<&str> {
    std::str::from_utf8(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(all_token(b"!interesting-Method0123456789_*+`.%indeed'~"));
        assert!(!all_token(b"a b"));
        assert!(!all_token(b""));
        assert!(is_word(b'"') && is_word(b'{') && !is_word(b' '));
        assert!(is_user(b';') && is_user(b'?') && !is_user(b'@') && !is_user(b':'));
        assert!(is_password(b'&') && !is_password(b';'));
        assert!(is_param(b':') && !is_param(b';') && !is_param(b'='));
        assert!(is_hnv(b'?') && !is_hnv(b'&') && !is_hnv(b'='));
    }

    #[test]
    fn numbers_with_overflow_checks() {
        assert_eq!(parse_u64(b"0068"), Some(68));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u32_checked(b"4294967295"), Ok(u32::MAX));
        assert_eq!(
            parse_u32_checked(b"4294967296"),
            Err(ErrorKind::ValueOutOfRange)
        );
        assert_eq!(parse_u32_checked(b"12a"), Err(ErrorKind::BadParam));
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(&*pct_decode(b"I%20have%20spaces"), b"I have spaces");
        assert_eq!(&*pct_decode(b"null-%00-null"), b"null-\0-null");
        assert_eq!(&*pct_decode(b"v%61lue%25%34%31"), b"value%41");
        assert_eq!(&*pct_decode(b"bad%zz%4"), b"bad%zz%4");
        assert!(matches!(pct_decode(b"plain"), Cow::Borrowed(_)));
        assert!(pct_eq_ignore_case(b"%6C%72", b"lr"));
        assert!(pct_eq_ignore_case(b"n%61me", b"NAME"));
        assert!(!pct_eq_ignore_case(b"n%61me", b"nam"));
        assert!(!pct_eq_ignore_case(b"n%61m", b"name"));
        assert_eq!(check_escaped(b"ab%41c", is_user), Ok(()));
        assert_eq!(check_escaped(b"ab%4", is_user), Err(2));
        assert_eq!(check_escaped(b"a@b", is_user), Err(1));
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cursor::new(br#""J Rosenberg \\\"" <x>"#);
        let q = c.quoted().unwrap();
        assert_eq!(q, br#"J Rosenberg \\\""#);
        assert_eq!(&*unescape_quoted(q), br#"J Rosenberg \""#);
        let mut c = Cursor::new(b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\"");
        assert_eq!(
            &*unescape_quoted(c.quoted().unwrap()),
            b"BEL:\x07 NUL:\x00 DEL:\x7f"
        );
        let mut c = Cursor::new(b"\"Mr. J. User <sip:j.user@example.com>");
        assert_eq!(c.quoted().unwrap_err().kind, ErrorKind::UnbalancedQuotes);
        let mut c = Cursor::new(b"\"ends in backslash\\");
        assert_eq!(c.quoted().unwrap_err().kind, ErrorKind::UnbalancedQuotes);
    }

    #[test]
    fn unfolding() {
        assert_eq!(
            &*unfold(b"newfangled value\r\n continued newfangled value"),
            b"newfangled value continued newfangled value"
        );
        assert_eq!(&*unfold(b"a  \r\n\t  b"), b"a b");
        assert_eq!(trim_lws(b" \r\n x y \t"), b"x y");
        assert_eq!(trim_lws(b"   "), b"");
    }
}
