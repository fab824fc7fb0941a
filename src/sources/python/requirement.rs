//! PEP 508 requirement strings, checked before anything else sees them.
//!
//! `requirements:` of a `python:` entry reach the resolver (uv) at lock
//! time, so they are parsed here first and only plain *name* requirements
//! pass: a project name, optional extras, optional version specifiers and an
//! optional environment marker. Everything a resolver would treat as a
//! location or an option is refused: direct references (`name @ URL`), local
//! paths (`./pkg`, `/abs`, `pkg.whl`), editable installs (`-e`), and any
//! line that starts with `-` (resolver options such as `--index-url`).
//! Together with `--only-binary :all:` on uv's command line, nothing a spec
//! names can make the lock run a package's build backend.

use super::marker::{normalize_name, Marker};
use super::version::Specifier;

/// The longest requirement string accepted.
pub const MAX_REQUIREMENT_LEN: usize = 1024;

/// A parsed name requirement.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The normalised project name.
    pub name: String,
    /// Requested extras (normalised).
    pub extras: Vec<String>,
    /// Version specifiers (may be empty).
    pub specifiers: Vec<Specifier>,
    /// The environment marker, if any.
    pub marker: Option<Marker>,
}

/// Why a requirement string was refused: what is wrong and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequirementError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> RequirementError {
    RequirementError { message: message.into(), hint: hint.into() }
}

const NAME_HINT: &str = "write a package name with optional extras, versions and a marker, e.g. `torch==2.9.0` or `numpy>=2; python_version >= '3.11'`; locks resolve published wheels only";

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

