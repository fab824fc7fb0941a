//! `strata audit`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use strata::build::{build, BuildOptions};

use super::progress::CliReporter;
use super::{fetch_options, out, NetArgs};
use crate::GlobalArgs;

/// Rebuild an image from its spec and compare it with a published image.
/// Exit status: 0 identical, 1 different, 2 trouble.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The image spec.
    pub spec: PathBuf,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The published image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE.
    pub image: String,
    /// Print the verdict and the full comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// The strata-verify binary for specs with a `gpu:` section.
    #[arg(long, env = "STRATA_VERIFIER", value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Runs the audit; `Ok(true)` when identical.
pub fn run(args: AuditArgs, global: &GlobalArgs) -> anyhow::Result<bool> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let mut opts = BuildOptions { cache: global.cache_dir(), ..BuildOptions::default() };
    // Held until the command ends, so `strata cache prune` waits for all of it
    // (the build and the writing of its output), not only for the build.
    let _cache = strata::store::Store::open(&opts.cache)?;
    opts.fetch = fetch_options(&args.net)?;
    opts.verifier = args.verifier.clone();
    opts.source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds"))?,
        ),
        _ => None,
    };
    let result = build(&spec, &opts, reporter)?;
    let rebuilt = strata::image::read::BuiltSource {
        image: result.image,
        store: strata::store::Store::open(&opts.cache)?,
        name: format!("rebuild of {}", args.spec.display()),
    };
    let published = strata::image::read::open(&args.image)?;
    let report = strata::diff::compare(&rebuilt, published.as_ref())?;
    let verdict = strata::audit::explain(&report);
    if args.json {
        out(&serde_json::to_string_pretty(&json!({"verdict": verdict, "comparison": report}))?)?;
    } else if verdict.identical {
        out(&format!("identical: {} rebuilds to {} ({})", args.spec.display(), report.b_manifest, args.image))?;
    } else {
        out(&format!(
            "different: the rebuild of {} is {}, {} is {}",
            args.spec.display(),
            report.a_manifest,
            args.image,
            report.b_manifest
        ))?;
        out(&format!("first difference: {}", verdict.first_difference.as_deref().unwrap_or("?")))?;
        out(&format!("likely cause: {}", verdict.likely_cause.as_deref().unwrap_or("?")))?;
        out("full comparison: rerun with --json")?;
    }
    Ok(verdict.identical)
}
