//! Image references: `[HOST[:PORT]/]NAME[:TAG][@sha256:HEX]`, with or
//! without a `docker://` prefix, normalised the way docker and podman do
//! (`alpine` is `docker.io/library/alpine:latest`).

use std::fmt;

use crate::digest::Digest;

/// The registry that references without a host name point at.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host as written (`127.0.0.1:5000`, `ghcr.io`, `docker.io`).
    pub registry: String,
    /// Repository path (`library/alpine`, `team/app`).
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<Digest>,
}

/// A string that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an image reference: {reason}\nhint: write HOST[:PORT]/NAME[:TAG][@sha256:DIGEST], e.g. registry.example.com/team/app:1.0 or 127.0.0.1:5000/app:dev")]
pub struct ReferenceError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One repository path component: `[a-z0-9]+` joined by `.`, `_`, `__` or dashes.
pub fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    if !b[b.len() - 1].is_ascii_lowercase() && !b[b.len() - 1].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        // Anything else (upper case, `/`, blanks) is no separator: refused.
        let ok = !sep.is_empty() && (sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-'));
        if !ok {
            return false;
        }
    }
    true
}

/// A repository path: components separated by `/`, at most 255 bytes. No
/// component can be `.` or `..`, and it cannot start with `/`.
pub fn valid_repository(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && n.split('/').all(valid_component)
}

/// True for a valid tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.starts_with('[')
        || first.bytes().any(|c| c.is_ascii_uppercase())
}

impl Reference {
    /// Parses a reference; a leading `docker://` is accepted.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason: &str| ReferenceError { input: input.to_string(), reason: reason.to_string() };
        let s = input.strip_prefix("docker://").unwrap_or(input).trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.contains("://") {
            return Err(err("only docker:// references name registries (other URL schemes are not image references)"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !d.starts_with("sha256:") {
                    return Err(err(&format!("the digest `{d}` is not a sha256 digest (only sha256 is supported)")));
                }
                (r, Some(Digest::parse(d).map_err(|e| err(&e.to_string()))?))
            }
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, tail)) if looks_like_host(first) => (first.to_string(), tail.to_string()),
            _ => (DOCKER_HUB.to_string(), rest.to_string()),
        };
        // The tag is after the last ':' of the last path component.
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p.to_string(), Some(t.to_string())),
            _ => (path, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(err(&format!("the tag `{t}` is not valid (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)")));
            }
        }
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace() || c == '@' || c == '?' || c == '#') {
            return Err(err("the registry host is not valid"));
        }
        let mut repository = path;
        if repository.is_empty() {
            return Err(err("the repository name is missing"));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(err(&format!(
                "the repository component `{bad}` is not valid (lower-case letters and digits, separated by `.`, `_`, `__` or dashes)"
            )));
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(err("host and repository together exceed 255 characters"));
        }
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The host the API is served from (`docker.io` is `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// What to ask the registry for: the digest when given, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The tag, or `latest` when neither tag nor digest is given.
    pub fn tag_or_default(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, None) => Some("latest".into()),
            (None, Some(_)) => None,
        }
    }

    /// `host/repository`.
    pub fn repo_display(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another digest and no tag.
    pub fn with_digest(&self, d: Digest) -> Reference {
        Reference { registry: self.registry.clone(), repository: self.repository.clone(), tag: None, digest: Some(d) }
    }
}

/// The API host of a registry name.
pub fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn normalises_like_docker() {
        let r = p("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/alpine", None)
        );
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = p("docker://127.0.0.1:5000/team/app:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("1.0"))
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1.0");
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        let r = p("user/app:v2");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "user/app"));
        let r = p("[::1]:5000/app");
        assert_eq!(r.registry, "[::1]:5000");
    }

    #[test]
    fn digests_and_tags() {
        let d = Digest::of(b"x");
        let r = p(&format!("ghcr.io/o/app:1@{d}"));
        assert_eq!(r.digest, Some(d));
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.manifest_reference(), d.to_string());
        let r = p(&format!("ghcr.io/o/app@{d}"));
        assert_eq!(r.tag_or_default(), None);
        // A port is not a tag.
        let r = p("127.0.0.1:5000/app");
        assert_eq!((r.registry.as_str(), r.tag), ("127.0.0.1:5000", None));
    }

    #[test]
    fn rejects_junk_with_reasons() {
        for bad in [
            "",
            "Registry.io/App",
            "host.io/a//b",
            "host.io/app:-x",
            "host.io/app@sha512:abcd",
            "https://host.io/app",
            "host.io/app:",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(e.to_string().contains("hint:"), "{bad}: {e}");
        }
        assert!(Reference::parse("host.io/App").unwrap_err().reason.contains("`App`"));
        // Upper case inside a component (it used to make the check loop forever).
        assert!(Reference::parse("host.io/aPp").unwrap_err().reason.contains("`aPp`"));
        assert!(!valid_repository("a b") && !valid_repository("a/B/c") && valid_repository("a/b-c/d__e"));
    }
}
