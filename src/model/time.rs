//! Instants as seconds since the Unix epoch (UTC), and their text forms.

/// `2027-01-31` for midnight, `2027-01-31T09:00:00Z` otherwise.
pub fn format_instant(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(t) if seconds.rem_euclid(86_400) == 0 => t.strftime("%Y-%m-%d").to_string(),
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => seconds.to_string(),
    }
}

/// Reads `2027-01-31` (midnight UTC) or an RFC 3339 instant (`2027-01-31T09:00:00Z`,
/// `2027-01-31T10:00:00+01:00`).
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() == 10 {
        return format!("{text}T00:00:00Z")
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_second());
    }
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        let day = parse_instant("2027-01-31").unwrap();
        assert_eq!(format_instant(day), "2027-01-31");
        let t = parse_instant("2027-01-31T09:30:00Z").unwrap();
        assert_eq!(t - day, 9 * 3600 + 1800);
        assert_eq!(format_instant(t), "2027-01-31T09:30:00Z");
        assert_eq!(parse_instant("2027-02-30"), None);
    }
}

/// Reads a duration such as `30 days`, `2weeks`, `12 h` or `90 min` into seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '_')?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.replace('_', "").parse().ok()?;
    let factor = match unit.trim() {
        "s" => 1,
        "min" => 60,
        "h" => 3_600,
        "day" | "days" | "d" => 86_400,
        "week" | "weeks" | "w" => 604_800,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;

    #[test]
    fn durations_read_with_or_without_a_space() {
        assert_eq!(parse_duration("30 days"), Some(30 * 86_400));
        assert_eq!(parse_duration("2weeks"), Some(14 * 86_400));
        assert_eq!(parse_duration("90 min"), Some(5_400));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("3 fortnights"), None);
    }
}
