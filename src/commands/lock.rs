//! `strata lock`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata::lock::{lock_path, lock_spec, LockOptions};

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
    let opts = LockOptions { cache: global.cache_dir(), timeout: std::time::Duration::from_secs(args.timeout.max(1)) };
    // Held until the command ends, so `strata cache prune` waits for all of it
    // (the build and the writing of its output), not only for the build.
    let _cache = strata::store::Store::open(&opts.cache)?;
    let mut lock = lock_spec(&spec, &opts, reporter)?;
    // Python: uv rewrites the pylock of entries with `requirements:`; every
    // pylock's sha256 is recorded so builds notice a pylock edited later.
    let pylocks = strata::sources::python::lockfile::lock_python(&spec, &mut lock, args.check)?;
    // The spec itself, and the verifier binary images with `gpu:` get.
    lock.spec = Some(strata::lock::SpecLock { checksum: strata::lock::spec_checksum(&spec)?.to_string() });
    let vopts = strata::build::BuildOptions { verifier: args.verifier.clone(), unlocked: true, ..Default::default() };
    lock.verifier = strata::build::verifier_plan(&spec, &vopts)?
        .map(|v| strata::lock::VerifierLock { sha256: v.sha256.to_string(), size: v.size });
    let path = lock_path(&args.spec);
    let shown = args.spec.display().to_string();
    let text = lock.to_text(&shown).map_err(anyhow::Error::msg)?;
    let old = std::fs::read_to_string(&path).ok();
    let unchanged = old.as_deref() == Some(text.as_str());
    if args.check {
        if unchanged {
            if !global.quiet {
                eprintln!("{} is up to date", path.display());
            }
            return Ok(());
        }
        anyhow::bail!(
            "{} is out of date (or missing) for {}\nhint: run `strata lock {}` and commit the result",
            path.display(),
            shown,
            shown
        );
    }
    if !unchanged {
        lock.write(&path, &shown)?;
    }
    if !global.quiet {
        for p in &pylocks {
            eprintln!(
                "{} {} ({} wheels, {}{})",
                if p.changed { "wrote" } else { "unchanged" },
                p.pylock,
                p.wheels,
                p.sha256,
                if p.resolved { "" } else { ", brought, not resolved" }
            );
        }
        let pkgs: usize = lock.debs.values().map(|d| d.packages.len()).sum();
        for (k, d) in &lock.debs {
            for n in &d.notes {
                eprintln!("note: layer `{k}`: {n}");
            }
        }
        eprintln!(
            "{} {} ({} debs layer(s), {} packages) in {:.1}s",
            if unchanged { "unchanged" } else { "wrote" },
            path.display(),
            lock.debs.len(),
            pkgs,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