/// Parses one requirement string, refusing anything but a name requirement.
pub fn parse(raw: &str) -> Result<Requirement, RequirementError> {
    if raw.len() > MAX_REQUIREMENT_LEN {
        return Err(refuse(
            format!("the requirement is {} bytes long; at most {MAX_REQUIREMENT_LEN} are accepted", raw.len()),
            NAME_HINT,
        ));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(refuse(format!("the requirement contains the control character {c:?}"), NAME_HINT));
    }
    let s = raw.trim();
    if s.is_empty() {
        return Err(refuse("the requirement is empty", NAME_HINT));
    }
    if s.starts_with('-') {
        return Err(refuse(
            format!(
                "`{s}` is an option, not a requirement (options such as `-e`, `-r` or `--index-url` are not accepted)"
            ),
            "use `python.index_url` for the index; editable and local installs cannot be locked",
        ));
    }
    // Split off the marker first: everything after the first `;` (a `;`
    // cannot occur in a name requirement before the marker).
    let (head, marker_text) = match s.split_once(';') {
        Some((h, m)) => (h.trim(), Some(m.trim())),
        None => (s, None),
    };
    let b = head.as_bytes();
    let n = b.iter().take_while(|c| is_name_char(**c)).count();
    let name = &head[..n];
    let rest = head[n..].trim_start();
    if name.is_empty() || !name.as_bytes()[0].is_ascii_alphanumeric() || !name.as_bytes()[n - 1].is_ascii_alphanumeric()
    {
        let what = if head.starts_with(['.', '/', '~']) || head.contains('/') || head.contains('\\') {
            format!("`{s}` is a local path; locks resolve published wheels by name only")
        } else {
            format!("`{s}` does not start with a package name")
        };
        return Err(refuse(what, NAME_HINT));
    }
    let archive = [".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".egg"]
        .iter()
        .any(|x| name.to_ascii_lowercase().ends_with(x));
    if rest.starts_with('/') || rest.starts_with(':') || archive {
        return Err(refuse(format!("`{s}` is a path or URL, not a requirement"), NAME_HINT));
    }
    if rest.starts_with('@') {
        return Err(refuse(
            format!("`{s}` is a direct reference (`name @ URL`); locks resolve published wheels from the index only"),
            "name the version instead (`pkg==1.2`), or write the pylock yourself and leave `requirements:` out (docs/python.md)",
        ));
    }
    let mut rest = rest;
    let mut extras = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let Some((inner, after)) = r.split_once(']') else {
            return Err(refuse(format!("`{s}`: `[` of the extras is not closed"), NAME_HINT));
        };
        for e in inner.split(',') {
            let e = e.trim();
            if e.is_empty() && inner.trim().is_empty() {
                continue;
            }
            let ok = !e.is_empty()
                && e.bytes().all(is_name_char)
                && e.as_bytes()[0].is_ascii_alphanumeric()
                && e.as_bytes()[e.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(refuse(format!("`{s}`: `{e}` is not an extra name"), NAME_HINT));
            }
            extras.push(normalize_name(e));
        }
        rest = after.trim_start();
    }
    let mut specs_text = rest;
    if let Some(r) = specs_text.strip_prefix('(') {
        let Some(inner) = r.trim_end().strip_suffix(')') else {
            return Err(refuse(format!("`{s}`: `(` of the version specifiers is not closed"), NAME_HINT));
        };
        specs_text = inner;
    }
    let mut specifiers = Vec::new();
    if !specs_text.trim().is_empty() {
        for part in specs_text.split(',') {
            let part = part.trim();
            let op_len = part.bytes().take_while(|c| b"<>=!~".contains(c)).count();
            let version = part[op_len..].trim();
            let version_ok =
                !version.is_empty() && version.bytes().all(|c| c.is_ascii_alphanumeric() || b".*+!_-".contains(&c));
            if op_len == 0 || !version_ok {
                return Err(refuse(format!("`{s}`: `{part}` is not a version specifier"), NAME_HINT));
            }
            let spec = Specifier::parse(part)
                .map_err(|_| refuse(format!("`{s}`: `{part}` is not a valid version specifier"), NAME_HINT))?;
            specifiers.push(spec);
        }
    }
    let marker = match marker_text {
        None => None,
        Some("") => return Err(refuse(format!("`{s}`: the marker after `;` is empty"), NAME_HINT)),
        Some(m) => Some(Marker::parse(m).map_err(|e| refuse(format!("`{s}`: {e}"), NAME_HINT))?),
    };
    Ok(Requirement { name: normalize_name(name), extras, specifiers, marker })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_requirements_pass() {
        for ok in [
            "torch==2.9.0",
            "numpy",
            " numpy ",
            "Jupyter_Lab[dev, test] >=4, <5; python_version >= '3.9'",
            "nvidia-cudnn-cu12 (==9.10.2.21)",
            "pkg[]",
            "pkg==1.*",
            "pkg~=1.4; sys_platform == 'linux' and (python_version < '3.13' or extra == 'x')",
        ] {
            let r = parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(!r.name.is_empty());
        }
        let r = parse("Jupyter_Lab[Dev]>=4").unwrap();
        assert_eq!((r.name.as_str(), r.extras.as_slice()), ("jupyter-lab", &["dev".to_string()][..]));
    }

    #[test]
    fn locations_and_options_are_refused() {
        for bad in [
            "./evil",
            "../evil",
            "/tmp/evil",
            "~/evil",
            "evil @ file:///tmp/evil",
            "evil@https://example.org/evil-1.0.tar.gz",
            "evil @ git+https://example.org/evil.git",
            "-e ./evil",
            "--index-url https://evil.example/simple",
            "-r other.txt",
            "--only-binary=:none: numpy",
            "https://example.org/evil-1.0.tar.gz",
            "evil-1.0-py3-none-any.whl",
            "evil-1.0.tar.gz",
            "C:\\evil",
            "numpy>=2 --hash=sha256:00",
            "numpy\n--index-url https://evil.example",
            "numpy; ",
            "numpy; os_name ==",
            "numpy===",
            "numpy>=two",
            "numpy[x",
            "",
            "(numpy)",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse(&format!("a=={}", "1".repeat(2000))).is_err());
    }
}
