//! Times given by people: unix seconds, an RFC 3339 date-time, or a bare
//! date (midnight UTC).

/// Unix seconds of `text`: `1717200000`, `2024-06-01T00:00:00Z`,
/// `2024-06-01T02:00:00+02:00` (fractions of a second are dropped) or
/// `2024-06-01` (midnight UTC).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "`{text}` is neither unix seconds, an RFC 3339 date-time such as \
             2024-06-01T12:00:00Z nor a date such as 2024-06-01"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let (date, rest) = (s.get(..10).ok_or_else(bad)?, &s[10..]);
    let days = date_days(date).ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(days * 86_400);
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    let clock = rest.get(..8).ok_or_else(bad)?;
    let mut zone = &rest[8..];
    let b = clock.as_bytes();
    if b[2] != b':' || b[5] != b':' {
        return Err(bad());
    }
    let hour = number(&clock[0..2]).filter(|&h| h < 24).ok_or_else(bad)?;
    let minute = number(&clock[3..5]).filter(|&m| m < 60).ok_or_else(bad)?;
    // 60 is a leap second.
    let second = number(&clock[6..8]).filter(|&s| s <= 60).ok_or_else(bad)?;
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        "" => {
            return Err(format!(
                "`{text}` has no time zone: add Z for UTC or an offset such as +02:00"
            ))
        }
        _ => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let z = &zone[1..];
            if z.len() != 5 || z.as_bytes()[2] != b':' {
                return Err(bad());
            }
            let h = number(&z[0..2]).filter(|&h| h < 24).ok_or_else(bad)?;
            let m = number(&z[3..5]).filter(|&m| m < 60).ok_or_else(bad)?;
            sign * (h * 3600 + m * 60)
        }
    };
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn number(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn date_days(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (
        number(&date[0..4])?,
        number(&date[5..7])?,
        number(&date[8..10])?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1717200000").unwrap(), 1_717_200_000);
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert_eq!(parse_time("2024-06-01").unwrap(), 1_717_200_000);
        assert_eq!(parse_time("2024-06-01T00:00:00Z").unwrap(), 1_717_200_000);
        assert_eq!(parse_time("2024-06-01t00:00:00z").unwrap(), 1_717_200_000);
        assert_eq!(
            parse_time("2024-06-01T02:00:00+02:00").unwrap(),
            1_717_200_000
        );
        assert_eq!(
            parse_time("2024-05-31T19:30:00.123-04:30").unwrap(),
            1_717_200_000
        );
        assert_eq!(parse_time("2000-02-29 12:00:00Z").unwrap(), 951_825_600);
        assert_eq!(parse_time("1969-12-31").unwrap(), -86_400);
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "-5",
            "yesterday",
            "2024-6-1",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-06-01T00:00:00",
            "2024-06-01T24:00:00Z",
            "2024-06-01T00:00Z",
            "2024-06-01T00:00:00.Z",
            "2024-06-01T00:00:00+0200",
            "2024-06-01X",
            "99999999999999999999999",
            "2024-06-01Té0:00:00Z",
            "2024-06-01T00:00:00+é0:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert!(parse_time("2024-06-01T00:00:00")
            .unwrap_err()
            .contains("time zone"));
    }
}
