//! Comparing two images: config, layers by diff_id, and inside differing
//! layers file by file (type, mode, owner, size, content hash, link target,
//! mtime). Used by `strata diff` and `strata audit`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Serialize;
use serde_json::Value;

use crate::archive::decompress;
use crate::digest::{Digest, Hasher};
use crate::image::{Image, ImageError};
use crate::oci::Descriptor;

/// What one path in a layer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// `file`, `dir`, `symlink`, `hardlink`, `other`.
    pub kind: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size in bytes (files).
    pub size: u64,
    /// Content hash (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// Link target (links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Modification time.
    pub mtime: u64,
}

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// `type`, `mode`, `owner`, `size`, `content`, `link`, `mtime`.
    pub field: &'static str,
    /// Value in A.
    pub a: String,
    /// Value in B.
    pub b: String,
}

/// A path that differs between two layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum FileChange {
    /// Only in B.
    Added {
        /// Path.
        path: String,
        /// What it is.
        info: FileInfo,
    },
    /// Only in A.
    Removed {
        /// Path.
        path: String,
        /// What it was.
        info: FileInfo,
    },
    /// In both, different.
    Modified {
        /// Path.
        path: String,
        /// What differs.
        fields: Vec<FieldChange>,
    },
}

/// How a pair of layers compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LayerStatus {
    /// Same blob.
    Identical,
    /// Same uncompressed tar (diff_id), different compressed bytes.
    SameContentDifferentCompression {
        /// Compressor of A (annotation), if recorded.
        a_compression: Option<String>,
        /// Compressor of B.
        b_compression: Option<String>,
        /// Media types.
        a_media_type: String,
        /// Media type of B.
        b_media_type: String,
    },
    /// Different content.
    Different {
        /// Changed paths (sorted).
        files: Vec<FileChange>,
        /// True when the tars differ but no path does (entry order or header details).
        only_archive_layout: bool,
    },
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
}

/// One layer position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerDiff {
    /// 1-based position.
    pub index: usize,
    /// Name annotation, if any.
    pub name: Option<String>,
    /// Digest in A.
    pub a_digest: Option<String>,
    /// Digest in B.
    pub b_digest: Option<String>,
    /// diff_id in A.
    pub a_diff_id: Option<String>,
    /// diff_id in B.
    pub b_diff_id: Option<String>,
    /// The comparison.
    #[serde(flatten)]
    pub status: LayerStatus,
}

/// A config field that differs (JSON pointer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// JSON pointer into the config.
    pub pointer: String,
    /// Value in A (`null` when absent).
    pub a: Value,
    /// Value in B.
    pub b: Value,
}

/// The full comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How A was named.
    pub a: String,
    /// How B was named.
    pub b: String,
    /// Manifest digest of A.
    pub a_manifest: String,
    /// Manifest digest of B.
    pub b_manifest: String,
    /// True when the manifests are byte-identical.
    pub identical: bool,
    /// Manifest-level annotation differences (provenance excluded).
    pub manifest_annotations: Vec<ConfigChange>,
    /// The spec checksums (`dev.strata.spec.sha256`) when they differ: not a
    /// difference in the image's content, but where it came from.
    pub spec_checksums: Option<(Value, Value)>,
    /// Config differences (rootfs and history are covered per layer).
    pub config: Vec<ConfigChange>,
    /// Per-layer comparison.
    pub layers: Vec<LayerDiff>,
}

impl Report {
    /// Number of differences found (a differing spec checksum counts only
    /// when nothing else differs).
    pub fn difference_count(&self) -> usize {
        let n = self.content_difference_count();
        if n == 0 && self.spec_checksums.is_some() {
            1
        } else {
            n
        }
    }

    fn content_difference_count(&self) -> usize {
        self.manifest_annotations.len()
            + self.config.len()
            + self
                .layers
                .iter()
                .map(|l| match &l.status {
                    LayerStatus::Identical => 0,
                    LayerStatus::Different { files, .. } => files.len().max(1),
                    _ => 1,
                })
                .sum::<usize>()
    }
}

/// Why images could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ImageError),
    /// Other.
    #[error("{0}")]
    Other(String),
}

fn json_of(bytes: &[u8], what: &str) -> Result<Value, DiffError> {
    serde_json::from_slice(bytes).map_err(|e| DiffError::Other(format!("{what} is not valid JSON: {e}")))
}

