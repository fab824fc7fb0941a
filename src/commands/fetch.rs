//! `strata fetch`: fill a mirror for air-gapped sites, or re-check one.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata::mirror::MirrorLocation;
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
    /// Mirror to fill: a directory (`sha256/<hex>` files and `index.json`)
    /// or a registry repository, docker://HOST[:PORT]/REPO.
    #[arg(long, value_name = "DIR", required_unless_present = "verify")]
    pub into: Option<PathBuf>,
    /// Re-hash every file of the mirror DIR (or docker://HOST[:PORT]/REPO)
    /// and report corrupt or missing ones.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["spec", "into"])]
    pub verify: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

pub fn run(args: FetchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.verify {
        let quiet = global.quiet;
        let progress = |name: &str| {
            if !quiet {
                eprintln!("verify {name}");
            }
        };
        let (checked, problems) = match MirrorLocation::parse(dir).map_err(anyhow::Error::msg)? {
            MirrorLocation::Dir(d) => strata::mirror::verify(&d, &progress)?,
            MirrorLocation::Registry(r) => {
                let net = super::net_options(global, &args.net.rewrite)?;
                super::open_registry_mirror(r, &net, global)?.verify(&progress)?
            }
        };
        for p in &problems {
            eprintln!("error: {p}");
        }
        if args.json {
            let v = serde_json::json!({
                "mirror": dir.display().to_string(),
                "verified": checked,
                "problems": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            });
            out(&v.to_string())?;
        }
        if !problems.is_empty() {
            anyhow::bail!("{}: {} of {} files have problems\nhint: rerun `strata fetch SPEC --into {}` on a connected machine to repair it", dir.display(), problems.len(), checked, dir.display());
        }
        if !args.json {
            out(&format!("{}: {checked} files verified", dir.display()))?;
        }
        return Ok(());
    }
    let (Some(spec_path), Some(into)) = (&args.spec, &args.into) else { unreachable!("clap enforces SPEC and --into") };
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let spec = strata::spec::load_with(spec_path, &strata::spec::LoadOptions { context: args.context.clone() })?;
    // Every platform of the spec, each with its own lock.
    let mut specs = Vec::new();
    for p in spec.platforms() {
        let one = spec.for_platform(&p)?;
        let lock = strata::lock::load_for(&one)?;
        strata::lock::check_spec(&one, lock.as_ref())?;
        specs.push((one, lock));
    }
    // The first platform's as they are; the others' where they differ.
    let mut artifacts = Vec::new();
    for (one, lock) in &specs {
        let mine = strata::build::artifacts_of(one, lock.as_ref());
        if artifacts.is_empty() {
            artifacts = mine;
        } else {
            let seen: std::collections::BTreeSet<String> = artifacts.iter().map(|a| a.sha256.to_string()).collect();
            artifacts.extend(mine.into_iter().filter(|a| !seen.contains(&a.sha256.to_string())));
        }
    }
    let store = strata::store::Store::open(global.cache_dir())?;
    let opts = fetch_options(&args.net, global)?;
    let offline = opts.offline;
    let net = opts.net.clone();
    let fetched = strata::fetch::Fetcher::new(store.clone(), opts, reporter.clone()).fetch_all(&artifacts)?;
    // The archive indexes too, so `strata lock --offline --mirror` can resolve.
    let mut seen = std::collections::BTreeSet::new();
    let indexes: Vec<_> = specs
        .iter()
        .flat_map(|(one, lock)| {
            strata::lock::index_files(one, lock.as_ref(), &store, (!offline).then_some(&net), reporter.clone())
        })
        .filter(|a| seen.insert(a.sha256.to_string()))
        .collect();
    let mut all = artifacts.clone();
    all.extend(indexes.iter().cloned());
    let sum = match MirrorLocation::parse(into).map_err(anyhow::Error::msg)? {
        MirrorLocation::Dir(d) => strata::mirror::export(&store, &all, &d)?,
        MirrorLocation::Registry(r) => {
            let mut rm = super::open_registry_mirror(r, &net, global)?;
            let sum = rm.export(&store, &all)?;
            super::print_mirror_warnings(&rm);
            sum
        }
    };
    if args.json {
        let v = serde_json::json!({
            "spec": strata::lock::display_path(spec_path),
            "mirror": into.display().to_string(),
            "artifacts": artifacts.len(),
            "indexes": indexes.len(),
            "downloaded": fetched.downloaded,
            "downloaded_bytes": fetched.bytes,
            "from_cache": fetched.cached,
            "from_mirror": fetched.from_mirror,
            "added": sum.added,
            "added_bytes": sum.bytes,
            "present": sum.present,
        });
        return out(&v.to_string());
    }
    if !global.quiet {
        eprintln!(
            "{} artifacts and {} archive indexes: {} downloaded ({}), {} from cache; mirror {}: {} added ({}), {} already present",
            artifacts.len(),
            indexes.len(),
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
