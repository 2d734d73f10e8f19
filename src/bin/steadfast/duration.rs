//! Readable durations on the command line: `7d`, `12h`, `90m`, `1w`,
//! `1h30m`, `1.5h`, `250ms`; and the same form for output.

use std::time::Duration;

/// Parses a duration: one or more `<number><unit>` (a decimal number, then
/// `ms`, `s`, `m`, `h`, `d` or `w`), spaces allowed between them. A number
/// without a unit is refused, so that `7` is not read as seven seconds by
/// someone who meant days.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration: write for example 7d, 12h, 30m or 1h30m".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let seconds = match unit {
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3_600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ms, s, m, h, d or w)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (ms, s, m, h, d or w)"
                ));
            }
        };
        let part = Duration::try_from_secs_f64(value * seconds)
            .map_err(|_| format!("invalid duration {text:?}: out of range"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("invalid duration {text:?}: out of range"))?;
    }
    Ok(total)
}

/// A duration in the largest whole units that give it exactly: `7d`,
/// `1h30m`, `250ms`, `0s`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let millis = d.subsec_millis();
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_forms() {
        let h = 3_600;
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 24 * h)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 24 * h)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(h + 1_800)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(h + 1_800)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(h + 1_800)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            "",
            "7",
            "d",
            "7 days ago",
            "7y",
            "1h-",
            "99999999999999999999w",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("7").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["7d", "1h30m", "250ms", "0s", "1d2h3m4s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
