//! Mirror directories for air-gapped sites: every artifact a spec needs, laid
//! out by sha256 (`sha256/<hex>`) with an `index.json` that names each one.
//! A mirror is filled on a connected machine (`strata fetch SPEC --into DIR`),
//! carried across, and used with `strata build --offline --mirror DIR`.

use fs_err as fs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{hash_reader, Digest};
use crate::fetch::Artifact;
use crate::store::Store;

/// One artifact recorded in a mirror's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    /// Short name.
    pub name: String,
    /// The URL it was fetched from (credentials redacted).
    pub url: String,
    /// Size in bytes.
    pub size: u64,
}

/// `index.json` of a mirror: sha256 → entry, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorIndex {
    /// Format version (1).
    pub version: u32,
    /// Artifacts by `sha256:<hex>`.
    pub artifacts: BTreeMap<String, MirrorEntry>,
}

/// Mirror errors.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// IO on a path.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The index is unreadable.
    #[error("{path}: invalid mirror index: {message}")]
    Index {
        /// Index path.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
}

fn ioe<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MirrorError + 'a {
    crate::error::io_err(action, path)
}

/// Reads a mirror's index (an absent index is an empty one).
pub fn read_index(dir: &Path) -> Result<MirrorIndex, MirrorError> {
    let p = dir.join("index.json");
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| MirrorError::Index { path: p, message: e.to_string() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MirrorIndex { version: 1, artifacts: BTreeMap::new() }),
        Err(e) => Err(MirrorError::Io(crate::error::IoError { action: "reading", path: p, source: e })),
    }
}

/// What an export did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportSummary {
    /// Artifacts added to the mirror.
    pub added: usize,
    /// Artifacts already there.
    pub present: usize,
    /// Bytes added.
    pub bytes: u64,
}

/// Copies artifacts from the store into the mirror (hard links when possible),
/// each by temporary name + rename, then rewrites the index atomically. Safe
/// to rerun after an interruption: present files are kept.
pub fn export(store: &Store, artifacts: &[Artifact], dir: &Path) -> Result<ExportSummary, MirrorError> {
    let sdir = dir.join("sha256");
    fs::create_dir_all(&sdir).map_err(ioe("creating", &sdir))?;
    let mut index = read_index(dir)?;
    index.version = 1;
    let mut sum = ExportSummary::default();
    for a in artifacts {
        let dest = sdir.join(a.sha256.hex());
        let src = store.path(&a.sha256);
        let size = fs::metadata(&src).map_err(ioe("reading", &src))?.len();
        if dest.is_file() && fs::metadata(&dest).map(|m| m.len()).unwrap_or(0) == size {
            sum.present += 1;
        } else {
            let tmp = sdir.join(format!(".{}.part", a.sha256.hex()));
            let _ = fs::remove_file(&tmp);
            if fs::hard_link(&src, &tmp).is_err() {
                fs::copy(&src, &tmp).map_err(ioe("copying to", &tmp))?;
            }
            fs::rename(&tmp, &dest).map_err(ioe("renaming to", &dest))?;
            sum.added += 1;
            sum.bytes += size;
        }
        index.artifacts.insert(
            a.sha256.to_string(),
            MirrorEntry { name: a.name.clone(), url: crate::net::redact::url(&a.url), size },
        );
    }
    let bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| MirrorError::Index { path: dir.join("index.json"), message: e.to_string() })?;
    crate::atomic::atomic_write(&dir.join("index.json"), &bytes).map_err(|e| {
        MirrorError::Io(crate::error::IoError {
            action: "writing",
            path: dir.join("index.json"),
            source: io::Error::other(e.to_string()),
        })
    })?;
    Ok(sum)
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file's bytes do not hash to its name.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it hashes to.
        found: Digest,
    },
    /// The index names a file that is absent.
    Missing {
        /// Expected digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A file whose name is not a digest.
    Stray(PathBuf),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { path, found } => write!(f, "{}: corrupt (bytes hash to {found})", path.display()),
            Problem::Missing { digest, name } => write!(f, "{name} ({digest}): listed in index.json but missing"),
            Problem::Stray(p) => write!(f, "{}: not named by a sha256 digest", p.display()),
        }
    }
}

/// Re-hashes every file of a mirror. Returns (files checked, problems).
pub fn verify(dir: &Path, progress: &dyn Fn(&str)) -> Result<(usize, Vec<Problem>), MirrorError> {
    let sdir = dir.join("sha256");
    let index = read_index(dir)?;
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut names: Vec<PathBuf> = match fs::read_dir(&sdir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(MirrorError::Io(crate::error::IoError { action: "listing", path: sdir, source: e })),
    };
    names.sort();
    for p in names {
        let fname = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if fname.starts_with('.') {
            continue; // an interrupted copy; the next fetch replaces it
        }
        let Ok(expected) = Digest::parse(&fname) else {
            problems.push(Problem::Stray(p));
            continue;
        };
        let name = index.artifacts.get(&expected.to_string()).map(|e| e.name.clone()).unwrap_or_else(|| fname.clone());
        progress(&name);
        let f = fs::File::open(&p).map_err(ioe("opening", &p))?;
        let (found, _) = hash_reader(io::BufReader::with_capacity(1 << 20, f)).map_err(ioe("reading", &p))?;
        checked += 1;
        if found != expected {
            problems.push(Problem::Corrupt { path: p, found });
        }
    }
    for (d, e) in &index.artifacts {
        let hex = d.trim_start_matches("sha256:");
        if !sdir.join(hex).is_file() {
            problems.push(Problem::Missing { digest: d.clone(), name: e.name.clone() });
        }
    }
    Ok((checked, problems))
}
