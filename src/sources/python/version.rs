//! PEP 440 versions and specifiers: just what marker evaluation,
//! `requires-python` checks and the CUDA consistency check need.
//!
//! Ordering follows `packaging.version` (`_cmpkey`): epoch, release with
//! trailing zeros ignored, then dev-only < pre < final < post, dev last, and
//! local labels after the public version.

use std::cmp::Ordering;
use std::fmt;

/// A parsed PEP 440 version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Epoch (`N!`).
    pub epoch: u64,
    /// Release numbers.
    pub release: Vec<u64>,
    /// Pre-release: 0 = a, 1 = b, 2 = rc, with its number.
    pub pre: Option<(u8, u64)>,
    /// Post-release number.
    pub post: Option<u64>,
    /// Development release number.
    pub dev: Option<u64>,
    /// Local label segments (`+cu128` → `["cu128"]`).
    pub local: Vec<String>,
}

/// A string that is not a PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a PEP 440 version")]
pub struct VersionError(pub String);

impl Version {
    /// Parses a version, accepting the spellings PEP 440 normalises
    /// (`v1.0`, `1.0-alpha.1`, `1.0.post-2`, upper case, ...).
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let err = || VersionError(s.to_string());
        let lower = s.trim().to_ascii_lowercase();
        let (public, local) = match lower.split_once('+') {
            Some((p, l)) => (p, Some(l)),
            None => (lower.as_str(), None),
        };
        let mut rest = public.strip_prefix('v').unwrap_or(public);
        let mut epoch = 0;
        if let Some((e, r)) = rest.split_once('!') {
            epoch = e.parse().map_err(|_| err())?;
            rest = r;
        }
        let b = rest.as_bytes();
        let mut i = 0;
        let mut release = Vec::new();
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(err());
            }
            release.push(rest[start..i].parse().map_err(|_| err())?);
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                continue;
            }
            break;
        }
        let mut v = Version { epoch, release, pre: None, post: None, dev: None, local: Vec::new() };
        let mut tail = &rest[i..];
        // Each optional part: [sep] word [sep] number.
        fn take_word<'a>(t: &'a str, words: &[(&str, u8)]) -> Option<(u8, &'a str)> {
            let t2 = t.strip_prefix(['.', '-', '_']).unwrap_or(t);
            for (w, k) in words {
                if let Some(r) = t2.strip_prefix(w) {
                    return Some((*k, r));
                }
            }
            None
        }
        fn take_num(t: &str) -> (Option<u64>, &str) {
            let t2 = t.strip_prefix(['.', '-', '_']).unwrap_or(t);
            let n = t2.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return (None, t);
            }
            (t2[..n].parse().ok(), &t2[n..])
        }
        // Longest spellings first so `rc` is not read as `r` + `c`.
        const PRE: [(&str, u8); 7] =
            [("alpha", 0), ("beta", 1), ("preview", 2), ("pre", 2), ("rc", 2), ("a", 0), ("b", 1)];
        const PRE_C: [(&str, u8); 1] = [("c", 2)];
        if let Some((k, r)) = take_word(tail, &PRE).or_else(|| take_word(tail, &PRE_C)) {
            let (n, r) = take_num(r);
            v.pre = Some((k, n.unwrap_or(0)));
            tail = r;
        }
        if let Some(r) = tail.strip_prefix('-').filter(|r| r.starts_with(|c: char| c.is_ascii_digit())) {
            let (n, r) = take_num(r);
            v.post = n;
            tail = r;
        } else if let Some((_, r)) = take_word(tail, &[("post", 0), ("rev", 0), ("r", 0)]) {
            let (n, r) = take_num(r);
            v.post = Some(n.unwrap_or(0));
            tail = r;
        }
        if let Some((_, r)) = take_word(tail, &[("dev", 0)]) {
            let (n, r) = take_num(r);
            v.dev = Some(n.unwrap_or(0));
            tail = r;
        }
        if !tail.is_empty() {
            return Err(err());
        }
        if let Some(l) = local {
            for seg in l.split(['.', '-', '_']) {
                if seg.is_empty() || !seg.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(err());
                }
                v.local.push(seg.to_string());
            }
        }
        Ok(v)
    }

    /// The version without its local label.
    pub fn public(&self) -> Version {
        Version { local: Vec::new(), ..self.clone() }
    }

    /// True for alpha, beta, rc and dev releases.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// `major.minor` of the release, e.g. `(12, 8)` for `12.8.90`.
    pub fn major_minor(&self) -> (u64, u64) {
        (self.release.first().copied().unwrap_or(0), self.release.get(1).copied().unwrap_or(0))
    }

    fn release_cmp(a: &[u64], b: &[u64]) -> Ordering {
        let n = a.len().max(b.len());
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }

    fn key_pre(&self) -> (i8, u8, u64) {
        match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        self.epoch
            .cmp(&o.epoch)
            .then_with(|| Version::release_cmp(&self.release, &o.release))
            .then_with(|| self.key_pre().cmp(&o.key_pre()))
            .then_with(|| self.post.map_or(-1i128, i128::from).cmp(&o.post.map_or(-1i128, i128::from)))
            .then_with(|| self.dev.map_or(i128::MAX, i128::from).cmp(&o.dev.map_or(i128::MAX, i128::from)))
            .then_with(|| local_cmp(&self.local, &o.local))
    }
}

