//! `copy:`: directory trees from the build context, selected by globs, with
//! owners and modes set by the spec.
//!
//! The tree is listed without following any symbolic link (links are copied
//! as links, their targets as written), so nothing outside the directory is
//! read; the directory itself must resolve inside the build context
//! ([`crate::hostfs`]). What reaches the layer depends only on the names,
//! bytes, executable bits and link targets found: owners are the spec's,
//! modes are the spec's or `0644`/`0755`, times are the build's epoch.

use std::path::PathBuf;
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::digest::{hash_reader, Digest};
use crate::hostfs::HostEntry;
use crate::spec::{CopySpec, ResolvedLayer};
use crate::tree::{Content, Entry, Kind, TreePath, MAX_TREE_ENTRIES};

use super::{Context, Part, Source, SourceError};

/// The `copy:` entries of a layer.
pub struct Copy<'a> {
    /// The layer entry.
    pub layer: &'a ResolvedLayer,
}

/// Why a `copy:` entry cannot be copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `from`, or an entry of its tree, is refused (outside the build
    /// context, not a directory, a FIFO, a name that is not UTF-8, …).
    #[error("copy from `{from}`: {source}")]
    Host {
        /// `from` as written.
        from: String,
        /// Why.
        #[source]
        source: crate::hostfs::HostPathError,
    },
    /// An `include:` or `exclude:` pattern is not a glob.
    #[error("copy from `{from}`: {source}")]
    Glob {
        /// `from` as written.
        from: String,
        /// The pattern and why.
        #[source]
        source: GlobError,
    },
    /// A link in the tree has no usable target.
    #[error("copy from `{from}`: the link {rel} has an empty or too long target")]
    BadLink {
        /// `from` as written.
        from: String,
        /// The link, relative to `from`.
        rel: String,
    },
    /// A copied path is not a path an image may hold.
    #[error("copy from `{from}`: {rel}: {source}")]
    Path {
        /// `from` as written.
        from: String,
        /// The entry, relative to `from`.
        rel: String,
        /// Why.
        #[source]
        source: crate::tree::PathError,
    },
}

impl crate::error::Hint for CopyError {
    fn hint(&self) -> Option<String> {
        match self {
            CopyError::Host { source: crate::hostfs::HostPathError::NotRegular { what, .. }, .. }
                if *what != "a directory" =>
            {
                Some("FIFOs, sockets and devices cannot go into an image; leave them out with `exclude:`".into())
            }
            CopyError::Host { source, .. } => Some(source.hint().into()),
            CopyError::Glob { .. } => Some(GLOB_HINT.into()),
            CopyError::BadLink { .. } | CopyError::Path { .. } => None,
        }
    }
}

/// How globs are written, for hints.
pub const GLOB_HINT: &str = "globs use `*`, `?`, `[abc]` within a name and `**` across directories, e.g. `**/*.py`";

/// A pattern that is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{pattern}` {reason}")]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// Why (`is an empty pattern`, `is not a valid glob: …`).
    pub reason: String,
}

/// Compiles `include:` or `exclude:` globs. A pattern without `/` matches a
/// name at any depth; a leading `/` anchors it to the copied directory; a
/// trailing `/` is ignored. On error: the index of the bad pattern and why.
pub fn patterns(globs: &[String]) -> Result<GlobSet, (usize, GlobError)> {
    let mut b = GlobSetBuilder::new();
    for (i, g) in globs.iter().enumerate() {
        let t = g.trim_end_matches('/');
        let pat = match t.strip_prefix('/') {
            Some(anchored) => anchored.to_string(),
            None if !t.contains('/') => format!("**/{t}"),
            None => t.to_string(),
        };
        let bad = |reason: String| (i, GlobError { pattern: g.clone(), reason });
        if pat.is_empty() || pat == "**/" {
            return Err(bad("is an empty pattern".into()));
        }
        let glob = GlobBuilder::new(&pat)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| bad(format!("is not a valid glob: {}", e.kind())))?;
        b.add(glob);
    }
    b.build().map_err(|e| (0, GlobError { pattern: globs.join(", "), reason: e.to_string() }))
}

/// True when `rel` or one of its ancestors matches.
pub fn matches_here_or_above(set: &GlobSet, rel: &str) -> bool {
    rel.match_indices('/').any(|(i, _)| set.is_match(&rel[..i])) || set.is_match(rel)
}

/// One entry to copy, planned.
enum Planned {
    Dir(String),
    File { rel: String, path: PathBuf, size: u64, digest: Digest, mode: u32 },
    Link { rel: String, target: String },
}

/// The entries of one `copy:` item that pass its globs, in name order.
fn select(layer: &ResolvedLayer, c: &CopySpec) -> Result<(PathBuf, Vec<HostEntry>), CopyError> {
    let from = || c.from.clone();
    let root = layer.host_dir(&c.from).map_err(|source| CopyError::Host { from: from(), source })?;
    let include = patterns(&c.include).map_err(|(_, source)| CopyError::Glob { from: from(), source })?;
    let exclude = patterns(&c.exclude).map_err(|(_, source)| CopyError::Glob { from: from(), source })?;
    let all = crate::hostfs::walk(&root, MAX_TREE_ENTRIES, &mut |rel| !exclude.is_match(rel))
        .map_err(|source| CopyError::Host { from: from(), source })?;
    let rel_of = |e: &HostEntry| match e {
        HostEntry::Dir { rel } | HostEntry::File { rel, .. } | HostEntry::Symlink { rel, .. } => rel.clone(),
    };
    let included = |rel: &str| c.include.is_empty() || matches_here_or_above(&include, rel);
    // Files and links that pass; then the directories that are included
    // themselves or hold something that is.
    let mut keep_dirs = std::collections::BTreeSet::new();
    let mut kept = Vec::new();
    for e in &all {
        let rel = rel_of(e);
        if matches_here_or_above(&exclude, &rel) {
            continue;
        }
        match e {
            HostEntry::Dir { .. } => {
                if included(&rel) {
                    keep_dirs.insert(rel);
                }
            }
            _ => {
                if included(&rel) {
                    for (i, _) in rel.match_indices('/') {
                        keep_dirs.insert(rel[..i].to_string());
                    }
                    kept.push(e.clone());
                }
            }
        }
    }
    kept.extend(keep_dirs.into_iter().map(|rel| HostEntry::Dir { rel }));
    kept.sort_by_key(rel_of);
    Ok((root, kept))
}

