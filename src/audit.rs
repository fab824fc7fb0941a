//! `strata audit`: rebuild an image from its spec and compare it with a
//! published one; answer `identical`, or name the first difference and its
//! likely cause.

use serde::Serialize;

use crate::diff::{FileChange, LayerStatus, Report};

/// The verdict of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// True when the rebuilt manifest equals the published one byte for byte.
    pub identical: bool,
    /// The first difference, in words.
    pub first_difference: Option<String>,
    /// Its likely cause.
    pub likely_cause: Option<String>,
}

/// Derives the verdict from a diff of (rebuilt, published).
pub fn explain(r: &Report) -> Verdict {
    if r.identical {
        return Verdict { identical: true, first_difference: None, likely_cause: None };
    }
    let v = |what: String, cause: &str| Verdict {
        identical: false,
        first_difference: Some(what),
        likely_cause: Some(cause.to_string()),
    };
    if let Some(c) = r.config.first() {
        let cause = if c.pointer == "/created" || c.pointer.ends_with("/created") {
            "epoch handling: the two builds used different epochs (spec `epoch:` or SOURCE_DATE_EPOCH)"
        } else if c.pointer.starts_with("/config/") {
            "runtime configuration: the spec's `config:` (or the gpu: section) differs"
        } else if c.pointer.starts_with("/history/") {
            "layer names or history differ: the spec's layer list was edited"
        } else if c.pointer == "/architecture" || c.pointer == "/os" || c.pointer == "/variant" {
            "a different `platform:`"
        } else {
            "the image configuration differs"
        };
        return v(format!("config {}: rebuilt {} vs published {}", c.pointer, c.a, c.b), cause);
    }
    for l in &r.layers {
        let name = l.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        match &l.status {
            LayerStatus::Identical => continue,
            LayerStatus::Added => {
                return v(
                    format!("layer {}{name} exists only in the published image", l.index),
                    "the published image has more layers: built from a different spec or lock",
                )
            }
            LayerStatus::Removed => {
                return v(
                    format!("layer {}{name} exists only in the rebuild", l.index),
                    "the published image has fewer layers: built from a different spec or lock",
                )
            }
            LayerStatus::SameContentDifferentCompression {
                a_compression,
                b_compression,
                a_media_type,
                b_media_type,
            } => {
                let detail = if a_media_type != b_media_type {
                    format!("media type {a_media_type} vs {b_media_type}")
                } else {
                    format!(
                        "compressor `{}` vs `{}`",
                        a_compression.as_deref().unwrap_or("?"),
                        b_compression.as_deref().unwrap_or("not recorded")
                    )
                };
                return v(
                    format!(
                        "layer {}{name}: same uncompressed content (diff_id {}), different compressed digest; {detail}",
                        l.index,
                        l.a_diff_id.as_deref().unwrap_or("?")
                    ),
                    "a different compressor or compression settings (algorithm, level, implementation version)",
                );
            }
            LayerStatus::Different { files, only_archive_layout } => {
                if *only_archive_layout {
                    return v(
                        format!("layer {}{name}: same paths, different tar bytes", l.index),
                        "a different tar writer (entry order, header format): built by another tool or Strata version",
                    );
                }
                let only_mtime = files.iter().all(
                    |f| matches!(f, FileChange::Modified { fields, .. } if fields.iter().all(|c| c.field == "mtime")),
                );
                let first = &files[0];
                let (path, what) = match first {
                    FileChange::Added { path, .. } => (path, "exists only in the published image".to_string()),
                    FileChange::Removed { path, .. } => (path, "exists only in the rebuild".to_string()),
                    FileChange::Modified { path, fields } => (
                        path,
                        fields.iter().map(|c| format!("{} {} vs {}", c.field, c.a, c.b)).collect::<Vec<_>>().join(", "),
                    ),
                };
                let cause = if only_mtime {
                    "epoch handling: file mtimes differ (SOURCE_DATE_EPOCH, spec `epoch:` or a per-file `mtime:`)"
                } else {
                    match first {
                        FileChange::Modified { fields, .. } if fields.iter().any(|c| c.field == "content") => "an input changed: this file's content differs (edited spec content, local file, or a different artifact)",
                        FileChange::Modified { fields, .. } if fields.iter().any(|c| c.field == "mode" || c.field == "owner") => "permissions differ: the spec's mode/uid/gid, or an archive with other modes",
                        FileChange::Modified { fields, .. } if fields.iter().any(|c| c.field == "link") => "a symlink target differs in the spec or an artifact",
                        _ => "the layer's sources differ: the spec or lock was edited",
                    }
                };
                return v(
                    format!("layer {}{name}: /{path} {what} ({} path(s) differ in this layer)", l.index, files.len()),
                    cause,
                );
            }
        }
    }
    if let Some((a, b)) = &r.spec_checksums {
        if r.manifest_annotations.is_empty() {
            return v(
                format!("manifest annotation dev.strata.spec.sha256: rebuilt {a} vs published {b}"),
                "the published image was built from another version of the spec (its content is otherwise identical)",
            );
        }
    }
    if let Some(c) = r.manifest_annotations.first() {
        let cause = if c.pointer.contains("created") {
            "epoch handling: different epochs"
        } else {
            "manifest annotations differ: the spec's `annotations:` or name"
        };
        return v(format!("manifest annotation {}: rebuilt {} vs published {}", c.pointer, c.a, c.b), cause);
    }
    v(
        "the manifests differ in bytes but not in any field Strata compares".into(),
        "a different JSON serialisation: the published image was rewritten by another tool",
    )
}
