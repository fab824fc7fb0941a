//! Debian version numbers and their ordering, as `dpkg --compare-versions`
//! defines it (deb-version(7)): `[epoch:]upstream[-revision]`, compared
//! epoch first (numerically), then upstream, then revision, each with the
//! dpkg string algorithm where `~` sorts before everything, even the end.

use super::error::{DebError, VersionProblem};
use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    epoch: u64,
    upstream: String,
    revision: String,
    text: String,
}

impl Version {
    /// Parses a version string. Refuses what dpkg refuses (empty parts, a
    /// non-numeric epoch, characters outside the allowed set); an upstream
    /// part that does not start with a digit only makes dpkg warn, so it is
    /// accepted.
    pub fn parse(s: &str) -> Result<Version, DebError> {
        let t = s.trim();
        let bad = |problem| DebError::BadVersion { input: t.to_string(), problem };
        if t.is_empty() {
            return Err(bad(VersionProblem::Empty));
        }
        if t.chars().any(|c| c.is_whitespace()) {
            return Err(bad(VersionProblem::Whitespace));
        }
        let (epoch, rest) = match t.split_once(':') {
            Some((e, r)) => {
                let n = e.parse::<u64>().map_err(|_| bad(VersionProblem::NonNumericEpoch))?;
                (n, r)
            }
            None => (0, t),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if rest.ends_with('-') {
            return Err(bad(VersionProblem::EmptyRevision));
        }
        if upstream.is_empty() {
            return Err(bad(VersionProblem::EmptyUpstream));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
        if !upstream.chars().all(ok) || !revision.chars().all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c)) {
            return Err(bad(VersionProblem::BadCharacters));
        }
        Ok(Version { epoch, upstream: upstream.to_string(), revision: revision.to_string(), text: t.to_string() })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's `order()`: `~` first, then the end of the string (and digits),
/// then letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(b'~') => -1,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp()`, a direct transcription.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0i32;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = a[i] as i32 - b[j] as i32;
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// A version relation operator of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=` (also the obsolete `<`)
    Le,
    /// `=`
    Eq,
    /// `>=` (also the obsolete `>`)
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    /// Parses `<<`, `<=`, `=`, `>=`, `>>` (and the obsolete `<`, `>`).
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// True when `have OP want` holds.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let c = have.cmp(want);
        match self {
            Op::Lt => c == Ordering::Less,
            Op::Le => c != Ordering::Greater,
            Op::Eq => c == Ordering::Equal,
            Op::Ge => c != Ordering::Less,
            Op::Gt => c == Ordering::Greater,
        }
    }

    /// The operator as written in control files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Orderings checked with `dpkg --compare-versions A lt B` on Debian 12.
    #[test]
    fn known_dpkg_orderings() {
        let ascending = [
            ("1.0~rc1", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0+b1"),
            ("1.0", "1.0.1"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0.0"),
            ("1.2.3", "1.2.10"),
            ("2.36-9+deb12u13", "2.36-9+deb12u14"),
            ("3.0.22-1~deb12u2", "3.0.22-1"),
            ("12.2.0-14", "12.2.0-14+deb12u1"),
            ("1.2.13.dfsg-1", "1:1.2.13.dfsg-1"),
            ("9:1.0", "10:0.1"),
            ("1.0-1", "1.0-1.1"),
            ("1.0-1", "1.0-2"),
            ("1.0-9", "1.0-10"),
            ("0.9", "1.0-0"),
            ("a", "b"),
            ("1.0-1~bpo1", "1.0-1"),
            ("2026e-0+deb12u1", "2026f-0+deb12u1"),
            ("20230311", "20250419~deb12u2"),
            ("1.0-0", "1.0-a"),
            ("1.0-1", "1.0+dfsg"),
        ];
        for (a, b) in ascending {
            assert_eq!(v(a).cmp(&v(b)), Ordering::Less, "{a} < {b}");
            assert_eq!(v(b).cmp(&v(a)), Ordering::Greater, "{b} > {a}");
        }
        for (a, b) in [("1.0", "1.00"), ("0:1.0", "1.0"), ("1.0-0", "1.0"), ("1.01", "1.1")] {
            assert_eq!(v(a).cmp(&v(b)), Ordering::Equal, "{a} = {b}");
        }
    }

    #[test]
    fn relations() {
        assert!(Op::Ge.holds(&v("2.36-9+deb12u14"), &v("2.36")));
        assert!(Op::Lt.holds(&v("2.36-9"), &v("2.37")));
        assert!(!Op::Gt.holds(&v("1.0"), &v("1.0")));
        assert!(Op::Eq.holds(&v("0:1.0"), &v("1.0")));
        assert_eq!(Op::parse(">"), Some(Op::Ge));
        assert_eq!(Op::parse("=="), None);
    }

    #[test]
    fn bad_versions_are_errors() {
        assert!(Version::parse("").is_err());
        assert!(Version::parse("x:1.0").is_err());
        assert!(Version::parse("1.0 2").is_err());
        assert!(Version::parse("1.0_2").is_err());
        assert!(Version::parse(":1").is_err());
        assert!(Version::parse("1.0-").is_err());
    }
}