/// Annotations as a JSON object (`null` when there are none), for [`json_diff`].
fn annotations_value(a: &std::collections::BTreeMap<String, String>) -> Value {
    if a.is_empty() {
        Value::Null
    } else {
        Value::Object(a.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
    }
}

/// Compares two images.
pub fn compare(a: &Image<'_>, b: &Image<'_>) -> Result<Report, DiffError> {
    let (ca_bytes, ca_typed) = a.config()?;
    let (cb_bytes, cb_typed) = b.config()?;
    // The configs are compared as documents: every field, known to Strata or not.
    let ca = json_of(&ca_bytes, "config")?;
    let cb = json_of(&cb_bytes, "config")?;

    let mut manifest_annotations = Vec::new();
    json_diff(
        "/annotations",
        &annotations_value(&a.manifest.annotations),
        &annotations_value(&b.manifest.annotations),
        &mut manifest_annotations,
    );
    let provenance = "/annotations/dev.strata.spec.sha256";
    let spec_checksums =
        manifest_annotations.iter().find(|c| c.pointer == provenance).map(|c| (c.a.clone(), c.b.clone()));
    manifest_annotations.retain(|c| c.pointer != provenance);
    let strip = |c: &Value| {
        let mut c = c.clone();
        if let Some(o) = c.as_object_mut() {
            o.remove("rootfs");
            o.remove("history");
        }
        c
    };
    let mut config = Vec::new();
    json_diff("", &strip(&ca), &strip(&cb), &mut config);

    let (la, lb) = (a.layers(), b.layers());
    let (da, db) = (&ca_typed.rootfs.diff_ids, &cb_typed.rootfs.diff_ids);
    let ha = ca.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    let hb = cb.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut layers = Vec::new();
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        let ann = |v: Option<&Descriptor>, k: &str| v.and_then(|v| v.annotation(k)).map(str::to_string);
        let name = ann(y, "dev.strata.layer.name").or_else(|| ann(x, "dev.strata.layer.name"));
        let (a_diff, b_diff) = (da.get(i).map(|d| d.to_string()), db.get(i).map(|d| d.to_string()));
        let status = match (x, y) {
            (Some(_), None) => LayerStatus::Removed,
            (None, Some(_)) => LayerStatus::Added,
            (Some(x), Some(y)) => {
                if x.digest == y.digest {
                    LayerStatus::Identical
                } else if a_diff.is_some() && a_diff == b_diff {
                    LayerStatus::SameContentDifferentCompression {
                        a_compression: ann(Some(x), "dev.strata.layer.compression"),
                        b_compression: ann(Some(y), "dev.strata.layer.compression"),
                        a_media_type: x.media_type.clone(),
                        b_media_type: y.media_type.clone(),
                    }
                } else {
                    let fa = layer_files(a, x)?;
                    let fb = layer_files(b, y)?;
                    let files = file_diff(&fa, &fb);
                    let only_archive_layout = files.is_empty();
                    LayerStatus::Different { files, only_archive_layout }
                }
            }
            (None, None) => continue,
        };
        layers.push(LayerDiff {
            index: i + 1,
            name,
            a_digest: x.map(|d| d.digest.to_string()),
            b_digest: y.map(|d| d.digest.to_string()),
            a_diff_id: a_diff,
            b_diff_id: b_diff,
            status,
        });
        // History entries differ only as layer metadata: report them as config changes.
        json_diff(
            &format!("/history/{i}"),
            ha.get(i).unwrap_or(&Value::Null),
            hb.get(i).unwrap_or(&Value::Null),
            &mut config,
        );
    }
    Ok(Report {
        a: a.describe(),
        b: b.describe(),
        a_manifest: a.raw.digest.to_string(),
        b_manifest: b.raw.digest.to_string(),
        identical: a.raw.bytes == b.raw.bytes,
        manifest_annotations,
        spec_checksums,
        config,
        layers,
    })
}

/// Appends the differences between two JSON values as pointer paths.
pub fn json_diff(ptr: &str, a: &Value, b: &Value, out: &mut Vec<ConfigChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                json_diff(
                    &format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(&format!("{ptr}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(ConfigChange {
            pointer: if ptr.is_empty() { "/".into() } else { ptr.to_string() },
            a: a.clone(),
            b: b.clone(),
        }),
        _ => {}
    }
}

