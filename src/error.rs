//! What every error type shares: the IO failure on a named path, and the
//! `hint()` a user-facing error can offer (the binary prints it as a
//! `hint:` line after the message).

use std::io;
use std::path::{Path, PathBuf};

/// An IO operation failed on a path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {}", path.display(), os_message(source))]
pub struct IoError {
    /// What was being done (`reading`, `renaming into`).
    pub action: &'static str,
    /// The path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// The error kind of the cause.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// The operating system's words for an IO error (`No such file or
/// directory (os error 2)`), without the path `fs_err` puts in front: for
/// messages that name the path themselves.
pub fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    // fs_err writes "failed to open file `PATH`: <the OS's words>".
    match (e.get_ref(), text.rsplit_once("`: ")) {
        (Some(_), Some((_, os))) if text.starts_with("failed to ") => os.to_string(),
        _ => text,
    }
}

/// Builds the `map_err` closure for an IO call on `path`:
/// `fs_err::read(p).map_err(io_err("reading", p))?` when the error type
/// converts from [`IoError`].
pub fn io_err<'a, E: From<IoError>>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> E + 'a {
    move |source| E::from(IoError { action, path: path.to_path_buf(), source })
}

/// Errors that can say what the user should do about them.
pub trait Hint {
    /// One line (or a few) of advice, without the `hint:` prefix.
    fn hint(&self) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_once() {
        let e = fs_err::read("/nonexistent/strata-test").unwrap_err();
        assert_eq!(os_message(&e), "No such file or directory (os error 2)");
        let io = IoError { action: "reading", path: "/nonexistent/strata-test".into(), source: e };
        assert_eq!(io.to_string(), "reading /nonexistent/strata-test: No such file or directory (os error 2)");
        let plain = io::Error::other("boom");
        assert_eq!(os_message(&plain), "boom");
    }
}
