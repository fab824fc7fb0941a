//! Debian control-file syntax (deb822): paragraphs of `Field: value` lines
//! with continuation lines, and dependency relations such as
//! `libc6 (>= 2.36) | libc6.1, python3:any`.

use super::error::DebError;
use std::fmt;

use super::version::{Op, Version};

/// One paragraph: fields in file order, names compared without case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of a field (continuation lines joined with `\n`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All fields in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// Parses deb822 text into paragraphs. `what` names the text in errors.
/// PGP armour must already be removed.
pub fn parse_paragraphs(text: &str, what: &str) -> Result<Vec<Paragraph>, DebError> {
    let mut out = Vec::new();
    for_each_paragraph(text.as_bytes(), what, |p| {
        out.push(p);
        Ok(())
    })?;
    Ok(out)
}

/// Reads deb822 paragraphs from a stream and hands each to `f` as soon as it
/// ends, so a 60,000-paragraph Packages index is never held whole (neither
/// its text nor its paragraphs). `what` names the stream in errors.
pub fn for_each_paragraph(
    mut r: impl std::io::BufRead,
    what: &str,
    mut f: impl FnMut(Paragraph) -> Result<(), DebError>,
) -> Result<(), DebError> {
    let mut cur = Paragraph::default();
    let mut raw = String::new();
    let mut n = 0usize;
    loop {
        raw.clear();
        let got = r.read_line(&mut raw).map_err(|source| DebError::ReadText {
            what: what.to_string(),
            line: n + 1,
            source,
        })?;
        if got == 0 {
            break;
        }
        n += 1;
        let line = raw.strip_suffix('\n').unwrap_or(&raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                f(std::mem::take(&mut cur))?;
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some(last) = cur.fields.last_mut() else {
                return Err(DebError::Continuation { what: what.to_string(), line: n });
            };
            last.1.push('\n');
            last.1.push_str(line.trim_start());
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(DebError::NotAField { what: what.to_string(), line: n, found: truncate(line) });
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(DebError::BadFieldName { what: what.to_string(), line: n, name: truncate(k) });
        }
        cur.fields.push((k.to_string(), v.trim().to_string()));
    }
    if !cur.fields.is_empty() {
        f(cur)?;
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

/// One package relation: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    /// Package (or virtual package) name.
    pub name: String,
    /// Version constraint.
    pub constraint: Option<(Op, Version)>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.constraint {
            Some((op, v)) => write!(f, "{} ({} {})", self.name, op.as_str(), v),
            None => f.write_str(&self.name),
        }
    }
}

impl Relation {
    /// True when a package of this name and version satisfies the relation.
    pub fn accepts(&self, version: &Version) -> bool {
        match &self.constraint {
            Some((op, want)) => op.holds(version, want),
            None => true,
        }
    }
}

/// A group of alternatives (`a | b`); any one satisfies it.
pub type Alternatives = Vec<Relation>;

/// Parses a relation field (`Depends`, `Pre-Depends`, `Provides`, ...).
/// Architecture qualifiers (`:any`, `:native`) are dropped, as are
/// architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`),
/// which binary package indexes do not use.
pub fn parse_relations(field: &str) -> Result<Vec<Alternatives>, DebError> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            alts.push(parse_relation(alt.trim())?);
        }
        groups.push(alts);
    }
    Ok(groups)
}

/// Parses one relation, e.g. `libc6 (>= 2.36)`.
pub fn parse_relation(s: &str) -> Result<Relation, DebError> {
    // Drop build profiles and architecture restrictions (outside parentheses).
    let mut cleaned = String::with_capacity(s.len());
    let mut depth = 0i32;
    let mut skip_until: Option<char> = None;
    for c in s.trim().chars() {
        if let Some(end) = skip_until {
            if c == end {
                skip_until = None;
            }
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '[' if depth == 0 => {
                skip_until = Some(']');
                continue;
            }
            '<' if depth == 0 => {
                skip_until = Some('>');
                continue;
            }
            _ => {}
        }
        cleaned.push(c);
    }
    let mut rest = cleaned.trim();
    let (name_part, constraint) = match rest.find('(') {
        Some(i) => {
            let inner = rest[i + 1..].trim_end();
            let inner = inner.strip_suffix(')').ok_or_else(|| DebError::UnclosedRelation { input: s.to_string() })?;
            let inner = inner.trim();
            let op_len = inner.chars().take_while(|c| "<>=".contains(*c)).count();
            let (op_s, ver_s) = inner.split_at(op_len);
            let op = Op::parse(op_s)
                .ok_or_else(|| DebError::UnknownOperator { input: s.to_string(), op: op_s.to_string() })?;
            let ver = Version::parse(ver_s.trim())
                .map_err(|e| DebError::RelationVersion { input: s.to_string(), source: Box::new(e) })?;
            rest = &rest[..i];
            (rest.trim(), Some((op, ver)))
        }
        None => (rest, None),
    };
    let name = name_part.split(':').next().unwrap_or("").trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)) {
        return Err(DebError::NotARelation { input: s.to_string() });
    }
    Ok(Relation { name: name.to_string(), constraint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_with_continuations() {
        let t = "Package: a\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nVersion: 1\n";
        let ps = parse_paragraphs(t, "test").unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("description"), Some("short\nlong line\n.\nmore"));
        assert_eq!(ps[1].get("VERSION"), Some("1"));
        assert!(parse_paragraphs(" x\n", "t").unwrap_err().to_string().contains("continuation"));
        assert!(parse_paragraphs("Package a\n", "t").unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn relations_parse() {
        let g = parse_relations(
            "libc6 (>= 2.36), libgcc-s1 | libgcc1 (>> 1:4), python3:any, foo [amd64] <!nocheck>, bar (<< 2) <!nocheck>",
        )
        .unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!(g[4][0].to_string(), "bar (<< 2)");
        assert_eq!(g[0][0].to_string(), "libc6 (>= 2.36)");
        assert_eq!(g[1].len(), 2);
        assert_eq!(g[1][1].to_string(), "libgcc1 (>> 1:4)");
        assert_eq!(g[2][0].name, "python3");
        assert_eq!(g[3][0].name, "foo");
        assert_eq!(parse_relation("a (<< 2)").unwrap().constraint.unwrap().0, Op::Lt);
        assert_eq!(parse_relation("a (<<2)").unwrap().constraint.unwrap().0, Op::Lt);
        assert!(parse_relation("a (~= 2)").is_err());
        assert!(parse_relation("A").is_err());
        assert!(parse_relation("a (>= 2").is_err());
    }
}