/// Reads every entry of a layer blob: path → info.
pub fn layer_files(image: &Image<'_>, desc: &Descriptor) -> Result<BTreeMap<String, FileInfo>, DiffError> {
    let digest = desc.digest;
    let what = format!("{} layer {digest}", image.describe());
    let raw = image.open_blob(desc)?;
    let stream = decompress(raw, &what).map_err(|e| DiffError::Other(e.to_string()))?;
    let mut ar = tar::Archive::new(stream);
    let mut out = BTreeMap::new();
    let entries = ar.entries().map_err(|e| DiffError::Other(format!("{what}: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| DiffError::Other(format!("{what}: {e}")))?;
        let path = String::from_utf8_lossy(&e.path_bytes()).trim_start_matches("./").trim_end_matches('/').to_string();
        let h = e.header();
        let et = h.entry_type();
        let kind = if et.is_dir() {
            "dir"
        } else if et.is_symlink() {
            "symlink"
        } else if et.is_hard_link() {
            "hardlink"
        } else if et.is_file() {
            "file"
        } else {
            "other"
        };
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let (uid, gid, mtime) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0), h.mtime().unwrap_or(0));
        let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        let size = e.size();
        let sha256 = if kind == "file" {
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = e.read(&mut buf).map_err(|err| DiffError::Other(format!("{what}: {path}: {err}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Some(hasher.finish().0)
        } else {
            None
        };
        out.insert(path, FileInfo { kind, mode, uid, gid, size, sha256, link, mtime });
    }
    Ok(out)
}

/// Path-by-path differences between two layer listings.
pub fn file_diff(a: &BTreeMap<String, FileInfo>, b: &BTreeMap<String, FileInfo>) -> Vec<FileChange> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for p in paths {
        match (a.get(p), b.get(p)) {
            (Some(x), None) => out.push(FileChange::Removed { path: p.clone(), info: x.clone() }),
            (None, Some(y)) => out.push(FileChange::Added { path: p.clone(), info: y.clone() }),
            (Some(x), Some(y)) if x != y => {
                let mut f = Vec::new();
                let mut push = |field, a: String, b: String| {
                    if a != b {
                        f.push(FieldChange { field, a, b })
                    }
                };
                push("type", x.kind.into(), y.kind.into());
                push("mode", format!("{:04o}", x.mode), format!("{:04o}", y.mode));
                push("owner", format!("{}:{}", x.uid, x.gid), format!("{}:{}", y.uid, y.gid));
                push("size", x.size.to_string(), y.size.to_string());
                push(
                    "content",
                    x.sha256.map(|d| d.to_string()).unwrap_or_default(),
                    y.sha256.map(|d| d.to_string()).unwrap_or_default(),
                );
                push("link", x.link.clone().unwrap_or_default(), y.link.clone().unwrap_or_default());
                push("mtime", x.mtime.to_string(), y.mtime.to_string());
                out.push(FileChange::Modified { path: p.clone(), fields: f });
            }
            _ => {}
        }
    }
    out
}

/// Human-readable rendering of a report.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("A  {}  {}\nB  {}  {}\n", r.a, r.a_manifest, r.b, r.b_manifest));
    if r.identical {
        s.push_str("identical: the manifests are byte-for-byte the same\n");
        return s;
    }
    for c in r.manifest_annotations.iter() {
        s.push_str(&format!("manifest {}: {} → {}\n", c.pointer, c.a, c.b));
    }
    for c in &r.config {
        s.push_str(&format!("config {}: {} → {}\n", c.pointer, c.a, c.b));
    }
    for l in &r.layers {
        let name = l.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        match &l.status {
            LayerStatus::Identical => {}
            LayerStatus::Added => {
                s.push_str(&format!("layer {}{name}: only in B ({})\n", l.index, l.b_digest.as_deref().unwrap_or("?")))
            }
            LayerStatus::Removed => {
                s.push_str(&format!("layer {}{name}: only in A ({})\n", l.index, l.a_digest.as_deref().unwrap_or("?")))
            }
            LayerStatus::SameContentDifferentCompression {
                a_compression,
                b_compression,
                a_media_type,
                b_media_type,
            } => {
                s.push_str(&format!(
                    "layer {}{name}: same content (diff_id {}), different compressed bytes — a different compressor or settings\n",
                    l.index,
                    l.a_diff_id.as_deref().unwrap_or("?")
                ));
                if a_media_type != b_media_type {
                    s.push_str(&format!("    media type: {a_media_type} → {b_media_type}\n"));
                }
                if a_compression != b_compression {
                    s.push_str(&format!(
                        "    compressor: {} → {}\n",
                        a_compression.as_deref().unwrap_or("(not recorded)"),
                        b_compression.as_deref().unwrap_or("(not recorded)")
                    ));
                }
            }
            LayerStatus::Different { files, only_archive_layout } => {
                s.push_str(&format!(
                    "layer {}{name}: content differs (diff_id {} → {})\n",
                    l.index,
                    l.a_diff_id.as_deref().unwrap_or("?"),
                    l.b_diff_id.as_deref().unwrap_or("?")
                ));
                if *only_archive_layout {
                    s.push_str(
                        "    every path is the same; the tar archives differ in entry order or header details\n",
                    );
                }
                for f in files {
                    match f {
                        FileChange::Added { path, info } => s.push_str(&format!(
                            "    + /{path}  ({}, {:04o}, {} bytes)\n",
                            info.kind, info.mode, info.size
                        )),
                        FileChange::Removed { path, info } => s.push_str(&format!(
                            "    - /{path}  ({}, {:04o}, {} bytes)\n",
                            info.kind, info.mode, info.size
                        )),
                        FileChange::Modified { path, fields } => {
                            let d: Vec<String> =
                                fields.iter().map(|c| format!("{} {} → {}", c.field, c.a, c.b)).collect();
                            s.push_str(&format!("    ~ /{path}  {}\n", d.join("; ")));
                        }
                    }
                }
            }
        }
    }
    if let Some((a, b)) = &r.spec_checksums {
        s.push_str(&format!("provenance: built from different specs (dev.strata.spec.sha256 {a} → {b})\n"));
    }
    s.push_str(&format!("{} difference(s)\n", r.difference_count()));
    s
}
