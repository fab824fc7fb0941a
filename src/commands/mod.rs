//! Subcommands. Each parses nothing itself (clap does) and prints; the work is
//! in the library.

pub mod build;
pub mod inspect;
pub mod progress;

use std::io::Write;

/// Writes a line to stdout; a closed pipe (`strata … | head`) is not an error.
pub fn out(line: &str) -> anyhow::Result<()> {
    let mut so = std::io::stdout().lock();
    match writeln!(so, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}
