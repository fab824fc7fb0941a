//! Progress reporting. Library code reports through [`Reporter`]; only the
//! binary draws bars or prints lines.

use std::sync::atomic::{AtomicU64, Ordering};

/// A task whose progress is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Downloading an artifact.
    Download,
    /// Writing a layer.
    Layer,
    /// Uploading a blob.
    Upload,
    /// Anything else.
    Other,
}

/// Receives progress from long-running library work.
pub trait Reporter: Send + Sync {
    /// Work of one kind lies ahead: `items` tasks, `bytes` in all when
    /// known, so an overall total can be shown. Default: ignored.
    fn plan(&self, _kind: TaskKind, _items: u64, _bytes: Option<u64>) {}
    /// A task begins; `total` is its size in bytes when known.
    fn start(&self, id: u64, kind: TaskKind, label: &str, total: Option<u64>);
    /// `done` bytes of the task are complete.
    fn progress(&self, id: u64, done: u64);
    /// The task ended; `summary` says how.
    fn finish(&self, id: u64, summary: &str);
    /// A one-off informational line.
    fn info(&self, message: &str);
    /// A warning the user should see.
    fn warn(&self, message: &str);
}

/// Discards everything.
pub struct NullReporter;

impl Reporter for NullReporter {
    fn start(&self, _: u64, _: TaskKind, _: &str, _: Option<u64>) {}
    fn progress(&self, _: u64, _: u64) {}
    fn finish(&self, _: u64, _: &str) {}
    fn info(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// A fresh task id.
pub fn task_id() -> u64 {
    NEXT_TASK.fetch_add(1, Ordering::Relaxed)
}

/// Human-readable byte count (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `s` with control characters (terminal escape sequences among them)
/// written as escapes, so text from archives, indexes or registries cannot
/// drive the terminal it is printed on. Newlines and tabs are kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `s` on one line: every control character escaped, newlines too (for
/// names taken from archives and other inputs).
pub fn one_line(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}