fn local_cmp(a: &[String], b: &[String]) -> Ordering {
    // No local label sorts before any; numeric segments sort after
    // alphanumeric ones; shorter sorts first when one is a prefix.
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let rel: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&rel.join("."))?;
        if let Some((k, n)) = self.pre {
            write!(f, "{}{n}", ["a", "b", "rc"][k as usize])?;
        }
        if let Some(p) = self.post {
            write!(f, ".post{p}")?;
        }
        if let Some(d) = self.dev {
            write!(f, ".dev{d}")?;
        }
        if !self.local.is_empty() {
            write!(f, "+{}", self.local.join("."))?;
        }
        Ok(())
    }
}

/// A comparison operator of a version specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `~=`
    Compatible,
    /// `===`
    Arbitrary,
}

impl Op {
    /// Parses an operator token.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "~=" => Op::Compatible,
            "===" => Op::Arbitrary,
            _ => return None,
        })
    }
}

/// One specifier such as `>=3.10` or `==12.8.*`.
#[derive(Debug, Clone)]
pub struct Specifier {
    op: Op,
    text: String,
    version: Option<Version>,
    wildcard: bool,
}

impl Specifier {
    /// Builds a specifier from an operator and a version string.
    pub fn new(op: Op, version: &str) -> Result<Specifier, VersionError> {
        let text = version.trim().to_string();
        if op == Op::Arbitrary {
            return Ok(Specifier { op, text, version: None, wildcard: false });
        }
        let (v, wildcard) = match text.strip_suffix(".*") {
            Some(base) if matches!(op, Op::Eq | Op::Ne) => (base, true),
            _ => (text.as_str(), false),
        };
        let parsed = Version::parse(v)?;
        if wildcard
            && (parsed.pre.is_some() || parsed.post.is_some() || parsed.dev.is_some() || !parsed.local.is_empty())
        {
            return Err(VersionError(text.clone()));
        }
        if op == Op::Compatible && parsed.release.len() < 2 {
            return Err(VersionError(text.clone()));
        }
        Ok(Specifier { op, text, version: Some(parsed), wildcard })
    }

    /// Parses `>=3.10`, `== 2.*`, `~=1.4.2`.
    pub fn parse(s: &str) -> Result<Specifier, VersionError> {
        let s = s.trim();
        let n = s.bytes().take_while(|b| b"<>=!~".contains(b)).count();
        let op = Op::parse(&s[..n]).ok_or_else(|| VersionError(s.to_string()))?;
        Specifier::new(op, &s[n..])
    }

