//! `strata completions` and `strata man`: generated from the command-line
//! definition itself, so they always match the binary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Print a shell completion script (bash, zsh, fish, elvish or powershell).
///
/// bash: `strata completions bash > ~/.local/share/bash-completion/completions/strata`;
/// zsh: `strata completions zsh > ~/.zfunc/_strata` (with `fpath+=~/.zfunc` before `compinit`);
/// fish: `strata completions fish > ~/.config/fish/completions/strata.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the strata(1) man page (roff), or write one page per command into a directory.
///
/// `strata man | man -l -` reads it; `strata man --dir /usr/local/share/man/man1`
/// installs strata.1, strata-build.1, ….
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write strata.1 and a page for each command (strata-build.1, …) into DIR.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut crate::cli_command(), "strata", &mut buf);
    super::out(String::from_utf8_lossy(&buf).trim_end())
}

pub fn man(a: ManArgs) -> anyhow::Result<()> {
    let cmd = crate::cli_command();
    match a.dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            super::out(String::from_utf8_lossy(&buf).trim_end())
        }
        Some(dir) => {
            fs_err::create_dir_all(&dir)?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
            super::out(&format!("man pages written to {}", dir.display()))
        }
    }
}