impl Source for Copy<'_> {
    fn describe(&self) -> String {
        format!("copy of {}", self.layer.display_name())
    }

    fn check(&self) -> Result<(), SourceError> {
        for c in &self.layer.entry.copy {
            select(self.layer, c).map_err(SourceError::Copy)?;
        }
        Ok(())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let mut fp = String::from("copy-v1\n");
        let mut items: Vec<(&CopySpec, Vec<Planned>)> = Vec::new();
        for c in &self.layer.entry.copy {
            let (_, entries) = select(self.layer, c).map_err(SourceError::Copy)?;
            let dir_mode = c.dir_mode.map_or(0o755, |m| m.0);
            fp.push_str(&format!(
                "to {} owner {}:{} mode {:?} dir_mode {:o}\n",
                c.to.0,
                c.uid,
                c.gid,
                c.mode.map(|m| format!("{:o}", m.0)),
                dir_mode
            ));
            let mut planned = Vec::with_capacity(entries.len());
            for e in entries {
                match e {
                    HostEntry::Dir { rel } => {
                        fp.push_str(&format!("d {rel}\n"));
                        planned.push(Planned::Dir(rel));
                    }
                    HostEntry::Symlink { rel, target } => {
                        if target.is_empty() || target.len() > crate::tree::MAX_PATH_BYTES {
                            return Err(CopyError::BadLink { from: c.from.clone(), rel }.into());
                        }
                        fp.push_str(&format!("l {rel} -> {target}\n"));
                        planned.push(Planned::Link { rel, target });
                    }
                    HostEntry::File { rel, path, mode } => {
                        let (file, size) = crate::hostfs::open_regular(&path)
                            .map_err(|source| CopyError::Host { from: c.from.clone(), source })?;
                        let exact = crate::hostfs::Exact::new(std::io::BufReader::new(file), size, &path);
                        let (digest, size) = hash_reader(exact).map_err(SourceError::io("reading", &path))?;
                        let mode = match c.mode {
                            Some(m) => m.0,
                            None if mode & 0o111 != 0 => 0o755,
                            None => 0o644,
                        };
                        fp.push_str(&format!("f {rel} {digest} {mode:o}\n"));
                        planned.push(Planned::File { rel, path, size, digest, mode });
                    }
                }
            }
            items.push((c, planned));
        }
        let populate = move |_: &Context<'_>, tree: &mut crate::tree::Tree| -> Result<(), SourceError> {
            let origin: Arc<str> = Arc::from(format!("{} ({})", self.layer.display_name(), self.layer.file.display()));
            for (c, planned) in items {
                let (uid, gid) = (c.uid, c.gid);
                let dir_mode = c.dir_mode.map_or(0o755, |m| m.0);
                let base = c.to.tree_path();
                if let Some(b) = &base {
                    tree.insert_spec(b.clone(), Entry::dir(dir_mode, &origin).owned(uid, gid))?;
                }
                let at = |rel: &str| -> Result<TreePath, SourceError> {
                    let p = match &base {
                        Some(b) => b.join(rel),
                        None => TreePath::from_image_path(rel),
                    };
                    p.map_err(|source| {
                        SourceError::Copy(CopyError::Path { from: c.from.clone(), rel: rel.to_string(), source })
                    })
                };
                for p in planned {
                    match p {
                        Planned::Dir(rel) => {
                            tree.insert_spec(at(&rel)?, Entry::dir(dir_mode, &origin).owned(uid, gid))?
                        }
                        Planned::Link { rel, target } => {
                            tree.insert_spec(at(&rel)?, Entry::symlink(target, &origin).owned(uid, gid))?
                        }
                        Planned::File { rel, path, size, digest, mode } => {
                            let mut e = Entry::file(Content::LocalFile(path), size, mode, &origin).owned(uid, gid);
                            if let Kind::File { sha256, .. } = &mut e.kind {
                                *sha256 = Some(digest);
                            }
                            tree.insert_spec(at(&rel)?, e)?;
                        }
                    }
                }
            }
            Ok(())
        };
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages: Vec::new() }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(globs: &[&str], rel: &str) -> bool {
        let set = patterns(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        matches_here_or_above(&set, rel)
    }

    #[test]
    fn globs_match_names_anywhere_paths_from_the_top_and_whole_directories() {
        assert!(m(&["*.pyc"], "a.pyc") && m(&["*.pyc"], "pkg/sub/a.pyc"));
        assert!(!m(&["*.pyc"], "a.py"));
        assert!(m(&["__pycache__"], "pkg/__pycache__/a.cpython-311.pyc"));
        assert!(m(&["static/*.css"], "static/site.css") && !m(&["static/*.css"], "static/css/site.css"));
        assert!(m(&["static/**/*.css"], "static/css/site.css"));
        assert!(m(&["/templates"], "templates/index.html") && !m(&["/templates"], "app/templates/x"));
        assert!(m(&["templates/"], "app/templates/x"));
        assert!(patterns(&["a[".into()]).is_err());
        assert!(patterns(&["/".into()]).is_err());
    }
}
