//! `strata fetch`: fill a mirror for air-gapped sites, or re-check one.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata::report::human_bytes;

use super::progress::CliReporter;
use super::{fetch_options, out, NetArgs};
use crate::GlobalArgs;

/// Fetch every artifact a spec needs into a mirror directory (or, with
/// --verify, re-check a mirror).
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The image spec (with --into).
    #[arg(required_unless_present = "verify")]
    pub spec: Option<PathBuf>,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Mirror directory to fill: `sha256/<hex>` files and `index.json`.
    #[arg(long, value_name = "DIR", required_unless_present = "verify")]
    pub into: Option<PathBuf>,
    /// Re-hash every file of the mirror DIR and report corrupt or missing ones.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["spec", "into"])]
    pub verify: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
}

pub fn run(args: FetchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.verify {
        let quiet = global.quiet;
        let (checked, problems) = strata::mirror::verify(dir, &|name| {
            if !quiet {
                eprintln!("verify {name}");
            }
        })?;
        for p in &problems {
            eprintln!("error: {p}");
        }
        if !problems.is_empty() {
            anyhow::bail!("{}: {} of {} files have problems\nhint: rerun `strata fetch SPEC --into {}` on a connected machine to repair it", dir.display(), problems.len(), checked, dir.display());
        }
        out(&format!("{}: {checked} files verified", dir.display()))?;
        return Ok(());
    }
    let (Some(spec_path), Some(into)) = (&args.spec, &args.into) else { unreachable!("clap enforces SPEC and --into") };
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let spec = strata::spec::load_with(spec_path, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let lock = strata::lock::load_for(&spec)?;
    strata::lock::check_spec(&spec, lock.as_ref())?;
    let artifacts = strata::build::artifacts_of(&spec, lock.as_ref());
    let store = strata::store::Store::open(global.cache_dir())?;
    let opts = fetch_options(&args.net, global)?;
    let fetched = strata::fetch::Fetcher::new(store.clone(), opts, reporter).fetch_all(&artifacts)?;
    let sum = strata::mirror::export(&store, &artifacts, into)?;
    if !global.quiet {
        eprintln!(
            "{} artifacts: {} downloaded ({}), {} from cache; mirror {}: {} added ({}), {} already present",
            artifacts.len(),
            fetched.downloaded,
            human_bytes(fetched.bytes),
            fetched.cached + fetched.from_mirror,
            into.display(),
            sum.added,
            human_bytes(sum.bytes),
            sum.present
        );
    }
    out(&format!("{}", into.display()))?;
    Ok(())
}
