//! `strata lock`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata::lock::{relock, RelockOptions};

use super::progress::CliReporter;
use crate::GlobalArgs;

/// Resolve the spec's package names into pinned URLs + sha256 and write SPEC.lock
/// (Debian packages), and each `python:` entry's pylock.toml (with uv).
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The image spec (YAML). The lock is written beside it with the extension `.lock`.
    pub spec: PathBuf,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Resolve and compare with the existing lock without writing; exit 1 if it would change.
    #[arg(long)]
    pub check: bool,
    /// The strata-verify binary to pin for specs with a `gpu:` section.
    /// Default: strata-verify next to this executable.
    #[arg(long, env = "STRATA_VERIFIER", value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    /// Seconds to wait for an archive to accept a connection.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

pub fn run(args: LockArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let started = std::time::Instant::now();
    let mut net = super::net_options(global, &[])?;
    net.timeouts.connect = std::time::Duration::from_secs(args.timeout.max(1));
    // Opened once and held until the command ends, so `strata cache prune` waits.
    let store = strata::store::Store::open(global.cache_dir())?;
    let opts = RelockOptions { net, verifier: args.verifier.clone(), check: args.check };
    let r = relock(&spec, &store, &opts, reporter)?;
    if global.quiet {
        return Ok(());
    }
    if args.check {
        eprintln!("{} is up to date", r.path.display());
        return Ok(());
    }
    for p in &r.pylocks {
        eprintln!(
            "{} {} ({} wheels, {}{})",
            if p.changed { "wrote" } else { "unchanged" },
            p.pylock,
            p.wheels,
            p.sha256,
            if p.resolved { "" } else { ", brought, not resolved" }
        );
    }
    let pkgs: usize = r.lock.debs.values().map(|d| d.packages.len()).sum();
    for (k, d) in &r.lock.debs {
        for n in &d.notes {
            eprintln!("note: layer `{k}`: {n}");
        }
    }
    eprintln!(
        "{} {} ({} debs layer(s), {} packages) in {:.1}s",
        if r.unchanged { "unchanged" } else { "wrote" },
        r.path.display(),
        r.lock.debs.len(),
        pkgs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
