//! What every error type shares: the IO failure on a named path, and the
//! `hint()` a user-facing error can offer (the binary prints it as a
//! `hint:` line after the message).

use std::io;
use std::path::{Path, PathBuf};

/// An IO operation failed on a path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
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
