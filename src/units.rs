//! Quantities users write: ages (`30d`), durations (`250ms`, `5m`) and
//! sizes (`4MiB`). One parser, one error type.

use std::time::Duration;

/// What kind of quantity is parsed; it decides the units and the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// `30d`, `12h`, `90m`, `2w`, `45s`: a unit is required.
    Age,
    /// `250ms`, `30s`, `5m`, `1h`; plain numbers are seconds; zero is refused.
    Duration,
    /// `4MiB`, `5MB`, `512KiB`, `1048576`; zero is refused.
    Size,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::Age => "an age",
            Quantity::Duration => "a duration",
            Quantity::Size => "a size",
        }
    }

    /// Units and their multipliers (milliseconds for time, bytes for sizes).
    fn units(self) -> &'static [(&'static str, u64)] {
        match self {
            Quantity::Age => &[("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)],
            Quantity::Duration => &[("", 1000), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)],
            Quantity::Size => &[
                ("", 1),
                ("b", 1),
                ("k", 1000),
                ("kb", 1000),
                ("kib", 1 << 10),
                ("m", 1_000_000),
                ("mb", 1_000_000),
                ("mib", 1 << 20),
                ("g", 1_000_000_000),
                ("gb", 1_000_000_000),
                ("gib", 1 << 30),
            ],
        }
    }

    fn examples(self) -> &'static str {
        match self {
            Quantity::Age => "use s, m, h, d or w, e.g. 30d",
            Quantity::Duration => "use ms, s, m or h, e.g. 30s",
            Quantity::Size => "use B, KB, KiB, MB, MiB, GB or GiB, e.g. 4MiB",
        }
    }
}

/// What is wrong with a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No number in front.
    NoNumber,
    /// A unit that is not one of the kind's.
    UnknownUnit(String),
    /// Zero, where zero means nothing.
    Zero,
    /// Beyond what can be represented.
    TooLarge,
}

/// A quantity that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self))]
pub struct QuantityError {
    /// What was given.
    pub input: String,
    /// What it should have been.
    pub kind: Quantity,
    /// What is wrong.
    pub problem: Problem,
}

fn describe(e: &QuantityError) -> String {
    let (input, kind) = (&e.input, e.kind);
    match &e.problem {
        Problem::NoNumber => {
            format!("`{input}` is not {}\nhint: write a number and a unit ({})", kind.name(), kind.examples())
        }
        Problem::UnknownUnit(u) => format!("`{input}`: unknown unit `{u}`\nhint: {}", kind.examples()),
        Problem::Zero => format!("`{input}` is not a usable {}: it is zero", &kind.name()[2..]),
        Problem::TooLarge => format!("`{input}` is too large"),
    }
}

/// Parses `s` as `kind`: the number, in the kind's smallest unit
/// (milliseconds for ages and durations, bytes for sizes).
pub fn parse(s: &str, kind: Quantity) -> Result<u64, QuantityError> {
    let err = |problem| QuantityError { input: s.to_string(), kind, problem };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err(Problem::NoNumber))?;
    let unit = unit.trim().to_ascii_lowercase();
    let mul = kind
        .units()
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| err(Problem::UnknownUnit(unit.clone())))?;
    let v = n.checked_mul(mul).ok_or_else(|| err(Problem::TooLarge))?;
    if v == 0 && kind != Quantity::Age {
        return Err(err(Problem::Zero));
    }
    Ok(v)
}

/// An age (`30d`).
pub fn parse_age(s: &str) -> Result<Duration, QuantityError> {
    parse(s, Quantity::Age).map(Duration::from_millis)
}

/// A duration (`250ms`, `30s`, `5m`).
pub fn parse_duration(s: &str) -> Result<Duration, QuantityError> {
    parse(s, Quantity::Duration).map(Duration::from_millis)
}

/// A size in bytes (`4MiB`).
pub fn parse_size(s: &str) -> Result<u64, QuantityError> {
    parse(s, Quantity::Size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_age("0s").unwrap(), Duration::ZERO);
        assert!(parse_age("30").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_age("d").unwrap_err().to_string().contains("not an age"));
        assert!(parse_age("3y").unwrap_err().to_string().contains("use s, m, h, d or w"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration(" 1h ").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("0s").is_err() && parse_duration("soon").is_err() && parse_duration("5d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("5MB").unwrap(), 5_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert!(parse_size("0").is_err() && parse_size("4 parsecs").is_err() && parse_size("MiB").is_err());
        insta::assert_snapshot!(parse_size("4 parsecs").unwrap_err(), @r"
        `4 parsecs`: unknown unit `parsecs`
        hint: use B, KB, KiB, MB, MiB, GB or GiB, e.g. 4MiB
        ");
    }
}