    /// Whether `v` satisfies the specifier (pre-releases allowed).
    pub fn contains(&self, v: &Version) -> bool {
        let Some(spec) = &self.version else {
            return v.to_string().eq_ignore_ascii_case(&self.text);
        };
        match self.op {
            Op::Eq | Op::Ne => {
                let eq = if self.wildcard {
                    let cand = v.public();
                    cand.epoch == spec.epoch
                        && (0..spec.release.len()).all(|i| cand.release.get(i).copied().unwrap_or(0) == spec.release[i])
                } else if spec.local.is_empty() {
                    v.public() == *spec
                } else {
                    v == spec
                };
                eq == (self.op == Op::Eq)
            }
            Op::Le => v.public() <= *spec,
            Op::Ge => v.public() >= *spec,
            Op::Lt => {
                v.public() < *spec
                    && !(!spec.is_prerelease()
                        && v.is_prerelease()
                        && Version::release_cmp(&v.release, &spec.release) == Ordering::Equal
                        && v.epoch == spec.epoch)
            }
            Op::Gt => {
                v.public() > *spec
                    && !(spec.post.is_none()
                        && v.post.is_some()
                        && Version::release_cmp(&v.release, &spec.release) == Ordering::Equal
                        && v.epoch == spec.epoch)
                    && (v.local.is_empty() || v.public() != *spec)
            }
            Op::Compatible => {
                let prefix = &spec.release[..spec.release.len() - 1];
                v.public() >= *spec
                    && v.epoch == spec.epoch
                    && prefix.iter().enumerate().all(|(i, p)| v.release.get(i).copied().unwrap_or(0) == *p)
            }
            Op::Arbitrary => false,
        }
    }
}

/// A comma-separated set of specifiers (all must hold), e.g. `>=3.10,<3.15`.
#[derive(Debug, Clone)]
pub struct SpecifierSet(pub Vec<Specifier>);

impl SpecifierSet {
    /// Parses a comma-separated list; empty means "any version".
    pub fn parse(s: &str) -> Result<SpecifierSet, VersionError> {
        let mut v = Vec::new();
        for part in s.split(',') {
            if !part.trim().is_empty() {
                v.push(Specifier::parse(part)?);
            }
        }
        Ok(SpecifierSet(v))
    }

    /// Whether every specifier holds.
    pub fn contains(&self, v: &Version) -> bool {
        self.0.iter().all(|s| s.contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn ordering_follows_pep_440() {
        let order = [
            "1.0.dev0",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local",
            "1.0.post1.dev0",
            "1.0.post1",
            "1.1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("V1.0-ALPHA.1"), v("1.0a1"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("2.9.0+cu128").local, vec!["cu128"]);
        assert!(Version::parse("1.0x").is_err() && Version::parse("").is_err());
    }

    #[test]
    fn specifiers() {
        let s = |sp: &str, ver: &str| SpecifierSet::parse(sp).unwrap().contains(&v(ver));
        assert!(s(">=3.10", "3.11.2") && !s(">=3.12", "3.11.2"));
        assert!(s("==3.11.*", "3.11.2") && !s("==3.1.*", "3.11.2"));
        assert!(s("~=12.8", "12.9") && !s("~=12.8.1", "12.9.0"));
        assert!(s("==2.9.0", "2.9.0+cu128") && !s("==2.9.0+cu126", "2.9.0+cu128"));
        assert!(!s("<3.11", "3.11.0rc1") && s("<3.11", "3.10.9"));
        assert!(!s(">3.11", "3.11.post1") && s(">3.11", "3.12"));
        assert!(s(">=3.10,<3.15", "3.11.2") && !s(">=3.10,<3.11", "3.11.2"));
        assert!(s("!=3.11.1", "3.11.2") && !s("!=3.11.*", "3.11.2"));
    }
}
